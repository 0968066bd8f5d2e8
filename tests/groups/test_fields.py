"""equivox.groups.fields: the field kinds, the irreps one included (defined here, implemented in equivox.irreps)."""
import dataclasses
import subprocess
import sys

import pytest
import torch

from equivox.groups import (FieldKind, FourierFields, Group, IrrepsFields, QuotientFields, RegularFields,
                            get_group)


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
