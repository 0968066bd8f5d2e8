"""equivox.nn.pooling: InvariantPooling maps hidden fields to invariant scalar channels ("group": max over a
field's channels or grid samples, "norm": the norm of each irreducible component); its export (FieldMax /
IrrepNorm) computes the same values.

Rotations act on voxels by torch.rot90 written in the tests; on irreps fields by e3nn's Wigner D (conftest's
``e3nn_equivariance_error``)."""
from __future__ import annotations

import pytest
import torch
from e3nn import o3

from equivox.nn import EquivariantConv3d, FieldSpec, InvariantPooling
from equivox.nn.pooling import FieldMax

GROUPS = ["so3_irreps", "o3_irreps"]


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("mode", ["norm", "group"])
def test_invariant_pooling(group, mode, e3nn_equivariance_error, irreps_hidden):
    pool = InvariantPooling(group, 2, mode)
    x = torch.randn(2, irreps_hidden(2).dim, 4, 4, 4)
    with torch.no_grad():
        err = e3nn_equivariance_error(pool, x, irreps_hidden(2), o3.Irreps(f"{pool.out_channels}x0e"), group)
    assert err < 1e-5
    assert pool.out_channels == (2 * 6 if mode == "norm" else 2)  # 6 irrep instances per field


@pytest.mark.parametrize("group, mode", [("octa", "group"), ("octa", "norm"), ("so3", "norm"), ("so3", "group")])
def test_pooled_conv_features_are_invariant_and_rotate_only_their_voxels(group, mode, cube_rotation_ops):
    """scalar image -> hidden fields -> pooling: each rotation (torch.rot90) of the input moves the pooled channels'
    voxels and nothing else; without the pooling the hidden channels do not just move (the check can fail)."""
    torch.manual_seed(0)
    conv = EquivariantConv3d(FieldSpec.scalar(group, 1), FieldSpec.hidden(group, 2), 3).eval()
    pool = InvariantPooling(group, 2, mode).eval()
    x = torch.randn(1, 1, 7, 7, 7)
    with torch.no_grad():
        hidden = conv(x)
        ref = pool(hidden)
        assert ref.shape == (1, pool.out_channels, 7, 7, 7)
        for rot in cube_rotation_ops[1::5]:
            assert (pool(conv(rot(x))) - rot(ref)).abs().max() < 1e-4 * ref.abs().max()
        turn = cube_rotation_ops[1]
        assert (conv(turn(x)) - turn(hidden)).abs().max() > 1e-3 * hidden.abs().max()


@pytest.mark.parametrize("group, mode", [("octa", "group"), ("so3", "group"), ("so3", "norm")])
def test_export_computes_the_same_pooling(group, mode):
    pool = InvariantPooling(group, 3, mode).eval()
    x = torch.randn(2, pool.in_spec.size, 3, 4, 5)
    plain = pool.export()
    assert not isinstance(plain, InvariantPooling)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), pool(x), atol=1e-5, rtol=1e-5)


def test_the_default_mode_is_the_field_kinds_and_bad_modes_are_refused():
    assert InvariantPooling("octa", 1).mode == "group" and InvariantPooling("so3", 1).mode == "norm"
    with pytest.raises(ValueError, match="pooling mode must be 'group' or 'norm'"):
        InvariantPooling("octa", 1, "mean")


def test_field_max_takes_the_maximum_within_each_field():
    x = torch.arange(2 * 6 * 1 * 1 * 2, dtype=torch.float32).reshape(1, 12, 1, 1, 2)  # 2 fields x 6 channels
    y = FieldMax(2, 6)(x)
    assert y.shape == (1, 2, 1, 1, 2)
    assert torch.equal(y, x.reshape(1, 2, 6, 1, 1, 2).amax(2))
    assert torch.equal(y[0, :, 0, 0, 0], torch.tensor([10.0, 22.0]))
