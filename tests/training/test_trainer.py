"""equivox.training.trainer: the Lightning machinery of a run: checkpoints written atomically (an interrupted or
killed save keeps the previous file and training resumes from it), the last checkpoint always the last epoch (even
without a new best), and progress bars only in a terminal (a line per epoch when piped)."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch

from equivox.training import TrainConfig, fit, load_checkpoint


def test_interrupted_checkpoint_save_keeps_the_previous_one_and_resume_works(tmp_path, monkeypatch, write_npz,
                                                                             tiny_classify):
    rng = np.random.default_rng(0)
    data = write_npz(tmp_path / "d.npz", images=rng.random((12, 8, 8, 8)).astype(np.float32), labels=np.arange(12) % 2)
    cfg = TrainConfig(**{**tiny_classify, "dataset": str(data), "input_size": None}, out_dir=str(tmp_path / "out"))
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

    from equivox.training.trainer import atomic_checkpoint_io

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


def test_last_checkpoint_is_the_last_epoch_even_without_a_new_best(tmp_path, write_npz, tiny_classify):
    # lr so small that validation loss never improves after epoch 1: best stays at epoch 0, last must move on
    rng = np.random.default_rng(0)
    data = write_npz(tmp_path / "d.npz", images=rng.random((12, 8, 8, 8)).astype(np.float32), labels=np.arange(12) % 2)
    cfg = TrainConfig(**{**tiny_classify, "dataset": str(data), "input_size": None, "epochs": 3, "lr": 1e-12,
                         "plots": False}, out_dir=str(tmp_path / "out"))
    res = fit(cfg)
    last = torch.load(res.last_checkpoint, map_location="cpu", weights_only=False)
    assert res.last_checkpoint.name == "last.ckpt" and last["global_step"] == res.global_step == 9
    again = fit(cfg.merged({"epochs": 4, "resume": str(res.last_checkpoint)}))
    assert again.global_step == 12 and len(again.curve) == 4


def test_piped_output_gets_a_line_per_epoch_not_progress_bars(monkeypatch, tmp_path):
    """Progress bars only in a terminal: with stderr piped (logs, CI) the trainer prints one line per epoch."""
    import sys

    from equivox.training.config import TrainConfig
    from equivox.training.trainer import make_trainer

    cfg = TrainConfig(task="classify", dataset="furniture", progress=True, epochs=1)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    trainer, _ = make_trainer(cfg, tmp_path, "val_loss", "min")
    names = [type(c).__name__ for c in trainer.callbacks]
    assert "EpochLines" in names and "TQDMProgressBar" not in names
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    trainer, _ = make_trainer(cfg, tmp_path, "val_loss", "min")
    names = [type(c).__name__ for c in trainer.callbacks]
    assert "TQDMProgressBar" in names and "EpochLines" not in names
