"""Irreps fields (groups so3_irreps / o3_irreps, e3nn underneath): every layer and the nets are equivariant on the
cube rotations (and reflections for O(3)), the gate and batch norm agree with e3nn's, a gate with its roles
swapped is caught, exports equal eager and script, checkpoints round-trip.

The group elements are written here: compositions of ``torch.rot90`` (and the inversion ``flip``) on the voxels,
their matrices read off by applying them to coordinate maps, and hidden features transformed by
``e3nn.o3.Irreps.D_from_matrix`` with e3nn's (x, y, z) = the tensor axes (D, H, W).
"""
from __future__ import annotations

import copy
import functools
import io

import pytest
import torch
from e3nn import o3

from equivox.nn import EquivariantConv3d, FieldNormAct, FieldSpec, InvariantPooling

#: one hidden field of both irreps groups, written out: 2 scalars, 2 gates, a vector, an l=2 irrep
FIELD = "2x0e+2x0e+1x1o+1x2e"
GROUPS = ["so3_irreps", "o3_irreps"]


# ------------------------------------------------------------------ group elements written with torch ops
def _ops(reflections: bool):
    """[(name, op)] of the 24 cube rotations (48 with the inversion) as compositions of rot90 and flips."""
    planes = [(2, 3), (2, 4), (3, 4)]
    ops = {(): lambda t: t}
    frontier = [()]
    probe = torch.arange(27.0).reshape(1, 1, 3, 3, 3)

    def run(seq, t):
        for p in seq:
            t = torch.rot90(t, 1, planes[p])
        return t

    seen = {run((), probe).flatten().tolist().__str__()}
    while frontier:
        nxt = []
        for seq in frontier:
            for p in range(3):
                s = seq + (p,)
                key = str(run(s, probe).flatten().tolist())
                if key not in seen:
                    seen.add(key)
                    ops[s] = None
                    nxt.append(s)
        frontier = nxt
    out = [(f"rot{s}", (lambda s: lambda t: run(s, t))(s)) for s in ops]
    assert len(out) == 24
    if reflections:
        out += [(f"inv*rot{s}", (lambda s: lambda t: run(s, t).flip(2, 3, 4))(s)) for s in ops]
    return out


def _matrix(op) -> torch.Tensor:
    """M with op(f)(p) = f(M^-1 p) about the grid centre, read off from coordinate maps (float64)."""
    n = 5
    c = torch.arange(n, dtype=torch.float64) - (n - 1) / 2
    coords = torch.stack(torch.meshgrid(c, c, c, indexing="ij"))  # (3, n, n, n): c_a(p) = p_a
    moved = op(coords[None])[0].reshape(3, -1)  # M^-1 p at every p
    m_inv = torch.linalg.lstsq(coords.reshape(3, -1).T, moved.T).solution.T
    return torch.linalg.inv(m_inv).round()


@functools.lru_cache(maxsize=None)
def _elements(reflections: bool):
    return [(name, op, _matrix(op)) for name, op in _ops(reflections)]


def elements(group: str):
    return _elements(group.startswith("o3"))


def hidden_irreps(n_fields: int) -> o3.Irreps:
    return o3.Irreps("+".join([FIELD] * n_fields))


@functools.lru_cache(maxsize=None)
def _wigner(irreps: str, m: tuple) -> torch.Tensor:
    return o3.Irreps(irreps).D_from_matrix(torch.tensor(m, dtype=torch.float64).reshape(3, 3)).float()


def act_on(irreps, op, m, x):
    """The element on features ``x`` of ``irreps``: voxels moved by ``op``, channels by the Wigner D of ``m``."""
    d = _wigner(str(o3.Irreps(irreps)), tuple(m.flatten().tolist())).to(x.dtype)
    return torch.einsum("ij,bj...->bi...", d, op(x))


def max_rel_error(f, x, in_irreps, out_irreps, group, invariant=False, every=1):
    """max over the elements (every ``every``-th) of |f(g x) - g f(x)| / max |f(x)|."""
    ref = f(x)
    scale = ref.abs().max()
    err = 0.0
    for _, op, m in elements(group)[::every]:
        y = f(act_on(in_irreps, op, m, x))
        target = ref if invariant else act_on(out_irreps, op, m, ref)
        err = max(err, float((y - target).abs().max() / scale))
    return err


