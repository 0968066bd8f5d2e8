"""equivox.training.run_folder: the output folder of a run: an unwritable one is reported before any work (one
line from the CLI, within seconds); a failed run leaves nothing behind and puts an earlier run back; a Python re-run
into the same folder replaces the earlier run with a warning (none with overwrite), so last.ckpt is the newest."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from torch import nn

from equivox.training import TrainConfig, fit


def test_unwritable_output_folder_is_reported_before_training(tmp_path, capsys, tiny_classify):
    from equivox import cli
    (tmp_path / "afile").write_text("x")
    bad = tmp_path / "afile" / "out"
    t0 = time.time()
    assert cli.main(["train", "--dataset", "/no/such/data.npz", "--out", str(bad), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("equivox: error: output folder") and str(bad) in err[0], err
    assert time.time() - t0 < 10
    with pytest.raises(OSError, match="output folder .* is not writable"):
        fit(TrainConfig(**tiny_classify, out_dir=str(bad)))


class _Boom(nn.Module):
    """Fails in its first forward pass (a failure during training)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(1, 2)

    def forward(self, x):
        raise RuntimeError("boom")


def _tree(folder: Path):
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def test_a_failed_run_leaves_nothing_behind_and_puts_an_earlier_run_back(tmp_path, npz_config):
    new = tmp_path / "new" / "a" / "run"
    with pytest.raises(RuntimeError, match="boom"):
        fit(npz_config(tmp_path, new), model=_Boom())
    assert not (tmp_path / "new").exists()  # no logs/version_0/hparams.yaml, no empty folders
    run = tmp_path / "run"
    fit(npz_config(tmp_path, run))
    before = _tree(run)
    with pytest.raises(RuntimeError, match="boom"):
        fit(npz_config(tmp_path, run, overwrite=True), model=_Boom())
    assert _tree(run) == before  # the replacing run failed before its first checkpoint: the earlier run is back


def test_a_python_rerun_replaces_the_earlier_run_and_last_ckpt_is_the_newest(tmp_path, recwarn, npz_config):
    run = tmp_path / "run"
    fit(npz_config(tmp_path, run))
    with pytest.warns(UserWarning, match="holds an earlier run"):
        res = fit(npz_config(tmp_path, run, seed=1))
    assert res.last_checkpoint == run / "checkpoints" / "last.ckpt"
    assert torch.load(res.last_checkpoint, weights_only=False)["hyper_parameters"]["config"]["seed"] == 1
    assert len(list((run / "checkpoints").iterdir())) == 2 and [p.name for p in (run / "logs").iterdir()] == [
        "version_0"]
    recwarn.clear()
    fit(npz_config(tmp_path, run, seed=2, overwrite=True))  # deliberate: no warning
    assert not [w for w in recwarn if "earlier run" in str(w.message)]
    with pytest.raises(ValueError, match="overwrite and resume"):
        npz_config(tmp_path, run, overwrite=True, resume=str(res.last_checkpoint))
