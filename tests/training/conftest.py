"""Helpers of the tests/training test files, handed out as fixtures: tiny classification settings and a tiny
``.npz`` dataset to fit them on."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

#: a tiny classifier trained for one epoch on the CPU
TINY_CLS = dict(task="classify", input_size=8, channels=(2, 2), strides=(2,), convs_per_level=1, hidden_features=(8,),
                epochs=1, batch_size=4, progress=False, accelerator="cpu")


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _npz_cfg(tmp_path: Path, out: Path, **kw):
    from equivox.training import TrainConfig

    data = tmp_path / "d.npz"
    if not data.is_file():
        rng = np.random.default_rng(0)
        _npz(data, images=rng.random((12, 8, 8, 8)).astype(np.float32), labels=np.arange(12) % 2)
    return TrainConfig(**{**TINY_CLS, "dataset": str(data), "input_size": None, "extra": {"model_summary": False},
                          **kw}, out_dir=str(out))


@pytest.fixture
def tiny_classify():
    """A fresh copy of tiny classification settings (8^3, channels (2, 2), one epoch, batch 4, CPU, no progress)."""
    return dict(TINY_CLS)


@pytest.fixture
def write_npz():
    """``write_npz(path, **arrays) -> path``: ``numpy.savez``."""
    return _npz


@pytest.fixture
def npz_config():
    """``npz_config(tmp_path, out, **settings) -> TrainConfig``: ``tiny_classify`` on ``tmp_path/d.npz`` (12 random
    8^3 items, two classes; written once), stored size, no model summary, output folder ``out``."""
    return _npz_cfg
