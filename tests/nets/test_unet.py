"""equivox.nets.unet: EquivariantUNet builds through overridable layer hooks (as MONAI's UNet), takes MONAI-style
norm / activation specs, and stays equivariant with a customised layer."""
import pytest
import torch

from equivox.nets import EquivariantUNet
from equivox.nn import EquivariantConvBlock, FieldResidualUnit
from equivox.testing import assert_equivariant

SMALL = dict(out_channels=2, channels=(1, 2), strides=(2,), group="c4_axial")


class ResidualUNet(EquivariantUNet):
    """Residual units instead of plain conv blocks, on the way down and up."""

    def _get_down_layer(self, in_spec, out_fields):
        return FieldResidualUnit(in_spec, out_fields, self.kernel_size, self.norm, self.act)

    def _get_up_layer(self, in_spec, skip_spec, out_fields, stride):
        up, _ = super()._get_up_layer(in_spec, skip_spec, out_fields, stride)
        return up, FieldResidualUnit(in_spec + skip_spec, out_fields, self.kernel_size, self.norm, self.act)


def test_hooks_build_every_level_and_the_result_is_equivariant():
    torch.manual_seed(0)
    net = ResidualUNet(**SMALL).eval()
    assert all(isinstance(m, FieldResidualUnit) for m in net.encoder.levels)  # bottom level via the default hook
    assert all(isinstance(m, FieldResidualUnit) for m in net.decoders)
    assert_equivariant(net)
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        assert torch.allclose(net.export()(x), net(x), atol=1e-5)


def test_default_hooks_keep_the_layout():
    net = EquivariantUNet(**SMALL)
    assert all(type(m) is EquivariantConvBlock for m in list(net.encoder.levels) + list(net.decoders))
    assert [k for k in net.state_dict() if k.startswith("decoders.0.layers.0.weight")]


@pytest.mark.parametrize("norm, act", [(("batch", {"momentum": 0.2}), ("leakyrelu", {"negative_slope": 0.2})),
                                       (("group", {"num_groups": 1}), "gelu"), ("instance", ("elu", {"alpha": 0.5}))])
def test_monai_style_norm_and_activation_specs(norm, act):
    torch.manual_seed(0)
    net = EquivariantUNet(norm=norm, act=act, **SMALL).eval()
    kinds = {type(m).__name__ for m in net.modules()}
    assert {"BatchNorm3d": "batch", "GroupNorm": "group", "InstanceNorm3d": "instance"}.keys() & kinds
    assert_equivariant(net)
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        assert torch.allclose(net.export()(x), net(x), atol=1e-5)


def test_unknown_norm_and_activation_are_errors():
    with pytest.raises(ValueError, match="norm must be one of"):
        EquivariantUNet(norm="layer", **SMALL)
    with pytest.raises(ValueError, match="SWISHY"):
        EquivariantUNet(act="swishy", **SMALL)
