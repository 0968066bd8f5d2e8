"""Bridge equivox <-> e3nn: field specs to and from ``o3.Irreps`` for every continuous group, the Wigner-D action of a
grid element against escnn's own representation, and tensors moved between e3nn layers and equivox blocks with
equivariance kept. Group elements are written here with ``torch.rot90`` / ``flip``, their matrices read off by
conftest's ``matrix_of``, and moved features by e3nn's ``D_from_matrix``."""
from __future__ import annotations

import pytest
import torch
from e3nn import o3

from equivox.groups import get_group
from equivox.irreps.bridge import (from_e3nn, irreps_to_spec, spec_to_irreps, to_e3nn, to_e3nn_matrix,
                                   wigner_d)
from equivox.nn import EquivariantConv3d, FieldSpec

CONTINUOUS = ["so3", "o3", "so3_irreps", "o3_irreps"]


def _ops(reflections: bool):
    """A few elements as ops on (B, C, D, H, W): quarter turns about each axis, a composition, and (with
    reflections) the inversion and an improper rotation."""
    def rot(k, dims):
        return lambda t: torch.rot90(t, k, dims)

    ops = [rot(1, (2, 3)), rot(1, (2, 4)), rot(3, (3, 4)), lambda t: torch.rot90(torch.rot90(t, 1, (2, 3)), 1, (3, 4))]
    if reflections:
        ops += [lambda t: t.flip(2, 3, 4), lambda t: torch.rot90(t, 1, (3, 4)).flip(2, 3, 4)]
    return ops


def _specs(group):
    h, s = FieldSpec.hidden(group, 1), FieldSpec.scalar(group, 1)
    return [FieldSpec.hidden(group, 2), FieldSpec.scalar(group, 3), h + s + s + h]


@pytest.mark.parametrize("group", CONTINUOUS)
def test_spec_irreps_round_trip(group):
    for spec in _specs(group):
        irreps = spec_to_irreps(spec)
        assert irreps.dim == spec.size
        assert irreps_to_spec(irreps, group) == spec
    if group in ("so3", "o3"):  # escnn's band-limited regular field, L = 2: each irrep l with multiplicity 2l + 1
        assert sorted(spec_to_irreps(FieldSpec.hidden(group, 1)).simplify()) == sorted(
            o3.Irreps("1x0e+3x1o+5x2e" if group == "so3" else "1x0e+1x0o+3x1o+3x1e+5x2e+5x2o").simplify())
    else:
        assert spec_to_irreps(FieldSpec.hidden(group, 1)) == o3.Irreps("4x0e+1x1o+1x2e")  # scalars, gates, gated


def test_irreps_to_spec_makes_single_irrep_fields_and_refuses_bad_input():
    spec = irreps_to_spec("2x1o+1x0e+1x2e", "so3_irreps")
    assert len(spec) == 4 and spec.size == 12 and spec_to_irreps(spec) == o3.Irreps("2x1o+1x0e+1x2e")
    assert torch.equal(to_e3nn_matrix(spec), torch.eye(12))
    with pytest.raises(ValueError, match="wrong parity"):
        irreps_to_spec("1x1e", "so3_irreps")
    with pytest.raises(ValueError, match="not SO\\(3\\) or O\\(3\\)"):
        spec_to_irreps(FieldSpec.hidden("octa", 1))
    with pytest.raises(ValueError, match="not SO\\(3\\) or O\\(3\\)"):
        irreps_to_spec("1x0e", "octa")


@pytest.mark.parametrize("group", CONTINUOUS)
def test_wigner_d_is_escnn_action_on_every_grid_element(group):
    """The bridge's matrix (e3nn's D conjugated into the field's basis) equals escnn's representation of the same
    element: frame and intertwiners agree, on fields in e3nn's basis and on Fourier fields alike."""
    g = get_group(group)
    spec = FieldSpec.hidden(group, 1) + FieldSpec.scalar(group, 1)
    b = to_e3nn_matrix(spec)
    assert torch.allclose(b @ b.T, torch.eye(spec.size), atol=1e-5)
    for el in g.grid_elements:
        ours = wigner_d(el, spec)
        escnn = torch.block_diag(torch.as_tensor(g.hidden_repr(el.escnn_element), dtype=torch.float32),
                                 torch.ones(1, 1))
        assert torch.allclose(ours, escnn, atol=1e-4), el.name


@pytest.mark.parametrize("group", ["so3", "so3_irreps", "o3_irreps"])
def test_e3nn_head_on_equivox_features_is_equivariant(group, matrix_of):
    """equivox encoder features -> e3nn layout -> e3nn.o3.Linear: the e3nn output transforms by its own D."""
    from equivox.nets import EquivariantEncoder

    torch.manual_seed(0)
    enc = EquivariantEncoder(3, 1, channels=(1,), strides=(), group=group).eval()
    spec = enc.out_spec
    head = o3.Linear(spec_to_irreps(spec), "3x0e+2x1o")
    out_irreps = o3.Irreps("3x0e+2x1o")

    def model(x):
        return head(to_e3nn(enc(x)[-1], spec))  # (B, D, H, W, 9)

    x = torch.randn(1, 1, 6, 6, 6)
    with torch.no_grad():
        ref = model(x)
        for op, m in ((op, matrix_of(op)) for op in _ops(group.startswith("o3"))):
            d = out_irreps.D_from_matrix(m).float()
            target = torch.einsum("ij,b...j->b...i", d, op(ref.permute(0, 4, 1, 2, 3)).permute(0, 2, 3, 4, 1))
            assert (model(op(x)) - target).abs().max() / ref.abs().max() < 1e-4


@pytest.mark.parametrize("group", ["so3", "o3_irreps"])
def test_equivox_block_after_e3nn_layer_is_equivariant(group, matrix_of):
    """A vector field (e3nn 1x1o, channels last) -> e3nn.o3.Linear -> equivox conv on the bridged spec -> hidden
    fields, which transform by the bridge's D (checked with e3nn's D_from_matrix on the input)."""
    torch.manual_seed(0)
    lin = o3.Linear("1x1o", "2x1o")
    spec = irreps_to_spec("2x1o", group)
    conv = EquivariantConv3d(spec, FieldSpec.hidden(group, 1), 3)
    d_in = o3.Irreps("1x1o")

    def model(v):
        return conv(from_e3nn(lin(v), spec))

    v = torch.randn(1, 5, 5, 5, 3)
    with torch.no_grad():
        ref = model(v)
        for op, m in ((op, matrix_of(op)) for op in _ops(group.startswith("o3"))):
            vr = torch.einsum("ij,b...j->b...i", d_in.D_from_matrix(m).float(),
                              op(v.permute(0, 4, 1, 2, 3)).permute(0, 2, 3, 4, 1))
            target = torch.einsum("ij,bj...->bi...", wigner_d(m.numpy(), conv.out_spec), op(ref))
            assert (model(vr) - target).abs().max() / ref.abs().max() < 1e-4


def test_to_and_from_e3nn_are_inverse():
    spec = FieldSpec.hidden("o3", 1) + FieldSpec.scalar("o3", 2)
    x = torch.randn(2, spec.size, 3, 4, 5)
    z = to_e3nn(x, spec)
    assert z.shape == (2, 3, 4, 5, spec.size)
    assert torch.allclose(from_e3nn(z, spec), x, atol=1e-5)
