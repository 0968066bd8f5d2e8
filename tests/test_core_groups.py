"""Group registry: names, errors, grid-exact elements checked against escnn's own transform (per-module tests of
equivox.groups: tests/groups/)."""
import numpy as np
import pytest
import torch

from equivox._escnn import enn
from equivox.groups import GROUPS, FourierFields, available_groups, get_group

EXPECTED_GRID_ELEMENTS = {"trivial": 1, "octa": 24, "octa_faces": 24, "octa_vertices": 24, "full_octa": 48, "ico": 12, "full_ico": 24, "so3": 24, "o3": 48,
                          "so3_irreps": 24, "o3_irreps": 48,
                          **{f"c4_axial{s}": 4 for s in ("", "_d", "_h")},
                          **{f"d4_axial{s}": 8 for s in ("", "_d", "_h")}}


def test_registry_names():
    assert set(available_groups()) == set(EXPECTED_GRID_ELEMENTS)


def test_unknown_group_lists_available():
    with pytest.raises(ValueError) as err:
        get_group("octahedral")
    msg = str(err.value)
    assert "octahedral" in msg and all(name in msg for name in EXPECTED_GRID_ELEMENTS)


@pytest.mark.parametrize("name", list(EXPECTED_GRID_ELEMENTS))
def test_grid_elements_agree_with_escnn_transform(name):
    group = get_group(name)
    elements = group.grid_elements
    assert len(elements) == EXPECTED_GRID_ELEMENTS[name]
    assert elements[0].is_identity
    x = torch.randn(1, 2, 3, 4, 5)  # non-cubic: axis permutations must match too
    field_type = group.scalar_type(2)
    # axial groups about H or W are escnn's (about D) conjugated by an axis swap
    swap = [0, 1] + [2 + a for a in group.spec.frame]
    for g in elements:
        xs = x.permute(*swap).contiguous()
        expected = enn.GeometricTensor(xs, field_type).transform(g.escnn_element).tensor.permute(*swap)
        got = g.apply(x)
        assert got.shape == expected.shape, g.name
        assert torch.equal(got, expected), g.name


@pytest.mark.parametrize("name", ["octa", "full_octa", "ico", "so3", "c4_axial", "d4_axial_d"])
def test_grid_elements_form_a_group(name):
    mats = {np.array(g.matrix).tobytes() for g in get_group(name).grid_elements}
    for a in get_group(name).grid_elements:
        for b in get_group(name).grid_elements:
            assert (np.array(a.matrix) @ np.array(b.matrix)).tobytes() in mats


@pytest.mark.parametrize("name", [n for n, s in GROUPS.items() if isinstance(s.fields, FourierFields)])
def test_fourier_sampling_is_invertible_and_permuted_by_grid_elements(name):
    group = get_group(name)
    a, a_inv = group.sampling_matrices
    assert torch.allclose(a_inv @ a, torch.eye(group.field_size), atol=1e-4)
    coeffs = torch.randn(group.field_size, dtype=torch.float64)
    samples = a.double() @ coeffs
    for g in group.grid_elements:
        rho = torch.as_tensor(group.hidden_repr(g.escnn_element), dtype=torch.float64)
        moved = a.double() @ (rho @ coeffs)
        assert torch.allclose(moved.sort().values, samples.sort().values, atol=1e-4), g.name


def _registry_groups():
    import os

    from equivox.groups import GROUPS

    heavy = set() if os.environ.get("EQUIVOX_TEST_FULL_ICO") == "1" else {"full_ico"}
    return [n for n in GROUPS if n not in heavy]


@pytest.mark.parametrize("name", _registry_groups())
def test_every_group_field_kind_supplies_norm_act_pooling_and_their_export(name):
    """For every registered group its field-kind strategy decides the hidden representation, the sampling
    matrices and the default pooling; FieldNormAct and InvariantPooling built from it export to plain layers
    computing the same eval function (batch norm with trained statistics)."""
    from torch import nn

    from equivox.groups import FieldKind, GROUPS, get_group, grid_elements_of_name
    from equivox.nn import FieldNormAct, InvariantPooling

    spec = GROUPS[name]
    assert isinstance(spec.fields, FieldKind) and spec.kind == spec.fields.name
    g = get_group(name)
    assert g.hidden_repr.size == g.field_size
    mats = g.sampling_matrices
    if mats is not None:
        a, a_inv = mats
        assert a.shape[1] == g.field_size and a_inv.shape == (g.field_size, a.shape[0])
        assert torch.allclose(a_inv @ a, torch.eye(g.field_size), atol=1e-4)
    assert {e.name for e in grid_elements_of_name(name)} == {e.name for e in g.grid_elements}
    torch.manual_seed(0)
    block = nn.Sequential(FieldNormAct(name, 2, "batch", "elu"), InvariantPooling(name, 2))
    assert block[1].mode == spec.fields.default_pooling
    with torch.no_grad():
        block.train()(torch.randn(4, 2 * g.field_size, 3, 3, 3) * 2 + 1)
        block[0].norm.weight.uniform_(0.5, 1.5)
    block.eval()
    x = torch.randn(2, 2 * g.field_size, 3, 3, 3)
    plain = block[0].export(), block[1].export()
    with torch.no_grad():
        assert (plain[0](x) - block[0](x)).abs().max().item() < 1e-4
        assert (plain[1](x) - block[1](x)).abs().max().item() < 1e-4
