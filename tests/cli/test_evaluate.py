"""equivox.cli.evaluate (``equivox evaluate``): options that do not go together are named as the user gave them; a
checkpoint is scored on the grids its model was trained on. (The data a checkpoint is scored on and the rotations
exact for a voxel spacing are the library's: tests/evaluation/test_trained.py, test_rotations.py.)"""
from __future__ import annotations

import json

import pytest

from equivox import cli


@pytest.mark.parametrize("argv, expected", [
    (["evaluate", "/no/such.ckpt", "--val-crop", "8"], "--val-crop is for scoring a labelled folder"),
    (["evaluate", "/no/such.ckpt", "--crop", "8"], "--crop is for scoring a labelled folder"),
    (["evaluate", "/no/such.ckpt", "--image-dir", "i"], "give both --image-dir and --label-dir"),
    (["evaluate", "/no/such.ckpt"], "checkpoint not found: /no/such.ckpt"),
])
def test_option_mistakes_are_named_as_given(argv, expected, capsys):
    assert cli.main(argv) == 2
    assert expected in capsys.readouterr().err.strip().splitlines()[-1]


def test_evaluate_feeds_a_benchmark_style_checkpoint_the_grids_its_model_was_trained_on(tmp_path, capsys):
    """The harness (and so the demo) trains `PooledInput` on stored grids while its config names the pooled size
    (input_size): evaluate prepares the grids at the trained size, says so, and scores as the model was trained (not
    pooled a second time)."""
    import numpy as np
    import torch

    from equivox.benchmark.run import PooledInput
    from equivox.training import ArrayClassificationDataset, DataInfo, TrainConfig, classification_arrays, fit

    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(data, images=(rng.random((20, 8, 8, 8)) > 0.5).astype(np.float32), labels=np.arange(20) % 2)
    cfg = TrainConfig(task="classify", dataset=str(data), input_size=4, epochs=1, batch_size=4, progress=False,
                      accelerator="cpu", out_dir=str(tmp_path / "run"), extra={"model_summary": False})
    stored = TrainConfig(task="classify", dataset=str(data), input_size=None)
    x, y, names = classification_arrays(stored, "train")
    xv, yv, _ = classification_arrays(stored, "val")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(2 * 4 ** 3, 2))
    res = fit(cfg, model=PooledInput(net, factor=2), train_data=ArrayClassificationDataset(x, y),
              val_data=ArrayClassificationDataset(xv, yv), info=DataInfo(1, 2, names, len(y), len(yv), (4, 4, 4)))
    ev = tmp_path / "ev"
    assert cli.main(["evaluate", str(res.last_checkpoint), "--split", "test", "--rotations", "identity", "--out",
                     str(ev), "--no-progress"]) == 0
    assert "trained on 8^3 inputs (its config's input_size is 4)" in capsys.readouterr().out
    xt, yt, _ = classification_arrays(stored, "test")
    with torch.no_grad():
        want = float((res.model(xt).argmax(1).numpy() == yt).mean())
    assert json.loads((ev / "report.json").read_text())["rows"][0]["accuracy"] == pytest.approx(want)


def test_evaluate_split_for_segmentation_is_a_clear_error(tmp_path, capsys):
    """A segmentation checkpoint is scored on the validation split only: ``--split test`` is one line saying so."""
    import torch

    from equivox.training import TrainConfig, build_model

    cfg = TrainConfig(task="segment", dataset="chest_ct", channels=(2, 2), strides=(2,), convs_per_level=1)
    model = build_model(cfg, 1, 6)
    ckpt = tmp_path / "seg.ckpt"
    torch.save({"hyper_parameters": {"model_spec": model.equivox_spec, "config": cfg.to_dict(), "num_classes": 6},
                "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, ckpt)
    assert cli.main(["evaluate", str(ckpt), "--split", "test", "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--split test" in err and "validation split" in err
