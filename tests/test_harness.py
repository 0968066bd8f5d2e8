"""The benchmark harness (equivox.benchmark): user competitors, one record schema for both tasks, one data path,
paired verdicts, the data-efficiency curve, and the parameter-matched plain twin of label-permuting nets."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from equivox.benchmark import (COMPETITORS, RECORD_KEYS, ClassificationData, compare, data_efficiency,
                               format_records, format_verdicts, load_classification_data, plot_records,
                               register_competitor, run_classification, run_segmentation, save_records,
                               summarize_records, unregister_competitor)


def _bars(n_per_class: int, seed: int, size: int = 8):
    """Class 0: a bar along D, class 1: a bar along H, jittered (``size``^3)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label in (0, 1):
        for _ in range(n_per_class):
            x = np.zeros((size, size, size), np.float32)
            c = rng.integers(size // 2 - 1, size // 2 + 1, size=3)
            if label == 0:
                x[1:size - 1, c[1], c[2]] = 1
            else:
                x[c[0], 1:size - 1, c[2]] = 1
            xs.append(x)
            ys.append(label)
    return torch.from_numpy(np.stack(xs))[:, None], np.array(ys)


def _bars_data(n_train=12, n_test=10):
    xtr, ytr = _bars(n_train, 0)
    xte, yte = _bars(n_test, 1)
    return ClassificationData("bars", xtr, ytr, xte[::3], yte[::3], xte, yte, ["along D", "along H"])


class TinyCNN(nn.Module):
    def __init__(self, in_channels, n_out, segment):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, 3, 3, padding=1)
        self.out = nn.Conv3d(3, n_out, 1) if segment else nn.Linear(3, n_out)
        self.segment = segment

    def forward(self, x):
        h = torch.relu(self.conv(x))
        return self.out(h) if self.segment else self.out(h.mean(dim=(2, 3, 4)))


@pytest.fixture
def user_row():
    calls = []

    def build(ctx):
        calls.append((ctx.task, ctx.in_channels, ctx.n_classes, ctx.group))
        return TinyCNN(ctx.in_channels, ctx.n_classes, ctx.task == "segment")

    name = "my tiny CNN + grid aug"
    register_competitor(name, build, augment="grid", train={"lr": 1e-2})
    yield name, calls
    unregister_competitor(name)


TINY = dict(input_size=8, channels=(2, 2), strides=(2,), hidden_features=(8,), epochs=2, batch_size=8, n_random=1)


def test_user_competitor_runs_through_the_harness_and_is_in_table_and_json(tmp_path, user_row, capsys):
    name, calls = user_row
    res = run_classification(_bars_data(), ["plain (matched params)", name], (1.0,), (0,), out=tmp_path / "runs",
                             verbose=False, **TINY)
    assert calls == [("classify", 1, 2, "octa")]  # the builder saw the task, channels, classes and group
    table = format_records(res["records"])
    assert name in table and "plain (matched params)" in table
    paths = save_records(res, tmp_path, "accuracy", command="pytest")
    doc = json.loads(paths[0].read_text())
    rec = next(r for r in doc["records"] if r["model"] == name)
    assert rec["augment"] == "grid" and rec["arch"] == "custom" and rec["params"] == sum(
        p.numel() for p in TinyCNN(1, 2, False).parameters())
    assert name in paths[2].read_text() and doc["command"] == "pytest" and doc["machine"]["cpu_count"] >= 1
    assert res["config"]["competitors"] == ["plain (matched params)", name]


def _check_schema(rec, n_test):
    assert set(RECORD_KEYS) <= set(rec)
    assert rec["n_test"] == n_test
    for key in ("upright", "worst_grid", "mean_so3"):
        if n_test < 3:  # one volume: no interval per record (the report pools seeds x items)
            assert rec[f"{key}_ci"] is None
            continue
        lo, hi = rec[f"{key}_ci"]
        assert lo <= rec[key] + 1e-9 and rec[key] - 1e-9 <= hi, (key, rec)
    # per-item scores: one list per rotation, the upright one averaging to the upright score (classification)
    assert all(len(v) == n_test for v in rec["per_item"].values())
    assert {n.split(":")[0] for n in rec["per_item"]} >= {"grid", "so3"}


