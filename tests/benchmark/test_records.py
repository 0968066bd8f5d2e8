"""equivox.benchmark.records: the record schema of every benchmark row: scores as means over items of the per-item
scores (worked out here by hand), the cross-fitted worst cube rotation, and intervals only where enough items
define them."""
from __future__ import annotations

import numpy as np
import pytest

from equivox.benchmark import (RECORD_KEYS, SCORE_KEYS, format_records, get_competitor, make_record, split_worst,
                               summarize_records)
from equivox.benchmark.records import MIN_ITEMS, scores_from_items
from equivox.evaluation import RotationReport


def _report(per_item, metric="accuracy"):
    kinds = {"identity": "identity", "grid": "grid", "so3": "so3"}
    rows = [{"rotation": n, "kind": kinds[n.split(":")[0]], "exact": not n.startswith("so3"),
             metric: float(np.mean([v for v in items if v is not None]))} for n, items in per_item.items()]
    return RotationReport("m", metric, rows, per_item=per_item)


def test_split_worst_chooses_on_the_other_half():
    """Each half of the items (even / odd positions) is scored at the rotation with the lowest mean on the other
    half: below, b is worst on the even items, a on the odd ones, so every item is scored where it is right (the
    plain minimum over rotations would be 0.5: biased low by noise)."""
    m = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])  # noise: neither rotation is worse overall
    assert split_worst(m).tolist() == [1.0, 1.0, 1.0, 1.0] and m.mean(0).min() == 0.5
    clear = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [1.0, 0.0]])  # rotation b is worse on both halves
    assert split_worst(clear).tolist() == [0.0, 0.0, 1.0, 0.0]
    assert split_worst([[0.5, 0.2, 0.9]]).tolist() == [0.2]  # one item: its own worst
    with pytest.raises(ValueError, match=r"\(N items, R rotations\) matrix"):
        split_worst(np.zeros((0, 3)))


def test_scores_are_means_over_items_then_over_rotations():
    per_item = {"identity": [1, 1, 0, 1], "grid:a": [1, 0, 0, 1], "grid:b": [1, 1, 1, 1], "so3:0": [0, 1, None, 1]}
    s = scores_from_items(per_item)
    assert s["upright"] == 0.75 and s["mean_grid"] == 0.75 and s["worst_grid"] == 0.5
    assert s["std_grid"] == pytest.approx(0.25) and s["mean_so3"] == pytest.approx(2 / 3) == s["worst_so3"]
    assert s["worst_grid_split"] == pytest.approx(np.mean(split_worst(np.array([[1, 1], [0, 1], [0, 1], [1, 1]]))))
    only_grid = scores_from_items({"grid:[d,h,w]": [1, 0], "grid:b": [0, 0]})
    assert only_grid["upright"] == 0.5 and only_grid["mean_so3"] is None  # upright falls back on the identity element


def test_make_record_has_the_schema_and_intervals_from_enough_items():
    comp = get_competitor("equivariant (octa)", "classify")
    rng = np.random.default_rng(0)
    per_item = {"identity": rng.integers(0, 2, 20).tolist(),
                **{f"grid:{i}": rng.integers(0, 2, 20).tolist() for i in range(3)}}
    rec = make_record(dataset="toy", task="classify", comp=comp, report=_report(per_item), seed=1,
                      train_fraction=0.5, n_train=40, params=123, train_seconds=1.234, train_steps=7,
                      eval_seconds=0.5, note="x")
    assert set(RECORD_KEYS) <= set(rec) and rec["note"] == "x"
    assert rec["model"] == "equivariant (octa)" and rec["group"] == "octa" and rec["n_test"] == 20
    assert rec["train_seconds"] == 1.23 and rec["per_item"] == per_item
    s = scores_from_items(per_item)
    assert all(rec[k] == s[k] for k in SCORE_KEYS)
    low, high = rec["upright_ci"]
    assert low <= rec["upright"] <= high and rec["mean_so3_ci"] is None
    few = {k: v[:MIN_ITEMS - 1] for k, v in per_item.items()}
    rec_few = make_record(dataset="toy", task="classify", comp=comp, report=_report(few), seed=1,
                          train_fraction=1.0, n_train=4, params=1, train_seconds=0, train_steps=0, eval_seconds=0)
    assert rec_few["upright_ci"] is None and rec_few["worst_grid_ci"] is None


def test_split_worst_is_free_of_the_selection_bias_of_the_minimum(record_of_items):
    """A model whose 24 rotation scores differ only by noise: the minimum of the 24 means is biased low, the
    cross-fitted worst rotation is not; a rotation that is truly worse is still found."""
    from equivox.benchmark import split_worst

    rng = np.random.default_rng(0)
    noise = (rng.random((400, 24)) < 0.6).astype(float)
    naive = noise.mean(0).min()
    split = split_worst(noise).mean()
    assert naive < split - 0.02 and abs(split - 0.6) < 0.03, (naive, split)
    worse = noise.copy()
    worse[:, 5] = (rng.random(400) < 0.3)
    assert abs(split_worst(worse).mean() - 0.3) < 0.06
    # an invariant model (all columns equal) scores its upright value either way
    same = np.repeat(noise[:, :1], 24, axis=1)
    assert split_worst(same).tolist() == noise[:, 0].tolist()
    # records and tables carry it; summaries of records stored before it existed compute it from per_item
    rec = record_of_items("A", 0, [1, 0] * 20)
    rec.pop("worst_grid_split", None)
    row = summarize_records([rec])[0]
    assert row["worst_grid_split"] == pytest.approx(np.mean(split_worst(np.array([[1, 1], [0, 0]] * 20))))
    assert "cube worst (split)" in format_records([rec])
