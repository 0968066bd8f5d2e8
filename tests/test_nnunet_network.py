"""equivox.nnunet.network without nnunetv2: EquivariantNnUNet on an anisotropic plan is built from the shared
blocks, is exactly equivariant for its axial group (deep-supervision outputs included) and exports to plain torch
with the same outputs; the plan's group comes from the registry's spacing rules."""
import pytest
import torch

from equivox.core import EquivarianceError, PlainModule
from equivox.nn import EquivariantConvBlock, EquivariantDownsample, EquivariantUpsample
from equivox.nnunet import rules
from equivox.nnunet.network import EquivariantNnUNet
from equivox.testing import assert_equivariant

ANISO = dict(input_channels=1, n_stages=3, features_per_stage=[8, 16, 16], conv_op="torch.nn.Conv3d",
             kernel_sizes=[[1, 3, 3], [1, 3, 3], [3, 3, 3]], strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2]],
             n_conv_per_stage=1, num_classes=2, n_conv_per_stage_decoder=1,
             norm_op="torch.nn.InstanceNorm3d", norm_op_kwargs={"affine": True}, nonlin="torch.nn.LeakyReLU",
             nonlin_kwargs={"inplace": True}, deep_supervision=True)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    m = EquivariantNnUNet(**ANISO)
    with torch.no_grad():  # non-trivial affine norm weights, as after training
        for mod in m.modules():
            if isinstance(mod, torch.nn.InstanceNorm3d):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.3, 0.3)
    return m.eval()


def test_anisotropic_plan_gets_the_axial_group_from_the_registry(net):
    assert rules.plan_spacing(ANISO["kernel_sizes"], ANISO["strides"]) == (1.0, 2.0, 2.0)
    assert net.group == "d4_axial_d" and net.size_multiple == (2, 4, 4)
    # built from the shared layers, per-axis strides included
    assert any(isinstance(m, EquivariantDownsample) and m.factors == [1, 2, 2] for m in net.modules())
    assert any(isinstance(m, EquivariantUpsample) and m.factors == [1, 2, 2] for m in net.modules())
    assert isinstance(net.encoder.stages[0][0], EquivariantConvBlock)
    with pytest.raises(ValueError, match=r"stage 0 has kernel \[1, 3, 3\]"):  # a cube group cannot serve it
        EquivariantNnUNet(**dict(ANISO, group="octa"))


def test_anisotropic_network_is_equivariant_with_deep_supervision(net):
    x = torch.randn(1, 1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    errors = assert_equivariant(net, x)  # 8 elements x 2 deep-supervision outputs
    assert len(errors) == 16
    with torch.no_grad():  # a quarter turn about the thick axis, written here
        y, y_rot = net(x), net(torch.rot90(x, 1, (3, 4)))
    assert all((torch.rot90(a, 1, (3, 4)) - b).abs().max() < 1e-4 * a.abs().max() for a, b in zip(y, y_rot))
    # a quarter turn that swaps the thick axis is not in the group
    xc = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        a, b = net(xc)[0], net(torch.rot90(xc, 1, (2, 3)))[0]
    assert (torch.rot90(a, 1, (2, 3)) - b).abs().max() > 1e-2 * a.abs().max()


def test_export_equals_eager_on_the_anisotropic_plan(net):
    x = torch.randn(2, 1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    plain = net.export()
    leaves = {type(m) for m in plain.modules() if not list(m.children())}
    assert all(t.__module__.startswith("torch.nn") or issubclass(t, PlainModule) for t in leaves), leaves
    with torch.no_grad():
        ref, out = net(x), plain(x)
        scripted = torch.jit.script(plain)(x)
    assert len(ref) == len(out) == 2
    for a, b, c in zip(ref, out, scripted):
        assert a.shape == b.shape and (a - b).abs().max() < 1e-5 * max(1.0, float(a.abs().max()))
        assert (a - c).abs().max() < 1e-5 * max(1.0, float(a.abs().max()))
    with pytest.raises(EquivarianceError, match=r"not divisible by \(2, 4, 4\)"):
        plain(torch.randn(1, 1, 4, 8, 6))
