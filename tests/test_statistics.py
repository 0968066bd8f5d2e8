"""Tests for equivox.statistics (paired bootstrap over items) and the per-item scores of evaluation reports."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from equivox.statistics import (bootstrap_ci, items_needed, paired_difference, record_intervals, verdict,
                                worst_case_ci)


def _correct(k, n=100):
    """k correct (1) then n - k wrong (0)."""
    return np.array([1] * k + [0] * (n - k))


# --------------------------------------------------------------------------------------------- intervals


def test_bootstrap_ci_matches_normal_interval():
    mean, low, high = bootstrap_ci(_correct(50))
    half = 1.96 * math.sqrt(0.25 / 100)
    assert mean == 0.5
    assert low == pytest.approx(0.5 - half, abs=0.01) and high == pytest.approx(0.5 + half, abs=0.01)
    assert bootstrap_ci(_correct(50), seed=3) == bootstrap_ci(_correct(50), seed=3)  # deterministic
    # a wider level gives a wider interval
    _, lo99, hi99 = bootstrap_ci(_correct(50), level=0.99)
    assert lo99 < low and hi99 > high


def test_identical_models_give_exactly_zero_difference():
    rng = np.random.default_rng(1)
    pred = rng.integers(0, 2, 100)
    assert paired_difference(pred, pred.copy()) == (0.0, 0.0, 0.0)
    m = rng.uniform(size=(30, 5))
    assert paired_difference(m, m.copy(), statistic="worst") == (0.0, 0.0, 0.0)


def test_clearly_better_model_is_resolved():
    rng = np.random.default_rng(2)
    better, worse = _correct(90), _correct(50)
    order = rng.permutation(100)  # shuffle items consistently (pairing kept)
    diff, low, high = paired_difference(better[order], worse[order])
    assert diff == pytest.approx(0.4)
    assert 0 < low < diff < high
    assert verdict(low, high, 0.0) == "met"
    assert verdict(low, high, 0.0, "<=") == "missed"
    # the reverse comparison is the mirror image
    rdiff, rlow, rhigh = paired_difference(worse[order], better[order])
    assert rdiff == pytest.approx(-0.4) and rhigh < 0
    assert verdict(rlow, rhigh, 0.0) == "missed"


def test_paired_is_tighter_than_unpaired():
    """Pairing: two models wrong on almost the same items differ by little, with a narrow interval."""
    a = _correct(60)
    b = a.copy()
    b[0] = 0  # b misses one more item
    diff, low, high = paired_difference(a, b)
    assert diff == pytest.approx(0.01)
    assert high - low < 0.05  # unpaired intervals of two 60% accuracies would be ~0.27 wide


def test_worst_case_ci_picks_the_worst_column():
    rng = np.random.default_rng(3)
    m = (rng.uniform(size=(200, 6)) < 0.9).astype(float)
    m[:, 4] = (rng.uniform(size=200) < 0.3).astype(float)  # column 4 is clearly worst
    value, low, high = worst_case_ci(m)
    assert value == pytest.approx(m[:, 4].mean())
    assert value == pytest.approx(m.mean(0).min())
    col_mean, col_low, col_high = bootstrap_ci(m[:, 4])
    assert low == pytest.approx(col_low, abs=1e-12) and high == pytest.approx(col_high, abs=1e-12)


def test_worst_case_resamples_rows_jointly():
    """Two complementary columns: each column's mean is noisy, but on every resample one of them is at most 0.5,
    so the worst case is never above 0.5 (it would be if the columns were resampled independently)."""
    col = _correct(50).astype(float)
    m = np.stack([col, 1 - col], axis=1)
    value, low, high = worst_case_ci(m)
    assert value == 0.5 and high <= 0.5 and low < 0.5


def test_multi_seed_input():
    rng = np.random.default_rng(4)
    seeds = [(rng.uniform(size=80) < p).astype(float) for p in (0.6, 0.7, 0.8)]
    mean, low, high = bootstrap_ci(seeds)
    assert mean == pytest.approx(np.mean([s.mean() for s in seeds]))
    assert low < mean < high
    # joint resampling: three identical seeds give the one-seed interval
    assert bootstrap_ci([seeds[0]] * 3) == pytest.approx(bootstrap_ci(seeds[0]))
    # matrices per seed: worst case averaged over seeds
    mats = [rng.uniform(size=(50, 4)) for _ in range(2)]
    value, wlow, whigh = worst_case_ci(mats)
    assert value == pytest.approx(np.mean([m.mean(0).min() for m in mats]))
    assert wlow <= value <= whigh
    # paired over seeds: same seeds on both sides -> exactly zero
    assert paired_difference(mats, [m.copy() for m in mats], statistic="worst") == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="same shape"):
        bootstrap_ci([seeds[0], seeds[0][:10]])
    with pytest.raises(ValueError, match="same items"):
        paired_difference(seeds[0], seeds[0][:10])


def test_nan_items_are_skipped():
    vals = np.array([1.0, 0.0, np.nan, 1.0])
    mean, low, high = bootstrap_ci(vals)
    assert mean == pytest.approx(2 / 3) and 0 <= low <= high <= 1


def test_verdict_and_items_needed():
    assert verdict(0.1, 0.3, 0.1) == "met" and verdict(0.1, 0.3, 0.1, ">") == "unresolved"
    assert verdict(-0.2, 0.05, 0.1) == "missed" and verdict(-0.2, 0.2, 0.1) == "unresolved"
    assert verdict(0.0, 0.05, 0.05, "<=") == "met" and verdict(0.0, 0.05, 0.05, "<") == "unresolved"
    assert verdict(None, 0.1, 0.0) == "unresolved" and verdict(float("nan"), 0.1, 0.0) == "unresolved"
    with pytest.raises(ValueError):
        verdict(0.0, 1.0, 0.5, "=>")
    # half-width 0.1 vs gap 0.05: 4x the items
    assert items_needed(0.05, -0.05, 0.15, 0.0, 100) == 400
    assert items_needed(-0.05, -0.15, 0.05, 0.0, 100) == 400
    assert items_needed(0.0, -0.1, 0.1, 0.0, 100) == -1
    # real run: a 5-point gain on 100 items is unresolved, and the estimate asks for more items
    a, b = _correct(55), _correct(50)
    a = a[np.random.default_rng(6).permutation(100)]  # errors on different items (not nested)
    diff, low, high = paired_difference(a, b)
    assert verdict(low, high, 0.0) == "unresolved"
    assert items_needed(diff, low, high, 0.0, 100) > 100


# --------------------------------------------------------------------------------------------- reports


@pytest.fixture(scope="module")
def tiny_report():
    from equivox.evaluation import evaluate_classification, rotation_set

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.AdaptiveAvgPool3d(1), nn.Flatten()).eval()
        g = torch.Generator().manual_seed(7)
        x = torch.randn(6, 1, 8, 8, 8, generator=g) + torch.linspace(0, 2, 8).view(1, 1, 8, 1, 1)
        y = torch.tensor([0, 1, 0, 1, 1, 0])
        rots = rotation_set("grid", group="octa")
        return evaluate_classification(model, (x, y), rots, batch_size=4, progress=False, name="tiny")
    finally:
        torch.set_num_threads(before)


def test_classification_report_has_per_item(tiny_report):
    rep = tiny_report
    assert rep.per_item is not None and set(rep.per_item) == {r["rotation"] for r in rep.rows}
    for row in rep.rows:
        items = rep.per_item[row["rotation"]]
        assert len(items) == 6 and set(items) <= {0, 1}
        assert np.mean(items) == pytest.approx(row["accuracy"])
    m = rep.item_matrix("grid")
    assert m.shape == (6, 24)
    assert np.allclose(m.mean(0), rep.scores("grid"))
    up = rep.item_matrix("upright")
    assert up.shape == (6, 1) and np.array_equal(up[:, 0], rep.per_item["grid:[d,h,w]"])
    assert rep.item_matrix("so3").shape == (6, 0)
    ci = record_intervals(rep)
    assert ci["mean_so3_ci"] is None
    low, high = ci["worst_grid_ci"]
    assert low <= rep.summary()["worst_grid"] <= high
    low, high = ci["upright_ci"]
    assert low <= rep.summary()["upright"] <= high


def test_report_json_roundtrip_keeps_per_item(tiny_report, tmp_path):
    from equivox.evaluation import RotationReport

    back = RotationReport.from_json(tiny_report.to_json(tmp_path / "r.json"))
    assert back.per_item == tiny_report.per_item and back == tiny_report
    assert np.array_equal(back.item_matrix("grid"), tiny_report.item_matrix("grid"))
    # CSV does not carry per-item scores; older reports without them still load
    assert RotationReport.from_csv(tiny_report.to_csv(tmp_path / "r.csv")).per_item is None
    old = RotationReport("old", "accuracy", list(tiny_report.rows))
    assert RotationReport.from_json(old.to_json(tmp_path / "old.json")).per_item is None
    with pytest.raises(ValueError, match="per-item"):
        old.item_matrix("grid")


def test_record_intervals_with_so3_rows():
    from equivox.evaluation import RotationReport

    rng = np.random.default_rng(5)
    rows, per_item = [], {}
    for name, kind, p in [("identity", "identity", 0.9)] + [(f"grid:{i}", "grid", 0.8) for i in range(3)] \
            + [(f"so3:{i}", "so3", 0.6) for i in range(2)]:
        items = (rng.uniform(size=50) < p).astype(int).tolist()
        per_item[name] = items
        rows.append({"rotation": name, "kind": kind, "exact": kind != "so3", "accuracy": float(np.mean(items))})
    rep = RotationReport("fake", "accuracy", rows, per_item=per_item)
    ci = record_intervals(rep)
    s = rep.summary()
    assert ci["upright_ci"][0] <= s["upright"] <= ci["upright_ci"][1]
    assert ci["worst_grid_ci"][0] <= s["worst_grid"] <= ci["worst_grid_ci"][1]
    assert ci["mean_so3_ci"][0] <= s["mean_so3"] <= ci["mean_so3_ci"][1]
    assert ci["mean_so3_ci"] == pytest.approx(list(bootstrap_ci(rep.item_matrix("so3"))[1:]))


def test_segmentation_report_has_per_volume_dice():
    from equivox.evaluation import evaluate_segmentation, rotation_set

    class Thresh(nn.Module):  # per-voxel 3-class logits from the intensity (not rotation-dependent)
        def forward(self, x):
            return torch.cat([-x, x - 0.3, 2 * x - 1.5], dim=1)

    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 1, 8, 8, 8, generator=g)
    y = (x > 0.2).long() + (x > 0.9).long()
    y[1] = (x[1] > 0.2).long()  # item 1 has no class 2
    rots = rotation_set("grid", group="octa")[:3]
    rep = evaluate_segmentation(Thresh(), (x, y), rots, num_classes=3, progress=False)
    assert set(rep.per_item) == {r.name for r in rots}
    for r in rots:
        items = rep.per_item[r.name]
        assert len(items) == 3 and all(0 <= v <= 1 for v in items)
    # per-volume mean foreground Dice, recomputed by hand for the upright item 0 and item 1
    pred = torch.cat([-x, x - 0.3, 2 * x - 1.5], dim=1).argmax(1, keepdim=True)

    def dice(p, t):
        return float(2 * (p & t).sum() / (p.sum() + t.sum()))

    d0 = np.mean([dice(pred[0] == c, y[0] == c) for c in (1, 2)])
    d1 = dice(pred[1] == 1, y[1] == 1)
    assert rep.per_item["grid:[d,h,w]"][0] == pytest.approx(d0, abs=1e-6)
    assert rep.per_item["grid:[d,h,w]"][1] == pytest.approx(d1, abs=1e-6)
    assert rep.item_matrix("grid").shape == (3, 3)


def test_items_needed_treats_float_noise_as_equality():
    from equivox.statistics import items_needed

    assert items_needed(0.3 - 0.2, 0.05, 0.15, 0.1, 300) == -1  # 0.09999999999999998 vs 0.1: no n decides it
    assert items_needed(0.15, 0.05, 0.25, 0.1, 100) == 400
