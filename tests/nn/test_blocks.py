"""equivox.nn.blocks: EquivariantConvBlock, FieldResidualUnit and invariant_voxel_head stack from a scalar image to
per-voxel logits that move with the voxels under the cube rotations (torch.rot90, written in the tests), in train
and eval mode; the residual unit's skip is the identity exactly when the field types agree; exports compute the
same function."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from equivox.nn import EquivariantConv3d, EquivariantConvBlock, FieldNormAct, FieldResidualUnit, FieldSpec
from equivox.nn.blocks import Residual, invariant_voxel_head


def _stack(group):
    torch.manual_seed(0)
    block = EquivariantConvBlock(FieldSpec.scalar(group, 1), 2)
    unit = FieldResidualUnit(block.out_spec, 2)
    head = invariant_voxel_head(unit.out_spec, 3, hidden_fields=2)
    return nn.Sequential(block, unit, head)


@pytest.mark.parametrize("group", ["octa", "so3"])
def test_scalar_image_to_logits_moves_with_the_voxels(group, cube_rotation_ops, trained):
    net = _stack(group)
    x = torch.randn(2, 1, 6, 6, 6)
    for model in (net.train(), trained(net)):  # batch statistics, then running statistics after training
        with torch.no_grad():
            ref = model(x)
            assert ref.shape == (2, 3, 6, 6, 6)
            for rot in cube_rotation_ops[1::4]:
                assert (model(rot(x)) - rot(ref)).abs().max() < 1e-4 * ref.abs().max()


def test_a_plain_conv_stack_of_the_same_shape_does_not_move_with_the_voxels(cube_rotation_ops):
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv3d(1, 8, 3, padding=1), nn.ELU(), nn.Conv3d(8, 3, 1)).eval()
    x = torch.randn(2, 1, 6, 6, 6)
    with torch.no_grad():
        ref = plain(x)
        rot = cube_rotation_ops[1]
        assert (plain(rot(x)) - rot(ref)).abs().max() > 1e-2 * ref.abs().max()


def test_block_layout_and_residual_skip():
    block = EquivariantConvBlock(FieldSpec.scalar("octa", 1), 3, n_convs=3, norm=None)
    convs = [m for m in block.layers if isinstance(m, EquivariantConv3d)]
    assert len(convs) == 3 and all(isinstance(m, FieldNormAct) for m in block.layers[1::2])
    assert block.out_spec == FieldSpec.hidden("octa", 3)
    same = FieldResidualUnit(FieldSpec.hidden("octa", 2), 2)
    other = FieldResidualUnit(FieldSpec.scalar("octa", 1), 2)
    assert isinstance(same.skip, nn.Identity)
    assert isinstance(other.skip, EquivariantConv3d) and other.skip.kernel_size == 1
    x = torch.randn(1, 48, 4, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(same.eval()(x) - same.block(x), x)


@pytest.mark.parametrize("make", [lambda: EquivariantConvBlock(FieldSpec.scalar("octa", 1), 2),
                                  lambda: FieldResidualUnit(FieldSpec.scalar("octa", 1), 2),
                                  lambda: FieldResidualUnit(FieldSpec.hidden("octa", 1), 1)],
                         ids=["block", "residual-conv-skip", "residual-identity-skip"])
def test_export_computes_the_same_function(make, trained):
    layer = trained(make())
    x = torch.randn(2, layer.in_spec.size, 5, 5, 5)
    plain = layer.export()
    if isinstance(layer, FieldResidualUnit):
        assert isinstance(plain, Residual)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), layer(x), atol=1e-4, rtol=1e-4)
