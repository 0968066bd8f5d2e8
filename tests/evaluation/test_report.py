"""equivox.evaluation.report: RotationReport summary statistics, JSON / CSV round trips, tables and
compare_reports."""
from __future__ import annotations

import numpy as np
import pytest

from equivox.evaluation import RotationReport, compare_reports, evaluate_classification, rotation_set

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_report_summary_statistics(fake_report):
    rng = np.random.default_rng(0)
    grid, so3 = rng.uniform(0.5, 1, 24).tolist(), rng.uniform(0.2, 0.9, 5).tolist()
    s = fake_report("m", grid, so3, 0.95).summary()
    assert s["upright"] == 0.95
    assert s["mean_grid"] == pytest.approx(np.mean(grid)) and s["worst_grid"] == pytest.approx(min(grid))
    assert s["std_grid"] == pytest.approx(np.std(grid))
    assert s["mean_so3"] == pytest.approx(np.mean(so3)) and s["worst_so3"] == pytest.approx(min(so3))
    assert s["gap_grid"] == pytest.approx(0.95 - np.mean(grid)) and s["gap_so3"] == pytest.approx(0.95 - np.mean(so3))
    only_grid = fake_report("g", grid, [], 0.9).summary()
    assert only_grid["mean_so3"] is None and only_grid["gap_so3"] is None


def test_report_json_csv_roundtrip_and_compare(tmp_path, classifiers, clf_data, fake_report):
    x, y = clf_data
    rots = rotation_set("standard", n_random=1)[:4] + rotation_set("so3", n_random=1)[1:]
    rep = evaluate_classification(classifiers["trivial"], (x, y), rots, progress=False, name="trivial",
                                  check_equivariance=True)
    back = RotationReport.from_json(rep.to_json(tmp_path / "r.json"))
    assert back == rep and back.summary() == rep.summary()
    csv_back = RotationReport.from_csv(rep.to_csv(tmp_path / "r.csv"), name="trivial", metric="accuracy")
    assert [r["rotation"] for r in csv_back.rows] == [r["rotation"] for r in rep.rows]
    for a, b in zip(csv_back.rows, rep.rows):
        assert a["exact"] == b["exact"] and a["kind"] == b["kind"]
        for k in ("accuracy", "balanced_accuracy", "auroc"):
            assert a[k] == pytest.approx(b[k])
    table = rep.table()
    assert "grid:[d,h,w]" in table and "so3:0" in table and "gap_grid" in table
    other = fake_report("other-model", [0.5] * 3, [0.4], 0.6)
    cmp = compare_reports([rep, other])
    lines = cmp.splitlines()
    assert any(line.startswith("trivial") for line in lines) and any(line.startswith("other-model") for line in lines)
    assert "mean_grid" in cmp and "gap_so3" in cmp
    with pytest.raises(ValueError, match="RotationReport JSON"):
        (tmp_path / "bad.json").write_text("{}")
        RotationReport.from_json(tmp_path / "bad.json")
