"""equivox.nets.monai_blocks: MONAI-style blocks (EquivariantConvolution, EquivariantResidualUnit, EquivariantHead)
stack into an equivariant network, mix with ordinary MONAI / torch layers after scalar outputs, script after export,
and give clear errors for inputs of the wrong field kind or count and for bad constructor arguments.

Equivariance is checked with real group elements (``GridElement.apply``), never by shapes alone."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from equivox.groups import get_group
from equivox.nets import EquivariantConvolution, EquivariantHead, EquivariantResidualUnit, EquivariantUNet
from equivox.testing import assert_equivariant


@pytest.fixture(scope="module")
def block_stack():
    """image -> ResidualUnit (2 fields) -> Convolution (stride 2, 2 fields) -> Head (3 logits), group octa."""
    torch.manual_seed(0)
    return nn.Sequential(
        EquivariantResidualUnit(3, 1, 2, group="octa"),
        EquivariantConvolution(3, 2, 2, group="octa", in_fields="hidden", strides=2),
        EquivariantHead(3, 2, 3, group="octa"),
    ).eval()



def test_block_stack_shapes_and_equivariance(block_stack, cube_input):
    y = block_stack(cube_input)
    assert y.shape == (2, 3, 4, 4, 4)
    assert block_stack[0].out_tensor_channels == 2 * 24 and block_stack[2].out_tensor_channels == 3
    assert_equivariant(block_stack, cube_input, get_group("octa").grid_elements[1::6])  # scalar in, scalar out



def test_block_residual_unit_is_residual(block_stack, cube_input):
    """Hidden -> hidden with equal field counts uses an identity skip: output - block(x) == x."""
    torch.manual_seed(1)
    unit = EquivariantResidualUnit(3, 2, 2, group="octa", in_fields="hidden").eval()
    h = block_stack[0](cube_input)
    with torch.no_grad():
        torch.testing.assert_close(unit(h) - unit.unit.block(h), h)



def test_blocks_in_monai_sequential_with_scalar_layers(block_stack, cube_input, non_identity_element):
    """Scalar-field outputs may be followed by ordinary MONAI/torch layers (1x1x1 conv, softmax)."""
    net = nn.Sequential(block_stack, nn.Conv3d(3, 2, 1), nn.Softmax(dim=1)).eval()
    g = non_identity_element("octa")
    assert_equivariant(net, cube_input, [g])



def test_error_hidden_block_fed_an_image(block_stack, cube_input):
    with pytest.raises(ValueError, match=r"expects 2 hidden fields of group 'octa' x 24 channels = 48 channels"
                                         r".*looks like scalar channels: use in_fields='scalar'"):
        block_stack[1](cube_input)



def test_error_scalar_block_fed_hidden_fields(block_stack, cube_input):
    h = block_stack[0](cube_input)  # 48 channels
    with pytest.raises(ValueError, match=r"expects 1 scalar channels.*use in_fields='hidden', in_channels=2"):
        EquivariantResidualUnit(3, 1, 2, group="octa")(h)



def test_error_wrong_field_count(block_stack, cube_input):
    h = block_stack[0](cube_input)
    with pytest.raises(ValueError, match=r"expects 3 hidden fields.*the input looks like 2 hidden fields"):
        EquivariantHead(3, 3, 2, group="octa")(h)



def test_error_bad_constructor_arguments():
    with pytest.raises(ValueError, match="spatial_dims must be 3, got 2"):
        EquivariantResidualUnit(2, 1, 2, group="octa")
    with pytest.raises(ValueError, match="same stride on every axis"):
        EquivariantConvolution(3, 1, 2, group="octa", strides=(2, 1, 2))
    with pytest.raises(ValueError, match="field kind must be 'scalar' or 'hidden'"):
        EquivariantConvolution(3, 1, 2, group="octa", in_fields="vector")
    with pytest.raises(ValueError, match="strides must have 1 entries"):
        EquivariantUNet(3, 1, 2, channels=(2, 2), strides=(2, 2), group="octa")



def test_torchscript_of_exported_monai_blocks(tmp_path, script_save_and_compare):
    from equivox import export
    from equivox.nets import EquivariantHead, EquivariantResidualUnit

    torch.manual_seed(0)
    unit = EquivariantResidualUnit(3, 1, 2, group="octa", strides=2).eval()
    head = EquivariantHead(3, 2, 3, group="octa").eval()
    x = torch.randn(1, 1, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = head(unit(x))
    p_unit = script_save_and_compare(export.export(unit).eval(), x, tmp_path=tmp_path)
    p_head = script_save_and_compare(export.export(head).eval(), p_unit(x), tmp_path=tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(p_head(p_unit(x)), ref, atol=1e-4, rtol=1e-4)
        g = get_group("octa").grid_elements[11]
        torch.testing.assert_close(p_head(p_unit(g.apply(x))), g.apply(ref), atol=1e-4, rtol=1e-4)
