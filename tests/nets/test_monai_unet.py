"""EquivariantMonaiUNet: MONAI UNet's constructor and layout, exact equivariance, export, MONAI inference."""
from __future__ import annotations

import functools

import pytest
import torch
from monai.inferers import sliding_window_inference
from monai.networks.nets import UNet

from equivox.core import PlainModule
from equivox.groups import get_group
from equivox.nets import EquivariantMonaiUNet
from equivox.nn import EquivarianceError
from equivox.testing import equivariance_errors

CONFIGS = {
    "plain": dict(channels=(2, 2), strides=(2,)),
    "res2_batch": dict(channels=(2, 3, 2), strides=(2, 2), num_res_units=2, norm="batch"),
    "res1_nearest_elu": dict(channels=(1, 2), strides=(2,), num_res_units=1, act="elu", upsample_mode="nearest"),
}


@functools.lru_cache(maxsize=None)
def _net(group: str, config: str) -> EquivariantMonaiUNet:
    torch.manual_seed(0)
    net = EquivariantMonaiUNet(3, 1, 3, group=group, **CONFIGS[config])
    with torch.no_grad():  # batch-norm statistics that are not the identity, so folding them is tested
        net.train()(torch.randn(2, 1, 8, 8, 8))
    return net.eval()


@pytest.mark.parametrize("config", list(CONFIGS))
def test_octa_equivariant_under_all_24_rotations(config):
    net = _net("octa", config)
    x = torch.randn(2, 1, 8, 8, 8)
    errors = equivariance_errors(net, x)
    assert len(errors) == 24
    assert max(e.relative for e in errors) < 1e-5
    # not vacuous: the output changes when the input is rotated
    g = get_group("octa").grid_elements[5]
    assert not torch.allclose(net(g.apply(x)), net(x), atol=1e-3)


@pytest.mark.parametrize("group", ["so3", pytest.param("full_octa", marks=pytest.mark.slow)])
def test_other_groups_equivariant_under_grid_elements(group):
    net = _net(group, "plain")
    errors = equivariance_errors(net, torch.randn(1, 1, 8, 8, 8))
    assert max(e.relative for e in errors) < 1e-4


@pytest.mark.parametrize("config", list(CONFIGS))
def test_export_matches_and_scripts(config):
    net = _net("octa", config)
    x = torch.randn(2, 1, 8, 8, 8)
    plain = net.export()
    leaves = {type(m) for m in plain.modules() if not list(m.children())}
    assert all(t.__module__.startswith(("torch.nn", "monai.")) or issubclass(t, PlainModule) for t in leaves), leaves
    ref = net(x)
    torch.testing.assert_close(plain(x), ref, atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.jit.script(plain)(x), ref, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match=f"not divisible by {net.size_multiple}"):
        plain(torch.randn(1, 1, 8, 8, 7))


def test_same_layout_as_monai_unet():
    """Every level runs at MONAI UNet's resolution with the same tensor width (octa: 24 channels per field)."""
    ours = EquivariantMonaiUNet(3, 1, 2, channels=(1, 2, 2), strides=(2, 2), num_res_units=1)
    theirs = UNet(3, 1, 2, channels=(24, 48, 48), strides=(2, 2), num_res_units=1)

    def shapes(net, root):
        seen = []
        hooks = [m.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[1:])))
                 for m in root.modules() if type(m).__name__ == "SkipConnection" and m.mode == "cat"]
        net.eval()(torch.randn(1, 1, 16, 16, 16))
        for h in hooks:
            h.remove()
        return seen

    assert shapes(ours, ours.model) == shapes(theirs, theirs.model) == [(96, 4, 4, 4), (48, 8, 8, 8)]


def test_size_rules_and_argument_errors():
    net = _net("octa", "res2_batch")
    with pytest.raises(EquivarianceError, match=r"\(8, 8, 10\) is not divisible by 4"):
        net(torch.randn(1, 1, 8, 8, 10))
    with pytest.raises(ValueError, match="strides must have 1 entries"):
        EquivariantMonaiUNet(3, 1, 2, channels=(2, 2), strides=(2, 2))
    with pytest.raises(ValueError, match="at least 2 levels"):
        EquivariantMonaiUNet(3, 1, 2, channels=(2,), strides=())
    with pytest.raises(ValueError, match="num_res_units"):
        EquivariantMonaiUNet(3, 1, 2, channels=(2, 2), strides=(2,), num_res_units=-1)


def test_sliding_window_inference_is_equivariant():
    """MONAI's sliding-window inferer with a window that tiles the volume symmetrically keeps exact equivariance."""
    net = _net("octa", "plain")
    x = torch.randn(1, 1, 16, 16, 16)
    infer = functools.partial(sliding_window_inference, roi_size=(8, 8, 8), sw_batch_size=4, predictor=net,
                              overlap=0.0)
    with torch.no_grad():
        y = infer(x)
        for g in get_group("octa").grid_elements[1::7]:
            torch.testing.assert_close(infer(g.apply(x)), g.apply(y), atol=1e-4, rtol=1e-4)


def test_export_keeps_batch_norm_exact_or_folds_it_on_request():
    net = _net("octa", "res2_batch")
    x = torch.randn(1, 1, 16, 16, 16)
    ref = net(x)
    exact = net.export()
    assert torch.equal(exact(x), ref)  # same float operations: identical outputs
    folded = net.export(fold_batchnorm=True)
    n_bn = sum(isinstance(m, torch.nn.BatchNorm3d) for m in exact.modules())
    assert n_bn > 0 and not any(isinstance(m, torch.nn.BatchNorm3d) for m in folded.modules())
    torch.testing.assert_close(folded(x), ref, atol=1e-4, rtol=1e-5)


def test_monai_unet_layers_come_from_overridable_methods():
    """A subclass replaces the bottom layer through ``_get_bottom_layer`` (as with MONAI's UNet); the network
    stays equivariant (torch.rot90 written here) and exports."""
    from equivox.nets import EquivariantConvolution, EquivariantMonaiUNet

    class PointwiseBottom(EquivariantMonaiUNet):
        def _get_bottom_layer(self, in_channels, out_channels):
            return EquivariantConvolution(3, in_channels, out_channels, kernel_size=1, in_fields="hidden",
                                          **self._common())

    torch.manual_seed(0)
    net = PointwiseBottom(channels=(1, 2), strides=(2,), norm=None).eval()
    bottom = net.model[1].submodule
    assert isinstance(bottom, EquivariantConvolution) and bottom.conv.kernel_size == 1
    x = torch.randn(1, 1, 8, 8, 8)
    turn = lambda t: torch.rot90(t, 1, (3, 4))  # noqa: E731
    with torch.no_grad():
        y = net(x)
        assert (net(turn(x)) - turn(y)).abs().max().item() < 1e-4 * max(1.0, y.abs().max().item())
        assert (net.export()(x) - y).abs().max().item() < 1e-4
