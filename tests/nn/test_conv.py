"""equivox.nn.conv: EquivariantConv3d between field types commutes with escnn's transform of hidden fields; its
fast initialisation follows the He variance rule; kernel bases come from the disk cache on warm builds, are shared
per representation pair and expanded from an orbit-compressed form; the filter follows every weight write; state
dicts are the same in train and eval mode, load across modes, processes and basis orderings, and pickle; padding
modes and field dropout keep equivariance; wrong inputs and arguments are refused."""
from __future__ import annotations

import copy
import io
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from equivox._escnn import enn
from equivox.groups import get_group
from equivox.nn import EquivariantConv3d, FieldSpec
from equivox.nn import conv as conv_mod

EXACT_BOUND = 1e-4  # relative; float32 rounding is ~1e-6


def test_hidden_fields_transform_like_escnn_says(cube_input):
    """A conv between hidden regular fields commutes with escnn's transform (spatial + channel permutation)."""
    group = get_group("octa")
    torch.manual_seed(0)
    conv = EquivariantConv3d(FieldSpec.hidden("octa", 2), FieldSpec.hidden("octa", 3), 3).eval()
    x = enn.GeometricTensor(torch.randn(1, 2 * 24, 7, 7, 7), group.hidden_type(2))
    y = conv(x)
    assert isinstance(y, enn.GeometricTensor) and y.type == group.hidden_type(3)
    for g in group.grid_elements[1:6]:
        lhs = conv(x.transform(g.escnn_element)).tensor
        rhs = y.transform(g.escnn_element).tensor
        assert (lhs - rhs).abs().max() / rhs.abs().max() < EXACT_BOUND, g.name


def test_wrong_inputs_and_kernel_sizes_are_refused():
    conv = EquivariantConv3d(FieldSpec.scalar("octa", 1), FieldSpec.hidden("octa", 1))
    with pytest.raises(ValueError, match="1 input fields"):
        conv(torch.randn(1, 3, 5, 5, 5))
    with pytest.raises(ValueError, match="odd"):
        EquivariantConv3d(FieldSpec.scalar("octa", 1), FieldSpec.hidden("octa", 1), kernel_size=2)


# ------------------------------------------------------------------ initialisation and kernel bases


def _interior_output_variance(conv, in_size, seeds=6):
    """Mean over ``seeds`` fresh initialisations of the output variance (interior voxels) for N(0, 1) inputs."""
    values = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        layer = conv()
        x = torch.randn(2, in_size, 10, 10, 10)
        with torch.no_grad():
            values.append(layer(x)[..., 1:-1, 1:-1, 1:-1].var().item())
    return sum(values) / len(values)


def test_plain_he_reference_variance_is_two():
    """The reference: a plain Conv3d with He (kaiming normal, ReLU gain) init maps unit variance to variance 2."""
    def make():
        c = nn.Conv3d(48, 48, 3, padding=1, bias=False)
        nn.init.kaiming_normal_(c.weight, nonlinearity="relu")
        return c

    assert _interior_output_variance(make, 48) == pytest.approx(2.0, rel=0.1)


@pytest.mark.parametrize("group", ["octa", "so3"])
@pytest.mark.parametrize("kind", ["hidden->hidden", "scalar->hidden", "mixed->hidden", "hidden->scalar"])
def test_fast_init_matches_the_he_variance_rule(group, kind):
    """Output variance of a freshly initialised equivariant conv = 2 x input variance (He rule, as escnn's
    generalized_he_init), whatever the field types; a wrong std (e.g. ignoring the basis energy) fails this."""
    specs = {
        "hidden->hidden": (FieldSpec.hidden(group, 2), FieldSpec.hidden(group, 2)),
        "scalar->hidden": (FieldSpec.scalar(group, 2), FieldSpec.hidden(group, 2)),
        "mixed->hidden": (FieldSpec.scalar(group, 2) + FieldSpec.hidden(group, 1), FieldSpec.hidden(group, 2)),
        "hidden->scalar": (FieldSpec.hidden(group, 2), FieldSpec.scalar(group, 3)),
    }
    a, b = specs[kind]
    var = _interior_output_variance(lambda: EquivariantConv3d(a, b, 3, bias=False), a.size)
    assert 1.6 < var < 2.4, f"{group} {kind}: output variance {var:.3f}, He rule wants 2"


def _count_r3conv(monkeypatch):
    calls = []
    original = conv_mod.enn.R3Conv

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(conv_mod.enn, "R3Conv", counting)
    return calls


