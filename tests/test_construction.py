"""Construction: fast initialisation follows the He variance rule; warm builds come from the cache."""
import pytest
import torch
from torch import nn

from equivox.nn import EquivariantConv3d, FieldSpec
from equivox.nn import conv as conv_mod


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


@pytest.mark.parametrize("group", ["octa", "full_octa", "ico"])
def test_fast_clebsh_gordan_equals_escnn_bit_for_bit(group):
    """equivox's finite-group CG solver (installed in escnn) returns exactly escnn's own coefficients."""
    import itertools

    import numpy as np

    from equivox import _escnn_cg
    from equivox._escnn import escnn
    from equivox.groups import get_group

    G = get_group(group).gspace.fibergroup
    from equivox._escnn import quiet

    with quiet():  # installed in escnn only inside equivox's escnn scope
        assert escnn.group._clebsh_gordan._clebsh_gordan_tensor.func is _escnn_cg.clebsh_gordan_tensor
    assert escnn.group._clebsh_gordan._clebsh_gordan_tensor.func is _escnn_cg._FALLBACK  # escnn's own outside
    irreps = [psi.id for psi in G.irreps()][:4]
    triples = list(itertools.product(irreps, irreps, irreps))[::3]
    nonzero = 0
    for J, l, j in triples:
        ours = _escnn_cg.clebsh_gordan_tensor(J, l, j, type(G).__name__, **G._keys)
        with quiet():  # escnn's deterministic (dense SVD) path, also when scikit-learn is installed
            theirs = _escnn_cg._FALLBACK(J, l, j, type(G).__name__, **G._keys)
        assert ours.shape == theirs.shape and np.array_equal(ours, theirs), (J, l, j)
        nonzero += ours.shape[-2] > 0
    assert nonzero >= 3  # the comparison covered real coefficients, not only empty ones


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
