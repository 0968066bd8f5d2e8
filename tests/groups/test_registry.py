"""equivox.groups.registry: the registered names, the built-in specs, their grid-exact elements (checked against
escnn's own transform, and closed under composition), register_group, and a user group registered from the
examples."""
import numpy as np
import pytest
import torch

from equivox._escnn import enn, gspaces
from equivox.groups import (GROUPS, FourierFields, GroupSpec, IrrepsFields, QuotientFields, RegularFields,
                            available_groups, exact_groups_for_spacing, get_group, group_spec, register_group)
from equivox.groups import registry

BUILT_IN = ["trivial", "octa", "octa_faces", "octa_vertices", "full_octa", "ico", "full_ico", "so3", "o3", "c4_axial",
            "d4_axial", "c4_axial_d", "d4_axial_d", "c4_axial_h", "d4_axial_h", "so3_irreps", "o3_irreps"]


@pytest.fixture
def scratch_registry(monkeypatch):
    """The registry's dict replaced by a copy for one test (every groups module reads ``registry.GROUPS``)."""
    monkeypatch.setattr(registry, "GROUPS", dict(registry.GROUPS))
    return registry.GROUPS


def test_built_in_names_in_order_with_their_field_kinds():
    assert available_groups()[:len(BUILT_IN)] == BUILT_IN and GROUPS is registry.GROUPS
    kinds = {n: type(GROUPS[n].fields) for n in BUILT_IN}
    assert kinds["octa"] is RegularFields and kinds["octa_faces"] is QuotientFields
    assert kinds["so3"] is FourierFields and kinds["so3_irreps"] is IrrepsFields is kinds["o3_irreps"]
    assert GROUPS["o3_irreps"].fields.reflections and not GROUPS["so3_irreps"].fields.reflections
    assert [GROUPS[f"d4_axial{s}"].slice_axis for s in ("", "_d", "_h")] == [2, 0, 1]
    assert GROUPS["o3"].kind == "fourier" and GROUPS["so3_irreps"].kind == "irreps"


def test_register_group_adds_replaces_and_refuses(scratch_registry):
    spec = GroupSpec("my_trivial", "x", lambda: gspaces.trivialOnR3(), exact_spacing="any")
    assert register_group(spec) is spec and "my_trivial" in available_groups() and group_spec("my_trivial") is spec
    assert "my_trivial" in exact_groups_for_spacing((1, 2, 3))  # the spacing rules read the same registry
    built = get_group("my_trivial")
    with pytest.raises(ValueError, match="already registered"):
        register_group(spec)
    other = GroupSpec("my_trivial", "y", lambda: gspaces.trivialOnR3())
    register_group(other, replace=True)
    assert get_group("my_trivial") is not built and get_group("my_trivial").description == "y"
    for bad, match in [(GroupSpec("a(b)", "x", lambda: None), "may not contain"),
                       (GroupSpec(" pad", "x", lambda: None), "surrounding spaces"),
                       (GroupSpec("bad_frame", "x", lambda: None, frame=(1, 2, 0)), "GroupSpec.frame")]:
        with pytest.raises(ValueError, match=match):
            register_group(bad)


def test_the_scratch_registry_is_gone_after_its_test():
    assert "my_trivial" not in available_groups() and "my_trivial" not in GROUPS


def test_replacing_a_base_drops_the_groups_derived_from_it(scratch_registry):
    base = GroupSpec("my_fourier", "x", lambda: gspaces.rot3dOnR3(maximum_frequency=2), FourierFields(),
                     continuous=True)
    register_group(base)
    derived = group_spec("my_fourier(n_seeds=4)")
    assert derived.fields.n_seeds == 4 and derived.name in registry._DERIVED
    register_group(base, replace=True)
    assert derived.name not in registry._DERIVED


def test_register_group_refuses_a_spec_without_field_kind():
    with pytest.raises(ValueError, match="GroupSpec.fields must be a FieldKind"):
        register_group(GroupSpec("bad_kind", "x", lambda: gspaces.trivialOnR3(), fields="fourier"))


EXPECTED_GRID_ELEMENTS = {"trivial": 1, "octa": 24, "octa_faces": 24, "octa_vertices": 24, "full_octa": 48, "ico": 12,
                          "full_ico": 24, "so3": 24, "o3": 48, "so3_irreps": 24, "o3_irreps": 48,
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


def test_custom_group_example_registers_builds_and_exports():
    import runpy
    from pathlib import Path

    from equivox.groups import GROUPS, _INSTANCES

    try:
        mod = runpy.run_path(str(Path(__file__).resolve().parents[2] / "examples" / "custom_group.py"))
        results = mod["main"]()
        assert "my_c2_about_w" in GROUPS  # the package source never names it: it came from the example
    finally:  # keep the registry as other tests expect it
        GROUPS.pop("my_c2_about_w", None)
        _INSTANCES.pop("my_c2_about_w", None)
    for name in ("EquivariantUNet", "InvariantClassifier"):
        assert results[name]["equivariance_error"] < 1e-4 and results[name]["export_diff"] < 1e-4