def test_record_schema_is_the_same_for_both_tasks(tmp_path, user_row):
    name, calls = user_row
    data = _bars_data()
    res = run_classification(data, [name], (1.0,), (0,), out=tmp_path / "c", verbose=False, **TINY)
    rec = res["records"][0]
    _check_schema(rec, len(data.y_test))
    upright = rec["per_item"]["identity"] if "identity" in rec["per_item"] else rec["per_item"]["grid:[d,h,w]"]
    assert np.mean(upright) == pytest.approx(rec["upright"])
    seg = run_segmentation("chest_ct", [name], (0,), downsample=4, patch_size=16, val_crop=16, channels=(1, 2),
                           epochs=1, patches_per_epoch=4, batch_size=2, n_random=1, out=tmp_path / "s",
                           verbose=False)
    srec = seg["records"][0]
    _check_schema(srec, 1)
    assert srec["task"] == "segment" and rec["task"] == "classify" and calls[-1][0] == "segment"
    assert set(RECORD_KEYS) <= set(srec) and set(RECORD_KEYS) <= set(rec)


def test_register_competitor_rejects_bad_rows():
    with pytest.raises(ValueError, match="already registered"):
        register_competitor("plain + grid aug", arch="baseline")
    with pytest.raises(ValueError, match="unknown training options"):
        register_competitor("x", lambda ctx: nn.Identity(), train={"learning_rate": 1})
    with pytest.raises(ValueError, match="augment"):
        register_competitor("x", lambda ctx: nn.Identity(), augment="rot")
    with pytest.raises(ValueError, match="builder"):
        register_competitor("x")
    with pytest.raises(ValueError, match="built-in"):
        unregister_competitor("plain (matched params)")
    with pytest.raises(ValueError, match="list that competitor before it"):
        run_classification(_bars_data(), ["plain + grid aug + TTA24", "plain + grid aug"], verbose=False, **TINY)
    with pytest.raises(ValueError, match="unknown segment competitor"):
        run_segmentation("chest_ct", ["MONAI ResNet + grid aug"], verbose=False)
    assert "x" not in COMPETITORS