def test_warm_build_comes_from_the_disk_cache(tmp_path, monkeypatch):
    """Cold: escnn builds the basis (R3Conv called). Warm (new process simulated by an empty in-memory memo): no
    escnn build at all, and the same basis."""
    monkeypatch.setenv("EQUIVOX_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("EQUIVOX_NO_CACHE", raising=False)
    monkeypatch.setattr(conv_mod, "_PAIR_MEMO", {})
    calls = _count_r3conv(monkeypatch)
    spec_in, spec_out = FieldSpec.scalar("trivial", 1), FieldSpec.hidden("trivial", 2)
    cold = EquivariantConv3d(spec_in, spec_out, 5)
    assert len(calls) > 0
    assert list((tmp_path / "tensors").glob("*.pt"))
    calls.clear()
    monkeypatch.setattr(conv_mod, "_PAIR_MEMO", {})
    warm = EquivariantConv3d(spec_in, spec_out, 5)
    assert calls == []
    assert torch.equal(warm.basis_0, cold.basis_0)


def test_layers_share_one_basis_tensor_per_representation_pair(small_model):
    """The in-process memo: all hidden->hidden layers of a model hold the same (read-only) basis storage."""
    model = small_model("unet", "octa")
    convs = [m for m in model.modules() if isinstance(m, EquivariantConv3d) and m._pairs == model.decoders[0]
             .layers[2]._pairs]
    assert len(convs) >= 2
    assert len({c.basis_0.data_ptr() for c in convs}) == 1
    # yet parameters are independent
    assert len({c.weight_0.data_ptr() for c in convs}) == len(convs)


@pytest.mark.parametrize("group", ["octa", "so3"])
def test_orbit_compressed_filter_expansion_equals_the_full_basis(group):
    """The per-step expansion from one column per orbit gives the filter of the full escnn basis."""
    torch.manual_seed(0)
    conv = EquivariantConv3d(FieldSpec.hidden(group, 2), FieldSpec.hidden(group, 3), 3)
    data = conv_mod._pair_data(group, *conv.in_spec.representations()[:1], *conv.out_spec.representations()[:1], 3)
    basis = data["basis"]  # (n_b, o, i, S)
    values, index = data["compressed"]
    assert values.shape[1] * 10 < basis[0].numel()  # really compressed (octa: ~|G| x fewer columns)
    w = conv.weight_0
    full = torch.einsum("abn,noiS->aobiS", w, basis).reshape(conv.out_channels, conv.in_channels, 3, 3, 3)
    filt, _ = conv.expand_parameters()
    torch.testing.assert_close(filt, full, atol=1e-6, rtol=1e-5)


def test_compression_refuses_columns_that_only_look_alike():
    """Columns that differ get their own entry: a basis with all-distinct columns is not compressed."""
    assert conv_mod._compress(torch.randn(5, 3, 4, 27)) is None
    basis = torch.randn(4, 1, 1, 27).repeat(1, 2, 3, 1)  # 6 identical copies of 27 distinct columns
    values, index = conv_mod._compress(basis)
    assert values.shape == (4, 27)
    torch.testing.assert_close(values[:, index], basis.reshape(4, -1))


# ------------------------------------------------------------------ weights, state dicts, processes


def test_eval_filter_follows_weight_writes_through_data(small_model, cube_input):
    model = copy.deepcopy(small_model("unet", "octa")).eval()
    gen = torch.Generator().manual_seed(1)

    def check(write):
        with torch.no_grad():
            before = model(cube_input)  # an eval forward (where a stale filter could be kept)
            write()
            after = model(cube_input)
        fresh = copy.deepcopy(small_model("unet", "octa"))
        fresh.load_state_dict(copy.deepcopy(model.state_dict()))
        with torch.no_grad():
            expected = fresh.eval()(cube_input)
        assert (expected - before).abs().max() > 1e-3  # the write did change the function
        torch.testing.assert_close(after, expected, rtol=0, atol=1e-6)

    def ema_through_data():  # EMA-style update: writes through .data do not bump the version counters
        for p in model.parameters():
            p.data.mul_(0.9).add_(0.05)

    def vector():
        vec = torch.nn.utils.parameters_to_vector(model.parameters())
        torch.nn.utils.vector_to_parameters(vec + 0.1 * torch.randn(vec.shape, generator=gen), model.parameters())

    check(ema_through_data)
    check(vector)


def test_padding_mode_and_dropout():
    from equivox.nets import EquivariantUNet

    torch.manual_seed(0)
    conv = EquivariantConv3d(FieldSpec.scalar("octa", 1), FieldSpec.hidden("octa", 1), 3, padding_mode="replicate")
    x = torch.randn(1, 1, 8, 8, 8) + 5.0
    zeros = EquivariantConv3d(FieldSpec.scalar("octa", 1), FieldSpec.hidden("octa", 1), 3)
    zeros.load_state_dict(conv.state_dict())
    assert (conv(x) - zeros(x))[..., 0].abs().max() > 1e-3  # the border differs ...
    assert (conv(x) - zeros(x))[..., 3:5, 3:5, 3:5].abs().max() < 1e-5  # ... the interior does not
    net = EquivariantUNet(channels=(6, 6), strides=(2,), group="octa", dropout=0.3)
    net.train()
    x = torch.randn(1, 1, 8, 8, 8)
    assert not torch.equal(net(x), net(x))  # dropout active in training
    net.eval()
    assert torch.equal(net(x), net(x))
    y = net(x)
    assert (net(torch.rot90(x, 1, (2, 3))) - torch.rot90(y, 1, (2, 3))).abs().max() < 1e-4 * y.abs().max()


@pytest.mark.parametrize("group", ["octa", "so3"])
def test_state_dict_same_in_train_and_eval_and_loads_across_modes(group, small_model, cube_input, trained):
    model = trained(small_model("unet", group))
    train_sd = copy.deepcopy(model.train().state_dict())
    eval_sd = copy.deepcopy(model.eval().state_dict())
    assert list(train_sd) == list(eval_sd)
    assert not any(k.endswith(("filter", "expanded_bias", "basis_0")) for k in train_sd)
    reference = model.eval()(cube_input)
    for sd in (train_sd, eval_sd):
        for mode in (True, False):
            other = small_model("unet", group, seed=1)
            other = copy.deepcopy(other).train(mode)
            other.load_state_dict(sd, strict=True)
            assert torch.allclose(other.eval()(cube_input), reference, atol=1e-5)


def test_loading_weights_in_eval_mode_refreshes_the_filter(small_model, cube_input):
    a = copy.deepcopy(small_model("unet", "octa", seed=0)).eval()
    b = copy.deepcopy(small_model("unet", "octa", seed=1)).eval()
    a(cube_input)  # expands and caches a's filters
    a.load_state_dict(b.state_dict())
    assert torch.equal(a(cube_input), b(cube_input))


def test_pickle_and_torch_save_round_trip(small_model, cube_input, trained):
    model = trained(small_model("unet", "octa")).eval()
    ref = model(cube_input)
    clone = pickle.loads(pickle.dumps(model))
    assert torch.equal(clone(cube_input), ref)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    assert torch.equal(torch.load(buf, weights_only=False)(cube_input), ref)


def test_reordered_basis_in_checkpoint_is_remapped(small_model, cube_input, trained):
    model = trained(small_model("unet", "octa")).eval()
    ref = model(cube_input)
    sd = copy.deepcopy(model.state_dict())
    key = "encoder.levels.0.layers.0"
    n = sd[f"{key}.weight_0"].shape[-1]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    sign = torch.where(torch.arange(n) % 3 == 0, -1.0, 1.0)
    # simulate a process whose escnn basis had another element order and signs
    sd[f"{key}.weight_0"] = sd[f"{key}.weight_0"][..., perm] * sign
    sd[f"{key}.basis_fingerprint_0"] = sd[f"{key}.basis_fingerprint_0"][perm] * sign[:, None].double()
    other = copy.deepcopy(small_model("unet", "octa", seed=1)).eval()
    other.load_state_dict(sd)
    assert torch.allclose(other(cube_input), ref, atol=1e-5)
    sd[f"{key}.basis_fingerprint_0"] = torch.randn_like(sd[f"{key}.basis_fingerprint_0"])
    with pytest.raises(RuntimeError, match="does not match"):
        other.load_state_dict(sd)


_SAVE = textwrap.dedent("""
    import sys, torch
    from equivox.nets import EquivariantUNet
    torch.manual_seed(3)
    model = EquivariantUNet(3, 1, 3, channels=(2, 2), strides=(2,), group=sys.argv[2])
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 1, 8, 8, 8) * 2 + 1)
    torch.save(model.state_dict(), sys.argv[1] + "/sd.pt")          # saved in train mode
    x = torch.randn(1, 1, 8, 8, 8, generator=torch.Generator().manual_seed(11))
    torch.save(model.eval()(x), sys.argv[1] + "/out.pt")
""")
_LOAD = textwrap.dedent("""
    import sys, torch
    from equivox.nets import EquivariantUNet
    torch.manual_seed(99)
    model = EquivariantUNet(3, 1, 3, channels=(2, 2), strides=(2,), group=sys.argv[2]).eval()
    model.load_state_dict(torch.load(sys.argv[1] + "/sd.pt"))       # loaded in eval mode
    x = torch.randn(1, 1, 8, 8, 8, generator=torch.Generator().manual_seed(11))
    diff = (model(x) - torch.load(sys.argv[1] + "/out.pt")).abs().max().item()
    print("DIFF", diff)
    assert diff < 1e-5, diff
""")


@pytest.mark.parametrize("group", ["octa", "so3"])
def test_checkpoint_loads_in_fresh_process_with_other_hash_seed(group, tmp_path):
    for script, seed in ((_SAVE, "1"), (_LOAD, "12345")):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run([sys.executable, "-c", script, str(tmp_path), group], env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DIFF" in proc.stdout

