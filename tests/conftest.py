"""Shared fixtures: small models are built once per test process (and their escnn bases once per machine)."""
from __future__ import annotations

import functools

import pytest
import torch

SMALL = dict(channels=(2, 2), strides=(2,))


@functools.lru_cache(maxsize=None)
def _small_model(kind: str, group: str, seed: int = 0):
    from equivox.nets import EquivariantUNet, InvariantClassifier

    torch.manual_seed(seed)
    cls = EquivariantUNet if kind == "unet" else InvariantClassifier
    return cls(3, 1, 3, group=group, **SMALL)


@pytest.fixture(scope="session")
def small_model():
    """``small_model(kind, group, seed=0)`` -> a cached tiny U-Net (``"unet"``) or classifier (``"clf"``).

    Tests must not modify the returned model in place (use ``copy.deepcopy``)."""
    return _small_model


@pytest.fixture
def cube_input():
    """A fixed random input (2, 1, 8, 8, 8)."""
    return torch.randn(2, 1, 8, 8, 8, generator=torch.Generator().manual_seed(7))