# ------------------------------------------------------------------ the elements themselves
def test_written_elements_are_the_cube_group():
    mats = {tuple(m.flatten().tolist()) for _, _, m in elements("o3_irreps")}
    assert len(mats) == 48 and all(abs(abs(torch.linalg.det(m)) - 1) < 1e-9 for _, _, m in elements("o3_irreps"))


# ------------------------------------------------------------------ layers
@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("pair,k", [("scalar-hidden", 3), ("hidden-hidden", 3), ("hidden-scalar", 3),
                                    ("hidden-hidden", 5), ("hidden-hidden", 1)])
def test_conv_is_equivariant(group, pair, k):
    torch.manual_seed(0)
    a, b = pair.split("-")
    spec = {"scalar": lambda n: FieldSpec.scalar(group, n), "hidden": lambda n: FieldSpec.hidden(group, n)}
    irreps = {"scalar": lambda n: o3.Irreps(f"{n}x0e"), "hidden": hidden_irreps}
    conv = EquivariantConv3d(spec[a](2), spec[b](2), k)
    assert conv.in_channels == irreps[a](2).dim and conv.out_channels == irreps[b](2).dim
    x = torch.randn(1, conv.in_channels, 5, 5, 5)
    with torch.no_grad():
        assert max_rel_error(conv, x, irreps[a](2), irreps[b](2), group) < 1e-4


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("norm", ["batch", "instance", None])
def test_norm_and_gate_are_equivariant_in_train_and_eval(group, norm):
    torch.manual_seed(0)
    layer = FieldNormAct(group, 2, norm, "elu")
    x = torch.randn(2, hidden_irreps(2).dim, 3, 3, 3) * 2 + 0.5
    with torch.no_grad():
        for train in (True, False):
            layer.train(train)
            assert max_rel_error(layer, x, hidden_irreps(2), hidden_irreps(2), group) < 1e-4
        if norm == "batch":  # running statistics were used in eval: they moved away from their initial values
            assert layer.norm.running_var.sub(1).abs().max() > 1e-3


def test_gate_equals_e3nn_gate():
    """Our gate on (B, C, D, H, W) gives e3nn.nn.Gate's output (channels last), plus the sigmoid gates. e3nn scales
    each activation to unit second moment (``normalize2mom``); ours does not (a norm follows): constants divided out."""
    from e3nn.math import normalize2mom
    from e3nn.nn import Gate

    torch.manual_seed(0)
    layer = FieldNormAct("so3_irreps", 1, None, "elu")
    gate = Gate("2x0e", [torch.nn.functional.elu], "2x0e", [torch.sigmoid], "1x1o+1x2e")
    c_act, c_gate = normalize2mom(torch.nn.functional.elu).cst, normalize2mom(torch.sigmoid).cst
    x = torch.randn(2, 12, 3, 3, 3)
    with torch.no_grad():
        ours = layer(x).permute(0, 2, 3, 4, 1)
        theirs = gate(x.permute(0, 2, 3, 4, 1))
    assert torch.allclose(ours[..., :2] * c_act, theirs[..., :2], atol=1e-5)
    assert torch.allclose(ours[..., 4:] * c_gate, theirs[..., 2:], atol=1e-5)
    assert torch.allclose(ours[..., 2:4], torch.sigmoid(x.permute(0, 2, 3, 4, 1)[..., 2:4]), atol=1e-6)


