"""equivox.groups.fields: the field kinds, the irreps one included (defined here, implemented in equivox.irreps):
each decides the hidden representation, the sampling matrices (Fourier samples permuted by the grid elements) and
the default pooling, and supplies norm, activation and pooling layers that export; quotient fields of octa (6 face
/ 8 vertex directions per field) are exact, cheaper and export."""
import dataclasses
import subprocess
import sys

import pytest
import torch

from equivox.groups import (GROUPS, FieldKind, FourierFields, Group, IrrepsFields, QuotientFields, RegularFields,
                            get_group)
from equivox.testing import assert_equivariant


def test_every_kind_is_a_field_kind_with_its_pooling():
    kinds = {RegularFields(): "group", QuotientFields(): "group", FourierFields(): "norm", IrrepsFields(): "norm"}
    for kind, pooling in kinds.items():
        assert isinstance(kind, FieldKind) and type(kind).default_pooling == pooling
    assert FieldKind().kernel_basis(None, None, None, 3) is None and FieldKind().norm_act(None, 1, None, None) is None
    with pytest.raises(NotImplementedError):
        FieldKind().hidden_repr(None)


def test_permutation_kinds_sample_nothing_and_quotients_are_cheaper():
    g = get_group("octa")
    assert RegularFields().sampling_matrices(g) is None and QuotientFields().sampling_matrices(g) is None
    assert RegularFields().hidden_repr(g.gspace).size == 24
    assert QuotientFields((False, 4)).hidden_repr(g.gspace).size == 6
    assert QuotientFields((False, 3)).hidden_repr(g.gspace).size == 8


def test_fourier_validation_counts_samples():
    FourierFields(band_limit=2, n_seeds=2).validate()  # 35 coefficients, 48 samples
    with pytest.raises(ValueError, match="use n_seeds >= 2"):
        FourierFields(band_limit=2, n_seeds=1).validate()
    with pytest.raises(ValueError, match="band_limit >= 0"):
        FourierFields(band_limit=-1).validate()


def test_irreps_fields_layout_and_validation():
    f = IrrepsFields("2x0e+1x1o+1x2e")
    assert str(f.field_irreps()) == "2x0e+2x0e+1x1o+1x2e" and f.field_irreps().dim == 12
    assert f.repr_name() == "irreps_field[2x0e+2x0e+1x1o+1x2e]"
    f.validate()
    for bad, match in [(IrrepsFields("1x0e+1x1e"), "spherical-harmonic parities"),
                       (IrrepsFields("1x0o+1x1o", reflections=True), "scalars must be 0e"),
                       (IrrepsFields(radial=1), "radial >= 2"), (IrrepsFields(radial_basis="box"), "radial_basis"),
                       (IrrepsFields("4 vectors"), "not an e3nn irreps string")]:
        with pytest.raises(ValueError, match=match):
            bad.validate()


def test_irreps_fields_keep_their_old_names():
    import equivox.irreps
    import equivox.irreps.fields

    assert equivox.irreps.IrrepsFields is IrrepsFields is equivox.irreps.fields.IrrepsFields
    assert IrrepsFields.__module__ == "equivox.groups.fields"
    assert equivox.irreps.irreps_group_specs()[0].name == "so3_irreps"


def test_irreps_sampling_is_permuted_by_the_grid_elements():
    g = get_group("o3_irreps")
    a, a_inv = g.sampling_matrices  # one row per (functional, cube symmetry): 4 functionals (4x0e), 48 symmetries
    assert a.shape == (4 * 48, g.field_size) and torch.allclose(a_inv @ a, torch.eye(g.field_size), atol=1e-4)
    v = torch.randn(g.field_size, dtype=torch.float64)
    for e in g.grid_elements[:8]:
        rho = torch.as_tensor(g.hidden_repr(e.escnn_element), dtype=torch.float64)
        assert torch.allclose((a.double() @ (rho @ v)).sort().values, (a.double() @ v).sort().values, atol=1e-4)


def test_options_are_the_dataclass_fields():
    f = dataclasses.replace(IrrepsFields(), filter_lmax=3)
    assert f.filter_lmax == 3 and isinstance(get_group("so3_irreps(filter_lmax=3)"), Group)
    assert get_group("so3_irreps(filter_lmax=3)").spec.fields == f


def test_import_of_groups_loads_no_irreps_and_still_knows_the_irreps_groups():
    """The registry's irreps groups need neither equivox.irreps nor e3nn until one is built (no import cycle)."""
    code = ("import sys, equivox.groups as g\n"
            "assert not [m for m in sys.modules if m.startswith(('equivox.irreps', 'e3nn'))], sorted(sys.modules)\n"
            "assert {'so3_irreps', 'o3_irreps'} <= set(g.available_groups())\n"
            "assert g.canonical_group_name('so3_irreps(filter_lmax=3, seed=5)') == 'so3_irreps(filter_lmax=3)'\n"
            "assert g.get_group('so3_irreps').field_size == 12\n"
            "assert 'equivox.irreps.bridge' in sys.modules\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]


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

    heavy = set() if os.environ.get("EQUIVOX_TEST_FULL_ICO") == "1" else {"full_ico"}
    return [n for n in GROUPS if n not in heavy]


@pytest.mark.parametrize("name", _registry_groups())
def test_every_group_field_kind_supplies_norm_act_pooling_and_their_export(name):
    """For every registered group its field-kind strategy decides the hidden representation, the sampling
    matrices and the default pooling; FieldNormAct and InvariantPooling built from it export to plain layers
    computing the same eval function (batch norm with trained statistics)."""
    from torch import nn

    from equivox.groups import grid_elements_of_name
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


ROT = [lambda t: torch.rot90(t, 1, dims=(-2, -1)), lambda t: torch.rot90(t, 1, dims=(-3, -2)),
       lambda t: torch.rot90(torch.rot90(t, 1, dims=(-3, -1)), 2, dims=(-2, -1))]


@pytest.mark.parametrize("group, size", [("octa_faces", 6), ("octa_vertices", 8)])
def test_quotient_fields_are_exact_cheaper_and_export(group, size):
    from equivox.nets import EquivariantUNet, InvariantClassifier

    g = get_group(group)
    assert g.field_size == size and len(g.grid_elements) == 24
    torch.manual_seed(0)
    unet = EquivariantUNet(in_channels=1, out_channels=3, channels=(2, 2), strides=(2,), group=group).eval()
    clf = InvariantClassifier(in_channels=1, out_channels=3, channels=(2, 2), strides=(2,), group=group).eval()
    assert unet.tensor_channels == (2 * size, 2 * size)
    x = torch.randn(2, 1, 8, 8, 8)
    assert_equivariant(unet, x)  # all 24 grid elements
    assert_equivariant(clf, x)
    with torch.no_grad():
        y, p = unet(x), clf(x)
        assert torch.allclose(unet.export()(x), y, atol=1e-5) and torch.allclose(clf.export()(x), p, atol=1e-5)


def test_quotient_fields_are_not_invariant_to_what_the_octa_field_sees():
    """A plain-trained net on the same code path is not equivariant: the check above can fail."""
    from equivox.nets import EquivariantUNet

    torch.manual_seed(0)
    net = EquivariantUNet(in_channels=1, out_channels=3, channels=(2, 2), strides=(2,), group="trivial").eval()
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        y = net(x)
        assert (net(ROT[0](x)) - ROT[0](y)).abs().max() / y.abs().max() > 1e-2
