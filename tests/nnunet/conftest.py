"""Fixtures shared by the tests of equivox.nnunet: nnU-Net's own planning and network building (these need the
optional nnunetv2: tests using them are skipped without it), a relative equivariance error, cube rotations written
with torch.rot90, and one run of examples/nnunet/run_tiny.py per session."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
RUN_TINY = ROOT / "examples" / "nnunet" / "run_tiny.py"


@pytest.fixture(scope="session")
def nnunetv2():
    """The nnunetv2 module; tests that need nnU-Net itself are skipped without it."""
    return pytest.importorskip("nnunetv2", reason="nnunetv2 not installed (pip install -e '.[nnunet]')")


def _planned_arch(spacing, patch, n_classes=3):
    from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props

    _, strides, kernels, patch, _ = get_pool_and_conv_props(spacing, patch, 4, 999999)
    n = len(strides)
    return {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": n, "features_per_stage": [min(32 * 2 ** i, 320) for i in range(n)],
            "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": [list(k) for k in kernels],
            "strides": [list(s) for s in strides], "n_conv_per_stage": [2] * n,
            "n_conv_per_stage_decoder": [2] * (n - 1), "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-5, "affine": True},
            "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True}},
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }, [int(p) for p in patch]


@pytest.fixture
def planned_arch(nnunetv2):
    """``planned_arch(spacing, patch) -> (architecture, patch)``: the 3d_fullres ``architecture`` nnU-Net's
    ExperimentPlanner writes for ``spacing`` / initial ``patch`` (its own get_pool_and_conv_props and features
    rule), as plain JSON values."""
    return _planned_arch


def _build(arch, in_ch=1, n_classes=3, deep_supervision=True):
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    torch.manual_seed(0)
    return get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
                                  in_ch, n_classes, allow_init=True, deep_supervision=deep_supervision).eval()


@pytest.fixture
def build_from_plans(nnunetv2):
    """``build_from_plans(arch, in_ch=1, n_classes=3, deep_supervision=True)``: the network of an architecture
    entry through nnU-Net's own get_network_from_plans (which also applies the class's ``initialize`` hook)."""
    return _build


def _as_equivox(arch, **extra):
    from equivox.nnunet import NETWORK_CLASS

    arch = copy.deepcopy(arch)
    arch["network_class_name"] = NETWORK_CLASS
    arch["arch_kwargs"].update(extra)
    return arch


@pytest.fixture
def as_equivox():
    """``as_equivox(arch, **extra)``: a copy of an architecture entry naming equivox's network class (and
    ``extra`` arguments)."""
    return _as_equivox


def _rel_errors(net, x, transform):
    with torch.no_grad():
        ref, rot = net(x), net(transform(x))
    ref = ref if isinstance(ref, list) else [ref]
    rot = rot if isinstance(rot, list) else [rot]
    assert len(ref) == len(rot)
    return [float((transform(a) - b).abs().max() / a.abs().max()) for a, b in zip(ref, rot)]


@pytest.fixture
def rel_errors():
    """``rel_errors(net, x, transform)``: the relative error of every output (deep supervision included),
    net(T x) vs T net(x)."""
    return _rel_errors


@pytest.fixture
def cube_turns():
    """Cube rotations written with torch.rot90 on (B, C, D, H, W): one quarter turn about each axis, a half turn
    and a composite (a 3-fold rotation about the cube diagonal)."""
    return {
        "rot90_DH": lambda t: torch.rot90(t, 1, (2, 3)),
        "rot90_HW": lambda t: torch.rot90(t, 1, (3, 4)),
        "rot90_DW": lambda t: torch.rot90(t, 1, (2, 4)),
        "rot180_DH": lambda t: torch.rot90(t, 2, (2, 3)),
        "diag_3fold": lambda t: torch.rot90(torch.rot90(t, 1, (2, 3)), 1, (3, 4)),
    }


@pytest.fixture(scope="session")
def tiny_run(nnunetv2, tmp_path_factory):
    """examples/nnunet/run_tiny.py run once per session in a subprocess (~1.5-2 min on 2 cores; nnU-Net reads its
    folder variables when nnunetv2 is first imported): (out folder, stdout, its run_tiny.json)."""
    out = tmp_path_factory.mktemp("nnunet_tiny")
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    proc = subprocess.run([sys.executable, str(RUN_TINY), "--out", str(out)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout, json.loads((out / "run_tiny.json").read_text())
