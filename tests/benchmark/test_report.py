"""equivox.benchmark.report: summaries over seeds with intervals, the text table, paired comparisons with their
verdicts (met / missed / too few items), the data-efficiency curve, and the files a suite writes; records are
built here from per-item scores with a known difference between two models."""
from __future__ import annotations

import json

import numpy as np
import pytest

from equivox.benchmark import (MIN_VERDICT_ITEMS, TOO_FEW, compare, data_efficiency, format_records,
                               format_verdicts, save_records, summarize_records)
from equivox.benchmark.records import scores_from_items


def _record(model, seed, p_upright, p_grid, n=60, fraction=1.0, dataset="toy"):
    rng = np.random.default_rng([sum(map(ord, model)), seed, int(fraction * 100)])  # deterministic per record
    per_item = {"identity": (rng.uniform(size=n) < p_upright).astype(int).tolist(),
                **{f"grid:{i}": (rng.uniform(size=n) < p_grid).astype(int).tolist() for i in range(4)}}
    return {"dataset": dataset, "task": "classify", "model": model, "train_fraction": fraction, "seed": seed,
            "n_train": int(100 * fraction), "n_test": n, "params": 10, "train_seconds": 1.0, "eval_cost": 1,
            "metric": "accuracy", **scores_from_items(per_item), "per_item": per_item}


@pytest.fixture(scope="module")
def records():
    return [_record(m, s, *p) for m, p in {"good": (0.95, 0.95), "bad": (0.9, 0.3)}.items() for s in (0, 1)]


def test_summary_is_the_mean_over_seeds_with_intervals(records):
    rows = {r["model"]: r for r in summarize_records(records)}
    assert set(rows) == {"good", "bad"} and rows["good"]["n_seeds"] == 2
    good = [r for r in records if r["model"] == "good"]
    assert rows["good"]["upright"] == pytest.approx(np.mean([r["upright"] for r in good]))
    assert rows["good"]["upright_std"] == pytest.approx(np.std([r["upright"] for r in good]))
    lo, hi = rows["good"]["upright_ci"]
    assert lo <= rows["good"]["upright"] <= hi
    table = format_records(records)
    assert table.startswith("metric: accuracy") and "good" in table and "bad" in table and "[" in table


def test_a_clear_difference_is_met_and_its_reverse_missed(records):
    v = compare(records, "good", "bad", key="worst_grid")
    assert v["verdict"] == "met" and v["difference"] > 0.4 and v["ci"][0] > 0 and v["n_seeds"] == 2
    r = compare(records, "bad", "good", key="worst_grid")
    assert r["verdict"] == "missed" and r["difference"] == pytest.approx(-v["difference"])
    lines = format_verdicts([v, r]).splitlines()
    assert lines[0].lstrip().startswith("met") and lines[1].lstrip().startswith("missed")
    with pytest.raises(ValueError, match="no records of 'nobody'"):
        compare(records, "good", "nobody")


def test_too_few_items_give_no_verdict():
    few = [_record(m, 0, *p, n=MIN_VERDICT_ITEMS - 10) for m, p in {"good": (1.0, 1.0), "bad": (0.0, 0.0)}.items()]
    v = compare(few, "good", "bad")
    assert v["verdict"] == TOO_FEW and v["ci"] is not None and v["needs"] == MIN_VERDICT_ITEMS
    assert "too few items to decide" in format_verdicts([v])


def test_data_efficiency_curve_is_sorted_by_fraction():
    recs = [_record("good", s, 0.9, 0.9, fraction=f) for f in (1.0, 0.25, 0.5) for s in (0, 1)]
    curve = data_efficiency(recs)
    assert [p["train_fraction"] for p in curve["good"]] == [0.25, 0.5, 1.0]
    assert [p["n_train"] for p in curve["good"]] == [25, 50, 100] and all(p["n_seeds"] == 2 for p in curve["good"])


def test_save_records_writes_json_csv_and_table(tmp_path, records):
    v = compare(records, "good", "bad", key="worst_grid")
    paths = save_records({"records": records, "config": {"epochs": 1}, "caption": "toy suite"}, tmp_path / "out",
                         stem="toy", command="pytest", verdicts=[v])
    assert [p.name for p in paths] == ["toy.json", "toy.csv", "toy_table.txt"]
    doc = json.loads(paths[0].read_text())
    assert doc["command"] == "pytest" and doc["config"] == {"epochs": 1} and len(doc["records"]) == 4
    assert doc["machine"]["cpu_count"] and doc["verdicts"][0]["verdict"] == "met"
    header = paths[1].read_text().splitlines()[0].split(",")
    assert "model" in header and "per_item" not in header
    text = paths[2].read_text()
    assert text.startswith("toy suite") and "paired verdicts:" in text


def test_paired_verdicts_met_missed_and_unresolved_with_items_needed(record_of_items):
    good, bad = [1] * 90 + [0] * 10, [1] * 50 + [0] * 50
    close = [0] * 3 + [1] * 52 + [0] * 45  # 3 items B gets right wrong, 5 it gets wrong right
    recs = [record_of_items("A", s, good) for s in range(3)] + [record_of_items("B", s, bad) for s in range(3)] + \
           [record_of_items("C", s, close) for s in range(3)]
    met = compare(recs, "A", "B", "upright", 0.10)
    assert met["verdict"] == "met" and met["difference"] == pytest.approx(0.4) and met["ci"][0] > 0.10
    assert compare(recs, "B", "A", "worst_grid", 0.0)["verdict"] == "missed"
    same = compare(recs, "A", "A", "upright", 0.0)
    assert same["difference"] == 0.0 and same["ci"] == [0.0, 0.0]
    unresolved = compare(recs, "C", "B", "upright", 0.0)  # +2 points on 100 items: noise
    assert unresolved["verdict"] == "unresolved" and unresolved["needs"] > 100
    assert unresolved["ci"][0] < 0 < unresolved["ci"][1]


def test_tables_and_verdicts_name_the_dataset_when_there_are_several(record_of_items):
    recs = [record_of_items("A", 0, [1, 0, 1, 1])] + [{**record_of_items("A", 0, [0, 0, 1, 1]), "dataset": "other"}]
    table = format_records(recs)
    assert table.index("[other]") > table.index("[" + recs[0]["dataset"] + "]")
    line = format_verdicts([compare(recs, "A", "A", "upright", 0.0, dataset="other")])
    assert "other: 4 items x 1 seeds" in line


def test_fewer_than_30_items_draw_no_verdict(record_of_items):
    from equivox.benchmark import MIN_VERDICT_ITEMS, TOO_FEW

    assert MIN_VERDICT_ITEMS == 30
    few = [record_of_items("A", s, [1] * 20) for s in range(3)] + [record_of_items("B", s, [0] * 20) for s in range(3)]
    v = compare(few, "A", "B", "upright", 0.1)
    assert v["verdict"] == TOO_FEW and v["difference"] == 1.0 and v["n_items"] == 20
    assert "too few items to decide: 20 < 30" in format_verdicts([v])
    enough = [record_of_items("A", 0, [1] * 30), record_of_items("B", 0, [0] * 30)]
    assert compare(enough, "A", "B", "upright", 0.1)["verdict"] == "met"
