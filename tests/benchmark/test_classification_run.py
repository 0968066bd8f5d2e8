"""equivox.benchmark.classification_run: run_classification on tiny settings: a user's competitor row runs
through it into the table and the saved JSON; real signals (an octa-invariant model scores the same on every cube
rotation, a plain one learns the orientation); nested training fractions down to 5 % with three seeds give the
data-efficiency curve; equal steps train every fraction for the steps of the full set."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from equivox.benchmark import (RECORD_KEYS, ClassificationData, data_efficiency, format_records, plot_records,
                               run_classification, save_records)


def _thick_bars(n_per_class: int, seed: int):
    """Class 0: a bar along D, class 1: a bar along H (the same shape up to a rotation), 16^3, jittered."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label in (0, 1):
        for _ in range(n_per_class):
            x = np.zeros((16, 16, 16), np.float32)
            c = rng.integers(6, 10, size=3)
            if label == 0:
                x[3:13, c[1] - 1:c[1] + 1, c[2] - 1:c[2] + 1] = 1
            else:
                x[c[0] - 1:c[0] + 1, 3:13, c[2] - 1:c[2] + 1] = 1
            xs.append(x)
            ys.append(label)
    return torch.from_numpy(np.stack(xs))[:, None], np.array(ys)


def test_user_competitor_runs_through_the_harness_and_is_in_table_and_json(tmp_path, user_row, capsys, bars_data,
                                                                            tiny_settings, tiny_cnn):
    name, calls = user_row
    res = run_classification(bars_data(), ["plain (matched params)", name], (1.0,), (0,), out=tmp_path / "runs",
                             verbose=False, **tiny_settings)
    assert calls == [("classify", 1, 2, "octa")]  # the builder saw the task, channels, classes and group
    table = format_records(res["records"])
    assert name in table and "plain (matched params)" in table
    paths = save_records(res, tmp_path, "accuracy", command="pytest")
    doc = json.loads(paths[0].read_text())
    rec = next(r for r in doc["records"] if r["model"] == name)
    assert rec["augment"] == "grid" and rec["arch"] == "custom" and rec["params"] == sum(
        p.numel() for p in tiny_cnn(1, 2, False).parameters())
    assert name in paths[2].read_text() and doc["command"] == "pytest" and doc["machine"]["cpu_count"] >= 1
    assert res["config"]["competitors"] == ["plain (matched params)", name]


def test_invariant_model_scores_the_same_on_every_cube_rotation_and_plain_does_not(tmp_path):
    xtr, ytr = _thick_bars(12, 0)
    xte, yte = _thick_bars(6, 1)
    data = ClassificationData("bars", xtr, ytr, xte, yte, xte, yte, ["along D", "along H"])
    res = run_classification(data, ["equivariant (octa)", "plain (matched params)"], (1.0,), (0,), input_size=16,
                           channels=(2, 2), strides=(2,), hidden_features=(8,), epochs=8, batch_size=8, lr=1e-2,
                           n_random=1, out=tmp_path, verbose=False)
    eq, plain = res["records"]
    for r in res["records"]:
        assert set(RECORD_KEYS) <= set(r)
    # the two classes are one shape in two orientations: an octa-invariant model cannot tell them apart ...
    assert eq["std_grid"] == 0.0 and eq["worst_grid"] == eq["upright"] == pytest.approx(0.5)
    assert eq["equivariance_error"] < 1e-4
    # ... the plain CNN learns the orientation upright, and swaps the classes under quarter turns
    assert plain["upright"] >= 0.9 and plain["worst_grid"] <= 0.1 and plain["std_grid"] > 0.2


def test_data_efficiency_curve_down_to_5_percent_with_three_seeds(tmp_path, bars, tiny_settings):
    xtr, ytr = bars(20, 0)
    xte, yte = bars(6, 1)
    data = ClassificationData("bars", xtr, ytr, xte[::3], yte[::3], xte, yte, ["along D", "along H"])
    res = run_classification(data, ["plain (matched params)"], (0.05, 1.0), (0, 1, 2), out=tmp_path / "runs",
                             verbose=False, **{**tiny_settings, "epochs": 1})
    curve = data_efficiency(res["records"])["plain (matched params)"]
    assert [p["train_fraction"] for p in curve] == [0.05, 1.0]
    assert [p["n_seeds"] for p in curve] == [3, 3]
    assert curve[0]["n_train"] == 2 and curve[1]["n_train"] == 40  # 1 and 20 per class
    for p in curve:
        assert p["ci"][0] <= p["value"] <= p["ci"][1]
    files = plot_records(res["records"], tmp_path)
    assert (tmp_path / "data_efficiency.png") in files and (tmp_path / "data_efficiency.png").stat().st_size > 0


def test_equal_steps_trains_every_fraction_for_the_steps_of_the_full_set(tmp_path):
    xtr, ytr = _thick_bars(16, 0)
    xte, yte = _thick_bars(2, 1)
    data = ClassificationData("bars", xtr, ytr, xte, yte, xte, yte, ["along D", "along H"])
    kw = dict(input_size=16, channels=(1, 1), strides=(2,), hidden_features=(4,), epochs=2, batch_size=8,
              n_random=0, out=tmp_path, verbose=False)
    steps = {}
    for equal in (False, True):
        res = run_classification(data, ["plain (matched params)"], (0.5, 1.0), (0,), equal_steps=equal, **kw)
        steps[equal] = {r["train_fraction"]: r["train_steps"] for r in res["records"]}
    assert steps[False][0.5] < steps[False][1.0]  # fixed epochs: half the data, fewer steps
    assert steps[True][0.5] == steps[True][1.0] == steps[False][1.0]
