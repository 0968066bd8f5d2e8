"""equivox.groups.spacing: which groups are exact for a voxel spacing."""
import warnings

import pytest

from equivox.groups import auto_group, check_spacing, exact_groups_for_spacing, get_group


@pytest.mark.parametrize("spacing, name", [((1, 1, 1), "octa"), ((0.7, 0.7, 0.7 * (1 + 1e-4)), "octa"),
                                           ((1, 1, 3), "d4_axial"), ((3, 1, 1), "d4_axial_d"),
                                           ((1, 3, 1), "d4_axial_h"), ((1, 2, 3), "trivial")])
def test_auto_group_picks_the_largest_exact_group(spacing, name):
    got, why = auto_group(spacing)
    assert got == name and str(tuple(float(v) for v in spacing)) in why


def test_exact_groups_follow_the_spec_rules():
    iso = exact_groups_for_spacing((2, 2, 2))
    assert {"octa", "so3", "c4_axial", "d4_axial_h", "trivial"} <= set(iso)
    axial = exact_groups_for_spacing((1, 1, 5))
    assert set(axial) == {"trivial", "c4_axial", "d4_axial"}
    assert exact_groups_for_spacing((1, 2, 3)) == ["trivial"]
    assert "octa" in exact_groups_for_spacing((1, 1, 1.05), rtol=0.1)
    for bad in [(1, 1), (1, 0, 1), (-1, 1, 1)]:
        with pytest.raises(ValueError, match="3 positive numbers"):
            exact_groups_for_spacing(bad)


def test_check_spacing_warns_only_where_the_group_is_not_exact():
    with pytest.warns(UserWarning, match=r"'octa' is not exact .*d4_axial"):
        check_spacing("octa", (1, 1, 3))
    with pytest.warns(UserWarning, match="so3_irreps"):
        check_spacing("so3_irreps(filter_lmax=3)", (1, 2, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_spacing(get_group("d4_axial"), (1, 1, 3))
        check_spacing("octa", None)
        check_spacing("trivial", (1, 2, 3))
