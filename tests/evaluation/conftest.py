"""Fixtures shared by the tests of equivox.evaluation: tiny models on 8^3 inputs and their data."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from equivox.evaluation import RotationReport, rotation_set


@pytest.fixture(scope="module")
def classifiers():
    """Two-class tiny classifiers: exactly invariant (octa) and not (trivial), eval mode."""
    from equivox.nets import InvariantClassifier

    out = {}
    for g in ("octa", "trivial"):
        torch.manual_seed(3)
        out[g] = InvariantClassifier(3, 1, 2, channels=(2, 2), strides=(2,), group=g).eval()
    return out


@pytest.fixture(scope="module")
def clf_data():
    """8 asymmetric random volumes (1, 8, 8, 8) with balanced labels."""
    x = torch.randn(8, 1, 8, 8, 8, generator=torch.Generator().manual_seed(11)) * 2 + torch.linspace(0, 1, 8).view(
        1, 1, 8, 1, 1)
    y = torch.tensor([0, 1] * 4)
    return x, y


@pytest.fixture(scope="module")
def seg_data():
    """2 volumes (1, 8, 8, 8) with 3-class labels from thresholds of a smoothed image."""
    x = torch.randn(2, 1, 8, 8, 8, generator=torch.Generator().manual_seed(5))
    smooth = torch.nn.functional.avg_pool3d(x, 3, stride=1, padding=1)
    y = (smooth > 0.1).long() + (smooth > 0.4).long()
    return x, y


@pytest.fixture(scope="module")
def small_rotations():
    """identity + the 24 cube rotations + 2 random rotations."""
    return rotation_set("standard", group="octa", n_random=2, seed=1)


class PlainCNN(nn.Module):
    """A plain torch classifier (no symmetry): conv, flatten, linear."""

    def __init__(self, k=2):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv3d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8 * 8, k)
        self.out_channels = k

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


@pytest.fixture
def plain_cnn():
    """``plain_cnn(k=2)``: a plain torch classifier of 8^3 volumes (conv, flatten, linear), no symmetry."""
    return PlainCNN


def _fake_report(name, grid, so3, upright):
    rows = [{"rotation": "identity", "kind": "identity", "exact": True, "score": upright}]
    rows += [{"rotation": f"grid:{i}", "kind": "grid", "exact": True, "score": v} for i, v in enumerate(grid)]
    rows += [{"rotation": f"so3:{i}", "kind": "so3", "exact": False, "score": v} for i, v in enumerate(so3)]
    return RotationReport(name, "score", rows)


@pytest.fixture
def fake_report():
    """``fake_report(name, grid_scores, so3_scores, upright_score) -> RotationReport`` (metric "score")."""
    return _fake_report
