"""equivox.irreps.fields: the irreps field kind (groups so3_irreps / o3_irreps) in every network: the encoder
features, the classifier, the U-Net with each head and the MONAI-style U-Net are equivariant on the cube rotations
(and the inversion for O(3)); exports equal eager and script; checkpoints round-trip.

The cube elements act on voxels by compositions of ``torch.rot90`` (and the inversion ``flip``), on hidden
features by ``e3nn.o3.Irreps.D_from_matrix`` with e3nn's (x, y, z) = the tensor axes (D, H, W): conftest's
``e3nn_equivariance_error``; ``irreps_hidden(n)``: n hidden fields ``2x0e+2x0e+1x1o+1x2e``.
"""
from __future__ import annotations

import copy
import io

import pytest
import torch
from e3nn import o3

GROUPS = ["so3_irreps", "o3_irreps"]


def _unet(group, **kw):
    from equivox.nets import EquivariantUNet

    torch.manual_seed(0)
    net = EquivariantUNet(3, 1, 2, channels=(2, 2), strides=(2,), group=group, **kw)
    net.train()(torch.randn(2, 1, 8, 8, 8))  # batch-norm statistics that are not the initial ones
    return net.eval()


@pytest.mark.parametrize("group", GROUPS)
def test_encoder_features_are_equivariant(group, e3nn_equivariance_error, irreps_hidden):
    from equivox.nets import EquivariantEncoder

    torch.manual_seed(0)
    enc = EquivariantEncoder(3, 1, channels=(1, 2), strides=(2,), group=group).eval()
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        for level, n in enumerate((1, 2)):
            f = lambda t, level=level: enc(t)[level]  # noqa: E731
            assert e3nn_equivariance_error(f, x, o3.Irreps("0e"), irreps_hidden(n), group) < 1e-4


@pytest.mark.parametrize("group", GROUPS)
def test_classifier_is_invariant(group, e3nn_equivariance_error):
    from equivox.nets import InvariantClassifier

    torch.manual_seed(0)
    net = InvariantClassifier(3, 1, 3, channels=(1, 2), strides=(2,), group=group, hidden_features=(8,)).eval()
    with torch.no_grad():
        assert e3nn_equivariance_error(net, torch.randn(2, 1, 8, 8, 8), "1x0e", "1x0e", group, invariant=True) < 1e-4


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("head", ["stats", "pool", "linear"])
def test_unet_is_equivariant(group, head, e3nn_equivariance_error):
    """The default head on every element; the other heads on every third element (time: 2 CPU cores)."""
    net = _unet(group, head=head)
    with torch.no_grad():
        assert e3nn_equivariance_error(net, torch.randn(1, 1, 8, 8, 8), "1x0e", "2x0e", group,
                             every=1 if head == "stats" else 3) < 1e-4


@pytest.mark.parametrize("group", GROUPS)
def test_monai_unet_is_equivariant(group, e3nn_equivariance_error):
    from equivox.nets import EquivariantMonaiUNet

    torch.manual_seed(0)
    net = EquivariantMonaiUNet(3, 1, 2, channels=(1, 2), strides=(2,), group=group).eval()
    with torch.no_grad():
        assert e3nn_equivariance_error(net, torch.randn(1, 1, 8, 8, 8), "1x0e", "2x0e", group) < 1e-4


def test_unet_export_equals_eager_and_scripts():
    net = _unet("o3_irreps")
    x = torch.randn(2, 1, 8, 8, 8)
    plain = net.export()
    assert not any(type(m).__module__.startswith(("escnn", "e3nn")) for m in plain.modules())
    assert any(isinstance(m, torch.nn.Conv3d) for m in plain.modules())
    folded = [m for m in plain.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert folded and all(m.eps > 0 for m in folded)  # torch < 2.13 rejects eps = 0 even in eval mode
    scripted = torch.jit.script(plain)
    with torch.no_grad():
        ref = net(x)
        scale = ref.abs().max()
        assert (plain(x) - ref).abs().max() / scale < 1e-5
        assert (scripted(x) - ref).abs().max() / scale < 1e-5


def test_instance_norm_unet_exports_too():
    net = _unet("so3_irreps", norm="instance")
    x = torch.randn(1, 1, 8, 8, 8)
    scripted = torch.jit.script(net.export())
    with torch.no_grad():
        assert (scripted(x) - net(x)).abs().max() / net(x).abs().max() < 1e-5


def test_checkpoint_round_trip():
    net = _unet("so3_irreps")
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    fresh = copy.deepcopy(net)
    torch.manual_seed(1)
    for p in fresh.parameters():
        p.data.normal_()
    for name, b in fresh.named_buffers():
        if "running" in name:
            b.data.uniform_(0.5, 2.0)
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        assert (fresh(x) - net(x)).abs().max() > 1e-3  # the reload below has something to do
        buf.seek(0)
        fresh.load_state_dict(torch.load(buf))
        assert torch.equal(fresh(x), net(x))
    assert any("running_var" in k for k in net.state_dict())  # the irreps norm's statistics are saved
