"""equivox.nnunet.network: EquivariantNnUNet is built from the shared blocks for the group the plan's spacing rules
give (the axial group on an anisotropic plan, octa on an isotropic one, irreps fields on request), is exactly
equivariant (deep-supervision outputs included; rotations written with torch.rot90) and exports to plain torch with
the same outputs. Tests building through nnU-Net's own planner and get_network_from_plans need the optional
nnunetv2 (skipped without it); the others do not."""
import subprocess
import sys

import pytest
import torch

from equivox.core import EquivarianceError, PlainModule
from equivox.nn import EquivariantConvBlock, EquivariantDownsample, EquivariantUpsample
from equivox.nnunet import rules
from equivox.nnunet.network import EquivariantNnUNet
from equivox.testing import assert_equivariant

TOL = 1e-4  # relative; float32 rounding is ~1e-6
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


def test_isotropic_plan_network_exact_on_cube_rotations_with_deep_supervision(planned_arch, build_from_plans,
                                                                             as_equivox, rel_errors, cube_turns):
    from dynamic_network_architectures.initialization.weight_init import InitWeights_He

    arch, patch = planned_arch((1.0, 1.0, 1.0), (32, 32, 32))
    assert arch["arch_kwargs"]["kernel_sizes"][0] == [3, 3, 3] and patch == [32, 32, 32]
    net = build_from_plans(as_equivox(arch))
    assert type(net) is EquivariantNnUNet and net.group == "octa"
    net.apply(InitWeights_He(1e-2))  # nnU-Net's init applied once more: must not touch equivariant weights
    x = torch.randn(2, 1, 16, 16, 16)
    with torch.no_grad():
        outs = net(x)
    assert isinstance(outs, list) and len(outs) == arch["arch_kwargs"]["n_stages"] - 1
    for name, t in cube_turns.items():
        errs = rel_errors(net, x, t)
        assert max(errs) < TOL, (name, errs)
    # nnU-Net's trainer switches deep supervision through decoder.deep_supervision
    net.decoder.deep_supervision = False
    with torch.no_grad():
        single = net(x)
    assert torch.allclose(single, outs[0], atol=1e-5)
    # the feature-map size hook the planner calls
    assert net.compute_conv_feature_map_size([32, 32, 32]) > 0


def test_anisotropic_plan_uses_axial_group_and_is_exact(planned_arch, build_from_plans, as_equivox, rel_errors):
    arch, patch = planned_arch((3.0, 0.75, 0.75), (16, 64, 64))
    k, s = arch["arch_kwargs"]["kernel_sizes"], arch["arch_kwargs"]["strides"]
    assert k[0] == [1, 3, 3] and s[1] == [1, 2, 2]  # nnU-Net's anisotropic topology, thick axis first
    net = build_from_plans(as_equivox(arch))
    assert net.group == "d4_axial_d"
    d, h, w = net.size_multiple
    x = torch.randn(1, 1, d, h, w)
    for name, t in {"rot90_HW": lambda t: torch.rot90(t, 1, (3, 4)), "rot180_DH": lambda t: torch.rot90(t, 2, (2, 3)),
                    "rot180_DW": lambda t: torch.rot90(t, 2, (2, 4))}.items():
        errs = rel_errors(net, x, t)
        assert max(errs) < TOL, (name, errs)
    # a reflection is not in D4 (rotations): the same check fails there
    assert max(rel_errors(net, x, lambda t: t.transpose(3, 4))) > 1e-2
    # a cube group cannot serve this plan: the error names the stage, kernel and stride
    with pytest.raises(ValueError, match=r"stage 0 has kernel \[1, 3, 3\] and stride \[1, 1, 1\]"):
        build_from_plans(as_equivox(arch, group="octa"))


def test_network_refuses_unservable_arguments_and_sizes(planned_arch):
    """Even kernels, 2D conv ops and non-pointwise activations are refused when the network is built; inputs that
    break the size rule when it runs."""
    arch, patch = planned_arch((1.0, 1.0, 1.0), (32, 32, 32))
    kw = dict(arch["arch_kwargs"], input_channels=1, num_classes=2)
    with pytest.raises(ValueError, match=r"stage 1 kernel \[2, 2, 2\]"):
        EquivariantNnUNet(**dict(kw, kernel_sizes=[[3, 3, 3], [2, 2, 2], [3, 3, 3], [3, 3, 3]]))
    with pytest.raises(ValueError, match="not 3D"):
        EquivariantNnUNet(**dict(kw, conv_op="torch.nn.modules.conv.Conv2d"))
    with pytest.raises(ValueError, match="pointwise"):
        EquivariantNnUNet(**dict(kw, nonlin="torch.nn.Softmax", nonlin_kwargs={"dim": 1}))
    # inputs that break the size rule
    net = EquivariantNnUNet(**kw)
    with pytest.raises(EquivarianceError, match=r"spatial size \(12, 16, 16\) is not divisible by 8"):
        net(torch.randn(1, 1, 12, 16, 16))


def test_importing_equivox_nnunet_does_not_import_nnunetv2():
    code = ("import sys, equivox, equivox.nnunet; from equivox.nnunet import EquivariantNnUNet; "
            "assert 'nnunetv2' not in sys.modules, 'equivox imported nnunetv2'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_nnunet_network_on_irreps_fields_is_equivariant(e3nn_equivariance_error):
    """The nnU-Net entry point takes group="o3_irreps" from a plan like any group (checked on the 48 elements with
    e3nn's Wigner D)."""
    plan = dict(input_channels=1, n_stages=2, features_per_stage=[24, 48], conv_op="torch.nn.Conv3d",
                kernel_sizes=[[3, 3, 3], [3, 3, 3]], strides=[[1, 1, 1], [2, 2, 2]], n_conv_per_stage=1,
                num_classes=2, n_conv_per_stage_decoder=1, norm_op="torch.nn.InstanceNorm3d",
                norm_op_kwargs={"affine": True}, nonlin="torch.nn.LeakyReLU", nonlin_kwargs={"inplace": True},
                deep_supervision=False, group="o3_irreps")
    torch.manual_seed(0)
    net = EquivariantNnUNet(**plan).eval()
    assert net.group == "o3_irreps"
    with torch.no_grad():
        assert e3nn_equivariance_error(net, torch.randn(1, 1, 8, 8, 8), "1x0e", "2x0e", "o3_irreps") < 1e-4
