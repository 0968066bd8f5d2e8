"""equivox.nn.fieldwise: MONAI-style norm and activation specs, and FieldNormAct: statistics shared by the channels of
a field and a pointwise nonlinearity, so it commutes with any permutation of a regular field's channels together
with a rotation of the voxels (torch.rot90, written here), where a per-channel norm does not; field dropout drops
whole fields; the export computes the same function."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from equivox.nn import FieldNormAct
from equivox.nn.fieldwise import make_activation, make_norm, per_field_activation


def test_norm_specs_go_through_monais_factory():
    assert isinstance(make_norm(None, 4), nn.Identity)
    bn = make_norm(("batch", {"momentum": 0.2}), 4)
    assert isinstance(bn, nn.BatchNorm3d) and bn.momentum == 0.2 and bn.num_features == 4
    inst = make_norm("INSTANCE", 3)
    assert isinstance(inst, nn.InstanceNorm3d) and inst.affine
    assert not make_norm(("instance", {"affine": False}), 3).affine
    gn = make_norm(("group", {"num_groups": 2}), 4)
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 2 and gn.num_channels == 4
    with pytest.raises(ValueError, match="norm must be one of"):
        make_norm("layer", 4)
    with pytest.raises(ValueError, match="expected a name or"):
        make_norm(3, 4)
    with pytest.raises(ValueError, match="norm 'group'"):
        make_norm("group", 4)  # num_groups missing


def test_activation_specs_and_per_field_slopes():
    assert isinstance(make_activation(None), nn.Identity)
    assert isinstance(make_activation("relu"), nn.ReLU)
    elu = make_activation(("elu", {"alpha": 0.5}))
    assert isinstance(elu, nn.ELU) and elu.alpha == 0.5
    with pytest.raises(ValueError, match="SWISHY"):  # MONAI's factory names the unknown activation
        make_activation("swishy")
    with pytest.raises(ValueError, match="unknown activation"):
        make_activation(("elu", {"no_such_argument": 1}))
    assert per_field_activation(("prelu", {"num_parameters": 2}), 5) == ("prelu", {"num_parameters": 5})
    assert per_field_activation(("prelu", {"num_parameters": 1}), 5) == ("prelu", {"num_parameters": 1})
    assert per_field_activation("elu", 5) == "elu"


def _move(x, n_fields, field_size, perm):
    """The same permutation ``perm`` of the channels inside every field, and a quarter turn of the voxels."""
    b, c, d, h, w = x.shape
    y = x.reshape(b, n_fields, field_size, d, h, w)[:, :, perm].reshape(b, c, d, h, w)
    return torch.rot90(y, 1, (3, 4))


@pytest.mark.parametrize("norm", ["batch", "instance", ("group", {"num_groups": 1})])
def test_regular_fields_commute_with_permuted_channels_and_rotated_voxels(norm, trained):
    """In training (batch statistics) and in eval mode after training (running statistics, affine weights per
    field)."""
    torch.manual_seed(0)
    layer = FieldNormAct("octa", 2, norm, "elu")
    x = torch.randn(2, 2 * 24, 4, 4, 4) * 2 + 0.5
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for mode in (layer.train(), trained(layer)):
            ref = mode(x)
            assert torch.allclose(mode(_move(x, 2, 24, perm)), _move(ref, 2, 24, perm), atol=1e-5)


def test_per_channel_weights_would_not_commute_with_the_permutation():
    """The counterpart: a plain BatchNorm3d with per-channel affine weights (as after training) does not commute
    with the same move, so the check above can fail."""
    plain = nn.BatchNorm3d(48).eval()
    with torch.no_grad():
        plain.weight.copy_(torch.rand(48, generator=torch.Generator().manual_seed(2)) + 0.5)
    x = torch.randn(2, 48, 4, 4, 4)
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert not torch.allclose(plain(_move(x, 2, 24, perm)), _move(plain(x), 2, 24, perm), atol=1e-3)


def test_field_dropout_drops_whole_fields_in_training_only():
    torch.manual_seed(0)
    layer = FieldNormAct("octa", 8, None, None, dropout=0.5)
    x = torch.rand(1, 8 * 24, 2, 2, 2) + 1.0
    y = layer.train()(x).reshape(1, 8, 24, 2, 2, 2)
    dropped = (y == 0).flatten(2).all(2)
    kept = (y != 0).flatten(2).all(2)
    assert dropped.any() and kept.any() and (dropped | kept).all()  # a field is dropped whole or kept whole
    assert torch.equal(layer.eval()(x), x)


@pytest.mark.parametrize("group, norm", [("octa", "batch"), ("octa", "instance"), ("so3", "batch"),
                                         ("octa", ("group", {"num_groups": 2}))])
def test_export_computes_the_same_function(group, norm, trained):
    layer = trained(FieldNormAct(group, 2, norm, "elu"))
    x = torch.randn(2, layer.in_spec.size, 3, 3, 3)
    plain = layer.export()
    assert not any(isinstance(m, FieldNormAct) for m in plain.modules())
    with torch.no_grad():
        torch.testing.assert_close(plain(x), layer(x), atol=1e-4, rtol=1e-4)


def test_wrong_channel_count_is_refused():
    with pytest.raises(ValueError, match="expected 2 fields x 24 channels = 48 channels, got 47"):
        FieldNormAct("octa", 2)(torch.randn(1, 47, 2, 2, 2))
