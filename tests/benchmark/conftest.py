"""Helpers of the tests/benchmark test files, handed out as fixtures: a tiny two-class bar dataset, a tiny user
network registered as a competitor row, tiny run settings, and a record built from per-item correctness."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

#: run_classification settings small enough for a test (8^3 inputs, 2 epochs, one random rotation)
TINY = dict(input_size=8, channels=(2, 2), strides=(2,), hidden_features=(8,), epochs=2, batch_size=8, n_random=1)


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
    from equivox.benchmark import ClassificationData

    xtr, ytr = _bars(n_train, 0)
    xte, yte = _bars(n_test, 1)
    return ClassificationData("bars", xtr, ytr, xte[::3], yte[::3], xte, yte, ["along D", "along H"])


class TinyCNN(nn.Module):
    """One 3x3x3 convolution, then a linear layer on the mean (classification) or a 1x1x1 convolution (segmentation)."""

    def __init__(self, in_channels, n_out, segment):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, 3, 3, padding=1)
        self.out = nn.Conv3d(3, n_out, 1) if segment else nn.Linear(3, n_out)
        self.segment = segment

    def forward(self, x):
        h = torch.relu(self.conv(x))
        return self.out(h) if self.segment else self.out(h.mean(dim=(2, 3, 4)))


def _record(model, seed, correct):
    correct = [int(c) for c in correct]
    return {"dataset": "d", "model": model, "train_fraction": 1.0, "seed": seed, "metric": "accuracy",
            "params": 1, "train_seconds": 1.0, "n_test": len(correct), "n_train": 10,
            "upright": float(np.mean(correct)), "mean_grid": float(np.mean(correct)),
            "worst_grid": float(np.mean(correct)), "mean_so3": None, "worst_so3": None,
            "per_item": {"identity": correct, "grid:a": correct, "grid:b": correct}}


@pytest.fixture
def bars():
    """``bars(n_per_class, seed, size=8) -> (x (N, 1, size, size, size) float, y (N,))``: class 0 a thin bar along
    D, class 1 along H, jittered."""
    return _bars


@pytest.fixture
def bars_data():
    """``bars_data(n_train=12, n_test=10) -> ClassificationData`` of ``bars``: every third test item validates."""
    return _bars_data


@pytest.fixture
def tiny_settings():
    """A fresh copy of tiny run_classification settings (8^3, channels (2, 2), 2 epochs, one random rotation)."""
    return dict(TINY)


@pytest.fixture
def tiny_cnn():
    """``tiny_cnn(in_channels, n_out, segment) -> nn.Module``: a plain one-convolution network."""
    return TinyCNN


@pytest.fixture
def user_row():
    """A user's competitor row ``"my tiny CNN + grid aug"`` (a ``tiny_cnn`` builder, grid augmentation, lr 1e-2),
    registered for the test and removed after it; yields ``(name, calls)``, ``calls`` the builder's
    ``(task, in_channels, n_classes, group)``."""
    from equivox.benchmark import register_competitor, unregister_competitor

    calls = []

    def build(ctx):
        calls.append((ctx.task, ctx.in_channels, ctx.n_classes, ctx.group))
        return TinyCNN(ctx.in_channels, ctx.n_classes, ctx.task == "segment")

    name = "my tiny CNN + grid aug"
    register_competitor(name, build, augment="grid", train={"lr": 1e-2})
    yield name, calls
    unregister_competitor(name)


@pytest.fixture
def record_of_items():
    """``record_of_items(model, seed, correct) -> record``: an accuracy record of dataset ``"d"`` whose upright and
    two grid rotations score the items ``correct`` (0/1 each) alike."""
    return _record
