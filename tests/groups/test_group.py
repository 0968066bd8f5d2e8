"""equivox.groups.group: the built Group, one instance per canonical name."""
import pickle

import pytest

from equivox._escnn import enn, gspaces
from equivox.groups import Group, get_group, grid_elements_of_name, group_of_field_type
from equivox.groups import registry


def test_one_instance_per_canonical_name_that_pickles_by_name():
    g = get_group("so3(n_seeds=4)")
    assert get_group("so3( n_seeds = 4 )") is g and get_group(g) is g and g.name == "so3(n_seeds=4)"
    assert registry._INSTANCES[g.name] is g
    assert pickle.loads(pickle.dumps(g)) is g


def test_group_data():
    g = get_group("octa")
    assert isinstance(g, Group) and g.order == 24 and g.field_size == 24 and not g.continuous
    assert g.kind == "regular" and g.default_pooling == "group" and g.sampling_matrices is None
    assert g.scalar_type(3).size == 3 and g.hidden_type(2).size == 48
    assert get_group("so3").order is None and get_group("so3").default_pooling == "norm"
    assert repr(g).startswith("Group('octa'")


@pytest.mark.parametrize("name", ["trivial", "octa", "full_octa", "c4_axial_h"])
def test_grid_elements_of_name_agree_with_the_built_group(name):
    listed = grid_elements_of_name(name)
    assert listed[0].is_identity
    assert [e.name for e in listed] == [e.name for e in get_group(name).grid_elements]


def test_axial_frames_conjugate_the_grid_elements():
    """c4_axial_d is escnn's rotations about its z axis (tensor D); c4_axial (W) the same conjugated by D <-> W."""
    about_d = {e.matrix for e in get_group("c4_axial_d").grid_elements}
    about_w = {e.matrix for e in get_group("c4_axial").grid_elements}
    assert all(m[0] == (1, 0, 0) for m in about_d) and all(m[2] == (0, 0, 1) for m in about_w)
    assert len(about_d) == len(about_w) == 4


def test_group_of_field_type():
    g = get_group("octa")
    assert group_of_field_type(g.hidden_type(1)) is g
    assert group_of_field_type(get_group("c4_axial_d").scalar_type(1)).name == "c4_axial_d"  # unpermuted frame
    foreign = enn.FieldType(gspaces.rot2dOnR3(n=6), [gspaces.rot2dOnR3(n=6).trivial_repr])
    with pytest.raises(TypeError, match="does not belong to an equivox group"):
        group_of_field_type(foreign)
