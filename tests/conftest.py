"""Shared fixtures: small models are built once per test process (and their escnn bases once per machine)."""
from __future__ import annotations

import functools
import os

import pytest
import torch

SMALL = dict(channels=(2, 2), strides=(2,))

# full_ico (120-dim regular fields) needs a 1.9 GB kernel basis and ~8 minutes to build it cold on 2 cores: its
# model tests run only on request. Its group data and grid elements are tested always (test_core_groups.py).
LARGE_GROUPS_ON = os.environ.get("EQUIVOX_TEST_FULL_ICO") == "1"

# `make test` runs one pytest-xdist worker per core: more than one torch thread per worker oversubscribes the
# CPU (tiny convs then run ~100x slower while the other worker is busy).
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@functools.lru_cache(maxsize=None)
def _small_model(kind: str, group: str, seed: int = 0):
    from equivox.nets import EquivariantUNet, InvariantClassifier

    if group == "full_ico" and not LARGE_GROUPS_ON:
        pytest.skip("full_ico models build a 1.9 GB basis (~8 min cold): set EQUIVOX_TEST_FULL_ICO=1 to run")

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


@pytest.fixture
def fork_child():
    """``fork_child(child) -> pid``: run ``child()`` in a forked process (equivox already imported: no start-up
    cost), one torch thread; the child exits 0 when ``child()`` returns, 1 when it raises."""

    def run(child) -> int:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 1
            try:
                torch.set_num_threads(1)
                child()
                code = 0
            finally:
                os._exit(code)
        return pid

    return run
