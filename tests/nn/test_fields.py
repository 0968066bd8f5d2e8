"""equivox.nn.fields: FieldSpec, a field type as plain data: sizes of scalar and hidden fields, the escnn type it
stands for (and back), direct sums, class permutations of label-swapping outputs, and pickling."""
from __future__ import annotations

import pickle

import pytest

from equivox.groups import get_group
from equivox.nn import FieldSpec


@pytest.mark.parametrize("group, field_size", [("octa", 24), ("full_octa", 48), ("c4_axial", 4), ("octa_faces", 6)])
def test_scalar_and_hidden_fields_have_their_sizes(group, field_size):
    s, h = FieldSpec.scalar(group, 3), FieldSpec.hidden(group, 2)
    assert (len(s), s.size) == (3, 3) and (len(h), h.size) == (2, 2 * field_size)
    assert s.group == h.group == get_group(group).name and s != h
    assert s.class_permutation is None and s.class_swaps is None


def test_escnn_type_round_trip_and_wrong_group():
    spec = FieldSpec.scalar("octa", 1) + FieldSpec.hidden("octa", 2)
    ft = spec.to_escnn()
    assert ft.size == spec.size == 1 + 48 and len(ft.representations) == 3
    assert FieldSpec.from_escnn(ft, "octa") == spec
    with pytest.raises(TypeError, match="not on group 'so3'"):
        FieldSpec.from_escnn(ft, "so3")


def test_direct_sum_concatenates_fields_and_class_permutations():
    a = FieldSpec.scalar("full_octa", 3).with_class_swaps([(1, 2)])
    b = FieldSpec.scalar("full_octa", 2)
    ab = a + b
    assert ab.reprs == a.reprs + b.reprs and ab.size == 5
    assert ab.class_permutation == (0, 2, 1, 3, 4)  # the identity on the side without a permutation
    assert (b + a).class_permutation == (0, 1, 2, 4, 3)
    assert (b + b).class_permutation is None
    with pytest.raises(TypeError, match="cannot concatenate fields of groups"):
        a + FieldSpec.scalar("octa", 1)


def test_class_permutation_is_checked_and_part_of_the_type():
    spec = FieldSpec.scalar("full_octa", 4)
    swapped = spec.with_class_swaps([(1, 2)])
    assert swapped.class_permutation == (0, 2, 1, 3) and swapped.class_swaps == ((1, 2),)
    assert swapped != spec and swapped.with_class_permutation(None) == spec
    assert spec.with_class_swaps(None) == spec and spec.with_class_swaps([]) == spec
    with pytest.raises(ValueError, match="has 3 entries, the fields have 4 channels"):
        spec.with_class_permutation([0, 2, 1])
    with pytest.raises(ValueError, match="must be a permutation of 0 .. n-1"):
        FieldSpec("full_octa", spec.reprs, (0, 0, 1, 2))


def test_a_spec_pickles_as_plain_data():
    spec = (FieldSpec.hidden("so3", 1) + FieldSpec.scalar("so3", 2))
    back = pickle.loads(pickle.dumps(spec))
    assert back == spec and back.size == spec.size and hash(back) == hash(spec)
