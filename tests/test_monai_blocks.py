"""equivox networks and MONAI-style blocks used the MONAI way: eval_mode, MetaTensor, one_hot, clear errors.

Equivariance is checked with real group elements (``GridElement.apply``), never by shapes alone.
"""
from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor
from monai.networks import eval_mode
from monai.networks.utils import one_hot
from torch import nn

from equivox.groups import GROUPS as REGISTRY, get_group
from equivox.nets import (EquivariantConvolution, EquivariantFeatureExtractor, EquivariantHead,
                          EquivariantResidualUnit, EquivariantUNet)
from equivox.nn import EquivarianceError
from equivox.testing import assert_equivariant

# every registered group but the axial ones (test_axial_groups.py): trivial, octa, full_octa, ico, full_ico, so3, o3
GROUPS = [n for n, s in REGISTRY.items() if s.exact_spacing != "axial"]
SLOW = {"ico", "full_ico", "full_octa", "o3"}  # cold escnn builds of ~1-2 min each (cached afterwards)


def _non_identity(group: str):
    """A non-identity grid-exact element of ``group`` (None for the trivial group)."""
    els = [e for e in get_group(group).grid_elements if not torch.equal(
        torch.as_tensor(e.matrix, dtype=torch.float64), torch.eye(3, dtype=torch.float64))]
    return els[len(els) // 2] if els else None


@pytest.mark.parametrize("group", [pytest.param(g, marks=pytest.mark.slow) if g in SLOW else g for g in GROUPS])
def test_unet_shapes_and_equivariance_under_eval_mode(small_model, cube_input, group):
    """(2, 1, 8, 8, 8) -> (2, 3, 8, 8, 8) logits under ``monai.networks.eval_mode``; for a non-identity grid
    element g: net(g x) == g net(x)."""
    net = small_model("unet", group)
    with eval_mode(net):
        y = net(cube_input)
        assert not net.training
        assert y.shape == (2, 3, 8, 8, 8) and y.dtype == torch.float32 and torch.isfinite(y).all()
        g = _non_identity(group)
        if g is not None:
            assert_equivariant(net, cube_input, [g])
        else:  # trivial group: at least the output must depend on the input
            assert not torch.allclose(net(cube_input.flip(-1)), y)


def test_classifier_invariant_under_eval_mode(small_model, cube_input):
    net = small_model("clf", "octa")
    with eval_mode(net):
        y = net(cube_input)
        assert y.shape == (2, 3)
    assert_equivariant(net, cube_input, get_group("octa").grid_elements[::5])  # (B, K): invariant logits


def test_metatensor_input_gives_same_plain_output(small_model, cube_input):
    net = small_model("unet", "octa")
    meta = MetaTensor(cube_input.clone(), affine=torch.diag(torch.tensor([3.0, 3.0, 3.0, 1.0])))
    with eval_mode(net):
        y_meta, y_plain = net(meta), net(cube_input)
    assert type(y_meta) is torch.Tensor
    torch.testing.assert_close(y_meta, y_plain)
    # integer MetaTensor (e.g. raw HU loaded as int16) is cast to float
    with eval_mode(net):
        y_int = net(MetaTensor(cube_input.round().to(torch.int16)))
        torch.testing.assert_close(y_int, net(cube_input.round()))


def test_one_hot_of_prediction_matches_monai_convention(small_model, cube_input):
    net = small_model("unet", "octa")
    with eval_mode(net):
        pred = net(cube_input).argmax(1, keepdim=True)
    oh = one_hot(pred, num_classes=3)
    assert oh.shape == (2, 3, 8, 8, 8)
    assert torch.equal(oh.argmax(1, keepdim=True), pred) and torch.equal(oh.sum(1), torch.ones(2, 8, 8, 8))


# ------------------------------------------------------------------ blocks


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


def test_feature_extractor_multiscale_invariant_features(cube_input):
    torch.manual_seed(0)
    fx = EquivariantFeatureExtractor(3, 1, channels=(2, 2), strides=(2,), group="octa").eval()
    feats = fx(cube_input)
    assert [type(f) for f in feats] == [torch.Tensor, torch.Tensor]
    assert [tuple(f.shape) for f in feats] == [(2, fx.feature_channels[0], 8, 8, 8),
                                               (2, fx.feature_channels[1], 4, 4, 4)]
    assert fx.reductions == (1, 2)
    # invariant features: only the voxels move under a rotation, so any ordinary layer may consume them
    assert [s.reprs for s in fx.out_specs] == [("irrep_0",) * c for c in fx.feature_channels]  # scalar fields
    assert_equivariant(fx, cube_input, [_non_identity("octa")])
    hidden = EquivariantFeatureExtractor(3, 1, channels=(2, 2), strides=(2,), group="octa", output="hidden")
    assert hidden.feature_channels == (48, 48)


def test_blocks_in_monai_sequential_with_scalar_layers(block_stack, cube_input):
    """Scalar-field outputs may be followed by ordinary MONAI/torch layers (1x1x1 conv, softmax)."""
    net = nn.Sequential(block_stack, nn.Conv3d(3, 2, 1), nn.Softmax(dim=1)).eval()
    g = _non_identity("octa")
    assert_equivariant(net, cube_input, [g])


# ------------------------------------------------------------------ clear errors


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


def test_error_unet_wrong_channels_and_rank(small_model):
    net = small_model("unet", "octa")
    with pytest.raises(ValueError, match=r"in_channels=1, got input with 2 channels"):
        net(torch.zeros(1, 2, 8, 8, 8))
    with pytest.raises(ValueError, match=r"expects a 5D tensor \(B, C, D, H, W\), got shape \(1, 8, 8, 8\)"):
        net(torch.zeros(1, 8, 8, 8))  # a MONAI (C, D, H, W) item without the batch axis


def test_error_patch_not_divisible(small_model):
    net = small_model("unet", "octa")
    with pytest.raises(EquivarianceError, match=r"\(8, 8, 7\) is not divisible by 2.*DivisiblePad\(k=2\)"):
        net(torch.zeros(1, 1, 8, 8, 7))


def test_error_bad_constructor_arguments():
    with pytest.raises(ValueError, match="spatial_dims must be 3, got 2"):
        EquivariantResidualUnit(2, 1, 2, group="octa")
    with pytest.raises(ValueError, match="same stride on every axis"):
        EquivariantConvolution(3, 1, 2, group="octa", strides=(2, 1, 2))
    with pytest.raises(ValueError, match="field kind must be 'scalar' or 'hidden'"):
        EquivariantConvolution(3, 1, 2, group="octa", in_fields="vector")
    with pytest.raises(ValueError, match="strides must have 1 entries"):
        EquivariantUNet(3, 1, 2, channels=(2, 2), strides=(2, 2), group="octa")
