"""equivox.training.fit: checkpoints survive interrupted saves, bad output folders are reported first, the
MONAI U-Net architecture trains and evaluates from the CLI."""
from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from equivox import cli
from equivox.training import TrainConfig, fit, load_checkpoint


TINY_CLS = dict(task="classify", input_size=8, channels=(2, 2), strides=(2,), convs_per_level=1, hidden_features=(8,),
                epochs=1, batch_size=4, progress=False, accelerator="cpu")


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_interrupted_checkpoint_save_keeps_the_previous_one_and_resume_works(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    data = _npz(tmp_path / "d.npz", images=rng.random((12, 8, 8, 8)).astype(np.float32), labels=np.arange(12) % 2)
    cfg = TrainConfig(**{**TINY_CLS, "dataset": str(data), "input_size": None}, out_dir=str(tmp_path / "out"))
    res = fit(cfg)
    last = res.last_checkpoint
    good, names = last.read_bytes(), sorted(p.name for p in last.parent.iterdir())
    real_save = torch.save

    def half_then_fail(obj, f, *args, **kwargs):  # a full disk (or a kill) halfway through writing epoch 2
        if isinstance(obj, dict) and obj.get("epoch") == 1:
            buf = io.BytesIO()
            real_save(obj, buf, *args, **kwargs)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        fit(cfg.merged({"epochs": 2, "resume": str(last)}))
    monkeypatch.setattr(torch, "save", real_save)
    assert last.read_bytes() == good  # the previous checkpoint is untouched ...
    assert sorted(p.name for p in last.parent.iterdir()) == names  # ... and no partial file is left
    model, hp = load_checkpoint(last)
    res2 = fit(cfg.merged({"epochs": 2, "resume": str(last)}))  # ... and training resumes from it
    assert res2.global_step == 2 * res.global_step and res2.trainer.current_epoch == 2


def test_killed_during_a_checkpoint_save_leaves_the_previous_file(tmp_path, monkeypatch, fork_child):
    import signal

    from equivox.training.fit import atomic_checkpoint_io

    target = tmp_path / "last.ckpt"
    torch.save({"epoch": 0, "w": torch.zeros(10)}, target)
    good = target.read_bytes()
    real = torch.save

    def save_and_die(obj, f, *args, **kwargs):  # the process is killed with the new checkpoint half written
        buf = io.BytesIO()
        real(obj, buf)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def child():
        torch.save = save_and_die
        atomic_checkpoint_io().save_checkpoint({"epoch": 1, "w": torch.ones(100_000)}, str(target))

    _, status = os.waitpid(fork_child(child), 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert target.read_bytes() == good
    assert torch.load(target, weights_only=True)["epoch"] == 0
    # the interrupted write left at most its hidden temporary file, never a partial last.ckpt
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["last.ckpt"]


def test_unwritable_output_folder_is_reported_before_training(tmp_path, capsys):
    from equivox import cli

    (tmp_path / "afile").write_text("x")
    bad = tmp_path / "afile" / "out"
    t0 = time.time()
    assert cli.main(["train", "--dataset", "/no/such/data.npz", "--out", str(bad), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("equivox: error: output folder") and str(bad) in err[0], err
    assert time.time() - t0 < 10
    with pytest.raises(OSError, match="output folder .* is not writable"):
        fit(TrainConfig(**TINY_CLS, out_dir=str(bad)))


def test_evaluate_split_for_segmentation_is_a_clear_error(tmp_path, capsys):
    from equivox import cli
    from equivox.training import build_model

    cfg = TrainConfig(task="segment", dataset="chest_ct", channels=(2, 2), strides=(2,), convs_per_level=1)
    model = build_model(cfg, 1, 6)
    ckpt = tmp_path / "seg.ckpt"
    torch.save({"hyper_parameters": {"model_spec": model.equivox_spec, "config": cfg.to_dict(), "num_classes": 6},
                "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, ckpt)
    assert cli.main(["evaluate", str(ckpt), "--split", "test", "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--split test" in err and "validation split" in err


def test_monai_unet_arch_trains_and_evaluates_from_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--task", "segment", "--dataset", "chest_ct", "--downsample", "4", "--patch-size", "8",
            "--patches-per-epoch", "4", "--val-crop", "16", "--channels", "2,2", "--strides", "2", "--epochs", "1",
            "--batch-size", "2", "--arch", "monai_unet", "--out", str(out), "--no-progress"]
    assert cli.main(args) == 0
    ckpt = out / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    ev = tmp_path / "eval"
    assert cli.main(["evaluate", str(ckpt), "--n-random", "1", "--out", str(ev), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "UNet" in text or "dice" in text
    assert any(ev.glob("*.json"))


# ----------------------------------------------------------------------------------------- re-runs, failures, any model
class _Boom(nn.Module):
    """Fails in its first forward pass (a failure during training)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(1, 2)

    def forward(self, x):
        raise RuntimeError("boom")


def _tree(folder: Path):
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def _npz_cfg(tmp_path: Path, out: Path, **kw) -> TrainConfig:
    data = tmp_path / "d.npz"
    if not data.is_file():
        rng = np.random.default_rng(0)
        _npz(data, images=rng.random((12, 8, 8, 8)).astype(np.float32), labels=np.arange(12) % 2)
    return TrainConfig(**{**TINY_CLS, "dataset": str(data), "input_size": None, "extra": {"model_summary": False},
                          **kw}, out_dir=str(out))


def test_a_failed_run_leaves_nothing_behind_and_puts_an_earlier_run_back(tmp_path):
    new = tmp_path / "new" / "a" / "run"
    with pytest.raises(RuntimeError, match="boom"):
        fit(_npz_cfg(tmp_path, new), model=_Boom())
    assert not (tmp_path / "new").exists()  # no logs/version_0/hparams.yaml, no empty folders
    run = tmp_path / "run"
    fit(_npz_cfg(tmp_path, run))
    before = _tree(run)
    with pytest.raises(RuntimeError, match="boom"):
        fit(_npz_cfg(tmp_path, run, overwrite=True), model=_Boom())
    assert _tree(run) == before  # the replacing run failed before its first checkpoint: the earlier run is back


def test_a_python_rerun_replaces_the_earlier_run_and_last_ckpt_is_the_newest(tmp_path, recwarn):
    run = tmp_path / "run"
    fit(_npz_cfg(tmp_path, run))
    with pytest.warns(UserWarning, match="holds an earlier run"):
        res = fit(_npz_cfg(tmp_path, run, seed=1))
    assert res.last_checkpoint == run / "checkpoints" / "last.ckpt"
    assert torch.load(res.last_checkpoint, weights_only=False)["hyper_parameters"]["config"]["seed"] == 1
    assert len(list((run / "checkpoints").iterdir())) == 2 and [p.name for p in (run / "logs").iterdir()] == [
        "version_0"]
    recwarn.clear()
    fit(_npz_cfg(tmp_path, run, seed=2, overwrite=True))  # deliberate: no warning
    assert not [w for w in recwarn if "earlier run" in str(w.message)]
    with pytest.raises(ValueError, match="overwrite and resume"):
        _npz_cfg(tmp_path, run, overwrite=True, resume=str(res.last_checkpoint))


def _plain_classifier():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(2, 2))


def _pooled_equivariant():  # the benchmark's wrapper around a directly built equivox network (demo checkpoints)
    from equivox.benchmark.run import PooledInput
    from equivox.nets import InvariantClassifier

    torch.manual_seed(0)
    return PooledInput(InvariantClassifier(3, 1, 2, channels=(2, 2), strides=(2,), convs_per_level=1,
                                           hidden_features=(8,)), factor=1)


@pytest.mark.parametrize("make", [_plain_classifier, _pooled_equivariant], ids=["sequential", "pooled_input"])
def test_evaluate_loads_a_checkpoint_written_by_fit_with_any_model(make, tmp_path, capsys):
    res = fit(_npz_cfg(tmp_path, tmp_path / "run"), model=make())
    model, hp = load_checkpoint(res.last_checkpoint)
    assert hp["model_spec"]["cls"] == "pickled" and type(model) is type(res.model)
    x = torch.rand(2, 1, 8, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), res.model(x))  # one epoch: best == last
    ev = tmp_path / "ev"
    assert cli.main(["evaluate", str(res.last_checkpoint), "--rotations", "grid", "--out", str(ev),
                     "--no-progress"]) == 0
    assert f"{type(model).__name__} " in capsys.readouterr().out
    assert len(json.loads((ev / "report.json").read_text())["rows"]) == 24
    assert cli.main(["check-equivariance", "--checkpoint", str(res.last_checkpoint), "--size", "8", "--out",
                     str(tmp_path / "chk")]) == 0


def test_fit_writes_a_learning_curve_unless_plots_are_off(tmp_path, monkeypatch):
    from equivox.evaluation import plots

    figs = []
    real = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path, rect=None: (figs.append(fig), real(fig, path, rect))[1])
    rng = np.random.default_rng(0)
    data = _npz(tmp_path / "d.npz", images=rng.random((12, 8, 8, 8)).astype(np.float32), labels=np.arange(12) % 2)
    cfg = TrainConfig(**{**TINY_CLS, "dataset": str(data), "input_size": None, "epochs": 2},
                      out_dir=str(tmp_path / "out"))
    res = fit(cfg)
    png = res.out_dir / "learning_curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and len(figs) == 1
    loss_ax, score_ax = figs[0].axes
    assert "d.npz" in loss_ax.get_title() and "InvariantClassifier" in loss_ax.get_title()
    assert score_ax.get_ylim() == (0.0, 1.0)
    assert [len(line.get_xdata()) for line in loss_ax.get_lines() + score_ax.get_lines()] == [2, 2, 2]
    assert {t.get_text() for t in loss_ax.get_legend().get_texts()} == {"training loss", "validation loss",
                                                                        "validation acc"}
    off = fit(cfg.merged({"plots": False, "out_dir": str(tmp_path / "off")}))
    assert not (off.out_dir / "learning_curve.png").exists() and len(figs) == 1
    assert cli.train_config_from_args(cli.build_parser().parse_args(["train", "--no-plots"])).plots is False


def test_piped_output_gets_a_line_per_epoch_not_progress_bars(monkeypatch, tmp_path):
    """Progress bars only in a terminal: with stderr piped (logs, CI) the trainer prints one line per epoch."""
    import sys

    from equivox.training.config import TrainConfig
    from equivox.training.fit import make_trainer

    cfg = TrainConfig(task="classify", dataset="furniture", progress=True, epochs=1)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    trainer, _ = make_trainer(cfg, tmp_path, "val_loss", "min")
    names = [type(c).__name__ for c in trainer.callbacks]
    assert "EpochLines" in names and "TQDMProgressBar" not in names
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    trainer, _ = make_trainer(cfg, tmp_path, "val_loss", "min")
    names = [type(c).__name__ for c in trainer.callbacks]
    assert "TQDMProgressBar" in names and "EpochLines" not in names


def test_last_checkpoint_is_the_last_epoch_even_without_a_new_best(tmp_path):
    # lr so small that validation loss never improves after epoch 1: best stays at epoch 0, last must move on
    rng = np.random.default_rng(0)
    data = _npz(tmp_path / "d.npz", images=rng.random((12, 8, 8, 8)).astype(np.float32), labels=np.arange(12) % 2)
    cfg = TrainConfig(**{**TINY_CLS, "dataset": str(data), "input_size": None, "epochs": 3, "lr": 1e-12,
                         "plots": False}, out_dir=str(tmp_path / "out"))
    res = fit(cfg)
    last = torch.load(res.last_checkpoint, map_location="cpu", weights_only=False)
    assert res.last_checkpoint.name == "last.ckpt" and last["global_step"] == res.global_step == 9
    again = fit(cfg.merged({"epochs": 4, "resume": str(res.last_checkpoint)}))
    assert again.global_step == 12 and len(again.curve) == 4
