"""equivox.groups.spacing: which groups are exact for a voxel spacing, the group chosen for one, the warning for a
group that is not exact, and the training configuration's group="auto" built through these rules."""
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


def test_auto_group_and_spacing_checks():
    assert auto_group((1.0, 1.0, 1.0))[0] == "octa"
    name, why = auto_group((0.7, 0.7, 5.0))
    assert name == "d4_axial" and "W" in why
    assert auto_group((5.0, 0.7, 0.7))[0] == "d4_axial_d"
    assert auto_group((0.7, 5.0, 0.7))[0] == "d4_axial_h"
    assert auto_group((1.0, 2.0, 3.0))[0] == "trivial"
    exact = exact_groups_for_spacing((0.7, 0.7, 5.0))
    assert "octa" not in exact and "c4_axial" in exact and "c4_axial_d" not in exact
    with pytest.warns(UserWarning, match=r"octa.*0\.7, 0\.7, 5\.0.*d4_axial"):
        check_spacing("octa", (0.7, 0.7, 5.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_spacing("d4_axial", (0.7, 0.7, 5.0))
        check_spacing("octa", (2.0, 2.0, 2.0))


def test_training_config_group_auto_and_spacing_warning():
    from equivox.training import TrainConfig, build_model

    base = dict(task="segment", channels=(2, 2), strides=(2,))
    model = build_model(TrainConfig(**base, group="auto", spacing=(0.7, 0.7, 5.0)), 1, 3)
    assert model.group == "d4_axial"
    with pytest.raises(ValueError, match="spacing"):
        build_model(TrainConfig(**base, group="auto"), 1, 3)
    with pytest.warns(UserWarning, match=r"'octa' is not exact for voxel spacing \(0\.7, 0\.7, 5\.0\)"):
        build_model(TrainConfig(**base, group="octa", spacing=(0.7, 0.7, 5.0)), 1, 3)