def test_classification_data_follow_the_training_path_intensity_rule(tmp_path):
    """8-bit images are divided by 255 (decided on the training split) as ``equivox train`` does; labels kept."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(40, 8, 8, 8), dtype=np.uint8)
    y = np.repeat(np.arange(4), 10)
    p = tmp_path / "toy.npz"
    np.savez(p, train_images=x[:30], train_labels=y[:30], val_images=x[30:], val_labels=y[30:],
             test_images=x[30:], test_labels=y[30:])
    data = load_classification_data(str(p))
    assert float(data.x_test.max()) <= 1.0 and data.metric == "accuracy"
    assert torch.allclose(data.x_test[:, 0], torch.from_numpy(x[30:].astype(np.float32) / 255))
    assert np.array_equal(data.y_test, y[30:])
    assert len(data.y_train) + len(data.y_val) == 30 and len(data.y_val) >= 4  # 15 % held out, every class


def _record(model, seed, correct):
    correct = [int(c) for c in correct]
    return {"dataset": "d", "model": model, "train_fraction": 1.0, "seed": seed, "metric": "accuracy",
            "params": 1, "train_seconds": 1.0, "n_test": len(correct), "n_train": 10,
            "upright": float(np.mean(correct)), "mean_grid": float(np.mean(correct)),
            "worst_grid": float(np.mean(correct)), "mean_so3": None, "worst_so3": None,
            "per_item": {"identity": correct, "grid:a": correct, "grid:b": correct}}


def test_paired_verdicts_met_missed_and_unresolved_with_items_needed():
    good, bad = [1] * 90 + [0] * 10, [1] * 50 + [0] * 50
    close = [0] * 3 + [1] * 52 + [0] * 45  # 3 items B gets right wrong, 5 it gets wrong right
    recs = [_record("A", s, good) for s in range(3)] + [_record("B", s, bad) for s in range(3)] + \
           [_record("C", s, close) for s in range(3)]
    met = compare(recs, "A", "B", "upright", 0.10)
    assert met["verdict"] == "met" and met["difference"] == pytest.approx(0.4) and met["ci"][0] > 0.10
    assert compare(recs, "B", "A", "worst_grid", 0.0)["verdict"] == "missed"
    same = compare(recs, "A", "A", "upright", 0.0)
    assert same["difference"] == 0.0 and same["ci"] == [0.0, 0.0]
    unresolved = compare(recs, "C", "B", "upright", 0.0)  # +2 points on 100 items: noise
    assert unresolved["verdict"] == "unresolved" and unresolved["needs"] > 100
    assert unresolved["ci"][0] < 0 < unresolved["ci"][1]


def test_tables_and_verdicts_name_the_dataset_when_there_are_several():
    recs = [_record("A", 0, [1, 0, 1, 1])] + [{**_record("A", 0, [0, 0, 1, 1]), "dataset": "other"}]
    table = format_records(recs)
    assert table.index("[other]") > table.index("[" + recs[0]["dataset"] + "]")
    line = format_verdicts([compare(recs, "A", "A", "upright", 0.0, dataset="other")])
    assert "other: 4 items x 1 seeds" in line


def test_data_efficiency_curve_down_to_5_percent_with_three_seeds(tmp_path):
    xtr, ytr = _bars(20, 0)
    xte, yte = _bars(6, 1)
    data = ClassificationData("bars", xtr, ytr, xte[::3], yte[::3], xte, yte, ["along D", "along H"])
    res = run_classification(data, ["plain (matched params)"], (0.05, 1.0), (0, 1, 2), out=tmp_path / "runs",
                             verbose=False, **{**TINY, "epochs": 1})
    curve = data_efficiency(res["records"])["plain (matched params)"]
    assert [p["train_fraction"] for p in curve] == [0.05, 1.0]
    assert [p["n_seeds"] for p in curve] == [3, 3]
    assert curve[0]["n_train"] == 2 and curve[1]["n_train"] == 40  # 1 and 20 per class
    for p in curve:
        assert p["ci"][0] <= p["value"] <= p["ci"][1]
    files = plot_records(res["records"], tmp_path)
    assert (tmp_path / "data_efficiency.png") in files and (tmp_path / "data_efficiency.png").stat().st_size > 0


def test_matched_baseline_of_a_class_swap_net_is_a_plain_twin_with_the_same_outputs():
    from equivox.baselines import build_from_spec, count_parameters, matched_baseline

    net = build_from_spec({"cls": "EquivariantUNet", "kwargs": dict(
        spatial_dims=3, in_channels=1, out_channels=3, channels=[1, 2], strides=[2], group="full_octa",
        class_swaps=[[1, 2]])})
    twin = matched_baseline(net)
    x = torch.randn(2, 1, 8, 8, 8)
    assert twin(x).shape == net(x).shape == (2, 3, 8, 8, 8)
    assert twin.group == "trivial" and twin.class_permutation is None and net.class_permutation == (0, 2, 1)
    assert abs(count_parameters(twin) - count_parameters(net)) / count_parameters(net) < 0.1


def test_left_right_pairs_from_class_names():
    from equivox.benchmark import left_right_pairs

    names = ["background", "frontal_L", "frontal_R", "vermis", "Left lung", "right lung", "occipital_L"]
    assert left_right_pairs(names) == ((1, 2), (4, 5))  # occipital_L has no right partner, vermis no side
    assert left_right_pairs(["background", "liver", "spleen"]) == ()


def _mirror_blobs(split):
    """One 16^3 volume: a bright blob in the low-W half labelled 1 (``blob_L``), a dimmer one mirrored to the
    high-W half labelled 2 (``blob_R``)."""
    img = torch.zeros(1, 16, 16, 16)
    lab = torch.zeros(1, 16, 16, 16, dtype=torch.long)
    img[0, 5:11, 5:11, 2:6], lab[0, 5:11, 5:11, 2:6] = 1.0, 1
    img[0, 5:11, 5:11, 10:14], lab[0, 5:11, 5:11, 10:14] = 0.6, 2
    return {"volumes": [(img, lab)], "label_names": {0: "background", 1: "blob_L", 2: "blob_R"}}


def test_class_swap_competitor_is_scored_with_labels_swapped_under_reflections(tmp_path):
    """The label-permuting row on a left/right task, scored under the 48 elements of full_octa: the data's
    left/right labels swap under every reflection for every model, and the class-swap net is exact there."""
    from equivox.data import DatasetSpec, register_dataset, unregister_dataset

    register_dataset(DatasetSpec("mirror_blobs_test", "segmentation", _mirror_blobs))
    try:
        res = run_segmentation("mirror_blobs_test", ["equivariant (full_octa) + class swaps",
                                                     "plain (matched params)"], (0,), downsample=1,
                               patch_size=16, val_crop=16, channels=(1, 2), epochs=1, patches_per_epoch=2,
                               batch_size=2, n_random=1, rotation_group="full_octa", out=tmp_path, verbose=False)
    finally:
        unregister_dataset("mirror_blobs_test")
    swap, plain = res["records"]
    assert res["config"]["class_swaps"] == [[1, 2]]
    assert sum(1 for n in swap["per_item"] if n.startswith("grid:")) == 48
    # exact up to argmax ties of a barely trained net; unswapped labels would score the mirrored blobs as wrong
    assert swap["equivariance_error"] < 1e-4 and swap["std_grid"] < 0.01, swap
    assert swap["upright"] > 0.05 and abs(swap["mean_grid"] - swap["upright"]) < 0.01, swap
    assert plain["equivariance_error"] > 1e-3


def test_split_worst_is_free_of_the_selection_bias_of_the_minimum():
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
    rec = _record("A", 0, [1, 0] * 20)
    rec.pop("worst_grid_split", None)
    row = summarize_records([rec])[0]
    assert row["worst_grid_split"] == pytest.approx(np.mean(split_worst(np.array([[1, 1], [0, 0]] * 20))))
    assert "cube worst (split)" in format_records([rec])


def test_fewer_than_30_items_draw_no_verdict():
    from equivox.benchmark import MIN_VERDICT_ITEMS, TOO_FEW

    assert MIN_VERDICT_ITEMS == 30
    few = [_record("A", s, [1] * 20) for s in range(3)] + [_record("B", s, [0] * 20) for s in range(3)]
    v = compare(few, "A", "B", "upright", 0.1)
    assert v["verdict"] == TOO_FEW and v["difference"] == 1.0 and v["n_items"] == 20
    assert "too few items to decide: 20 < 30" in format_verdicts([v])
    enough = [_record("A", 0, [1] * 30), _record("B", 0, [0] * 30)]
    assert compare(enough, "A", "B", "upright", 0.1)["verdict"] == "met"


def test_plateau_rule_of_learning_curves():
    from equivox.benchmark import plateaued

    assert plateaued([(i, v) for i, v in enumerate([.1, .4, .6, .65, .66, .66, .665, .664, .66, .662])])
    assert not plateaued([(i, .1 * i) for i in range(10)])  # still climbing
    assert plateaued([(0, .5), (1, .6)]) is None  # too short to tell


def test_confidence_canonicalization_row_fits_nothing_and_is_exact(tmp_path):
    """The confidence row wraps the trained plain model, trains nothing (no steps, the plain model's time), costs
    24 forward passes per item, and is exactly invariant: its worst cube rotation equals its upright score."""
    res = run_classification("furniture", ["plain (matched params)", "plain (frozen) + confidence canonicalization"],
                             (1.0,), (0,), input_size=8, channels=(1, 2), strides=(2,), convs_per_level=1,
                             hidden_features=(8,), epochs=1, batch_size=16, n_random=0, max_test=12,
                             out=tmp_path, verbose=False)
    plain, conf = res["records"]
    assert conf["train_steps"] == 0 and conf["train_seconds"] == plain["train_seconds"]
    assert conf["eval_cost"] == 24 and plain["eval_cost"] == 1 and conf["std_grid"] < 1e-9
    assert conf["equivariance_error"] < 1e-4 < plain["equivariance_error"]
    assert 0 <= conf["identity_rate"] <= conf["equivalent_rate"] <= 1
    assert "[24x inference]" in format_records(res["records"])
    with pytest.raises(ValueError, match="scorer must be"):
        register_competitor("bad confidence", arch="baseline", canonicalize="octa", scorer="confidence")


def test_calibrated_canonicalization_row_fits_its_head_on_validation_items_and_is_exact(tmp_path):
    """The calibrated row fits only its upright head (on the validation split, seconds added to the frozen plain
    model's time; no optimiser steps), costs 24 forward passes per item, and is exactly invariant."""
    res = run_classification("furniture", ["plain (matched params)", "plain (frozen) + calibrated canonicalization"],
                             (1.0,), (0,), input_size=8, channels=(1, 2), strides=(2,), convs_per_level=1,
                             hidden_features=(8,), epochs=1, batch_size=16, n_random=0, max_test=12,
                             out=tmp_path, verbose=False)
    plain, cal = res["records"]
    assert cal["train_steps"] == 0 and cal["train_seconds"] > plain["train_seconds"]
    assert cal["eval_cost"] == 24 and cal["std_grid"] < 1e-9 and cal["equivariance_error"] < 1e-4
    with pytest.raises(ValueError, match="scorer must be"):
        register_competitor("bad calibrated", arch="baseline", canonicalize="octa", scorer="calibrated")