def test_batch_norm_equals_e3nn_batch_norm():
    from e3nn.nn import BatchNorm

    torch.manual_seed(0)
    layer = FieldNormAct("o3_irreps", 2, "batch", None).train()
    ref = BatchNorm(hidden_irreps(2), normalization="component").train()
    x = torch.randn(2, hidden_irreps(2).dim, 4, 4, 4) * 3 + 1
    with torch.no_grad():
        ours = layer(x)
        theirs = ref(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()


@pytest.mark.parametrize("group", GROUPS)
def test_gate_with_roles_swapped_fails_the_check(group):
    """The activation on the l>0 channels and the gates on the scalars: not equivariant, and the check says so."""
    from equivox.irreps.layers import FieldLayout, IrrepsGate, field_layout

    good = field_layout(FIELD)
    swapped = FieldLayout(good.dim, good.instance, good.instance_dims, good.scalars, act=good.gated,
                          gates=good.gates, gated=good.act, gate_of=[0] * len(good.act))
    x = torch.randn(2, 2 * good.dim, 3, 3, 3)
    with torch.no_grad():
        assert max_rel_error(IrrepsGate(good, 2, "elu"), x, hidden_irreps(2), hidden_irreps(2), group) < 1e-5
        assert max_rel_error(IrrepsGate(swapped, 2, "elu"), x, hidden_irreps(2), hidden_irreps(2), group) > 1e-2


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("mode", ["norm", "group"])
def test_invariant_pooling(group, mode):
    pool = InvariantPooling(group, 2, mode)
    x = torch.randn(2, hidden_irreps(2).dim, 4, 4, 4)
    with torch.no_grad():
        err = max_rel_error(pool, x, hidden_irreps(2), o3.Irreps(f"{pool.out_channels}x0e"), group)
    assert err < 1e-5
    assert pool.out_channels == (2 * 6 if mode == "norm" else 2)  # 6 irrep instances per field


# ------------------------------------------------------------------ nets
def _unet(group, **kw):
    from equivox.nets import EquivariantUNet

    torch.manual_seed(0)
    net = EquivariantUNet(3, 1, 2, channels=(2, 2), strides=(2,), group=group, **kw)
    net.train()(torch.randn(2, 1, 8, 8, 8))  # batch-norm statistics that are not the initial ones
    return net.eval()


@pytest.mark.parametrize("group", GROUPS)
def test_encoder_features_are_equivariant(group):
    from equivox.nets import EquivariantEncoder

    torch.manual_seed(0)
    enc = EquivariantEncoder(3, 1, channels=(1, 2), strides=(2,), group=group).eval()
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        for level, n in enumerate((1, 2)):
            f = lambda t, level=level: enc(t)[level]  # noqa: E731
            assert max_rel_error(f, x, o3.Irreps("0e"), hidden_irreps(n), group) < 1e-4


@pytest.mark.parametrize("group", GROUPS)
def test_classifier_is_invariant(group):
    from equivox.nets import InvariantClassifier

    torch.manual_seed(0)
    net = InvariantClassifier(3, 1, 3, channels=(1, 2), strides=(2,), group=group, hidden_features=(8,)).eval()
    with torch.no_grad():
        assert max_rel_error(net, torch.randn(2, 1, 8, 8, 8), "1x0e", "1x0e", group, invariant=True) < 1e-4


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("head", ["stats", "pool", "linear"])
def test_unet_is_equivariant(group, head):
    """The default head on every element; the other heads on every third element (time: 2 CPU cores)."""
    net = _unet(group, head=head)
    with torch.no_grad():
        assert max_rel_error(net, torch.randn(1, 1, 8, 8, 8), "1x0e", "2x0e", group,
                             every=1 if head == "stats" else 3) < 1e-4


@pytest.mark.parametrize("group", GROUPS)
def test_monai_unet_is_equivariant(group):
    from equivox.nets import EquivariantMonaiUNet

    torch.manual_seed(0)
    net = EquivariantMonaiUNet(3, 1, 2, channels=(1, 2), strides=(2,), group=group).eval()
    with torch.no_grad():
        assert max_rel_error(net, torch.randn(1, 1, 8, 8, 8), "1x0e", "2x0e", group) < 1e-4


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


# ------------------------------------------------------------------ the kernel basis
def test_kernel_basis_paths():
    """1x1x1 kernels hold only l_filter = 0 paths (no vector -> scalar), 3x3x3 ones the Clebsch-Gordan paths;
    O(3) drops the parity-violating ones (e.g. a vector to a vector through l_filter = 1)."""
    from equivox.groups import get_group
    from equivox.nn.conv import pair_basis

    for name in GROUPS:
        g = get_group(name)
        one = pair_basis(name, g.hidden_repr, g.hidden_repr, 1)["basis"]
        assert one.shape[1:] == (12, 12, 1)
        assert one[:, :4, 4:7].abs().max() == 0 and one[:, 4:7, 7:].abs().max() == 0
    so3 = pair_basis("so3_irreps", get_group("so3_irreps").hidden_repr, get_group("so3_irreps").hidden_repr, 3)
    o3_ = pair_basis("o3_irreps", get_group("o3_irreps").hidden_repr, get_group("o3_irreps").hidden_repr, 3)
    assert so3["basis"].shape[0] > o3_["basis"].shape[0] > 0
    vv = o3_["basis"][:, 4:7, 4:7]  # vector -> vector: only l_filter 0 and 2 under O(3): even in the offset
    k = vv.reshape(-1, 3, 3, 3, 3, 3)
    assert torch.allclose(k, k.flip(3, 4, 5), atol=1e-6)
    assert so3["bias"].shape == (12, 4)  # bias on the four 0e channels (scalars and gates)


# ------------------------------------------------------------------ benchmark rows
def test_irreps_competitors_build_matched_and_equivariant(monkeypatch):
    """The harness rows: the MELBA-layout U-Net (kernel 5, fields 4x0e+2x1o+1x2e) and the so3_irreps classifier
    build through the competitor registry at about the reference's parameter count; the U-Net is equivariant."""
    from equivox import groups
    from equivox.baselines import count_parameters
    from equivox.benchmark import BuildContext, build_network, get_competitor
    from equivox.benchmark import competitors as registry
    from equivox.nets import EquivariantUNet, InvariantClassifier

    monkeypatch.setattr(groups.registry, "GROUPS", dict(groups.GROUPS))  # the MELBA group stays out of other tests
    monkeypatch.setattr(registry, "COMPETITORS", dict(registry.COMPETITORS))
    from equivox.irreps import competitors

    competitors.register_irreps_competitors()
    base = dict(spatial_dims=3, in_channels=1, out_channels=2, channels=[2, 4], strides=[2])
    ref = EquivariantUNet(**base, group="octa")
    net = build_network(get_competitor(competitors.MELBA_UNET, "segment"),
                        BuildContext("segment", 1, 2, "octa", ref, base, 0)).eval()
    assert net.group == competitors.MELBA_GROUP and net.encoder.levels[0].layers[0].kernel_size == 5
    assert abs(count_parameters(net) / count_parameters(ref) - 1) < 0.35
    with torch.no_grad():  # its field is 4x0e + 3 gates + 2x1o + 1x2e
        x = torch.randn(1, 1, 8, 8, 8)
        assert max_rel_error(net, x, "1x0e", "2x0e", "so3_irreps", every=4) < 1e-4
    ref = InvariantClassifier(**base, group="octa")
    clf = build_network(get_competitor(competitors.IRREPS_CLASSIFIER, "classify"),
                        BuildContext("classify", 1, 2, "octa", ref, base, 0, 16))
    assert clf.group == "so3_irreps" and abs(count_parameters(clf) / count_parameters(ref) - 1) < 0.35


def test_library_checker_agrees_on_irreps_layers():
    """equivox.testing.assert_equivariant (escnn representations of the fields) passes on irreps layers too: the
    fields' escnn representations act as e3nn's D (tests/test_irreps_bridge.py checks that directly)."""
    import equivox.testing as testing

    if not hasattr(testing, "assert_equivariant"):
        pytest.skip("equivox.testing.assert_equivariant not available")
    torch.manual_seed(0)
    h = FieldSpec.hidden("o3_irreps", 2)
    testing.assert_equivariant(EquivariantConv3d(FieldSpec.scalar("o3_irreps", 1), h, 3), size=5)
    testing.assert_equivariant(FieldNormAct("o3_irreps", 2, "batch", "elu"), size=3)


def test_nnunet_network_on_irreps_fields_is_equivariant():
    """The nnU-Net entry point takes group="o3_irreps" from a plan like any group (checked on the 48 elements)."""
    from equivox.nnunet.network import EquivariantNnUNet

    plan = dict(input_channels=1, n_stages=2, features_per_stage=[24, 48], conv_op="torch.nn.Conv3d",
                kernel_sizes=[[3, 3, 3], [3, 3, 3]], strides=[[1, 1, 1], [2, 2, 2]], n_conv_per_stage=1,
                num_classes=2, n_conv_per_stage_decoder=1, norm_op="torch.nn.InstanceNorm3d",
                norm_op_kwargs={"affine": True}, nonlin="torch.nn.LeakyReLU", nonlin_kwargs={"inplace": True},
                deep_supervision=False, group="o3_irreps")
    torch.manual_seed(0)
    net = EquivariantNnUNet(**plan).eval()
    assert net.group == "o3_irreps"
    with torch.no_grad():
        assert max_rel_error(net, torch.randn(1, 1, 8, 8, 8), "1x0e", "2x0e", "o3_irreps") < 1e-4
