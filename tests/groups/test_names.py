"""equivox.groups.names: the name language ``base(option=value, ...)``."""
import pytest

from equivox.groups import IrrepsFields, canonical_group_name, group_name_error, group_spec, parse_group_name
from equivox.groups.names import _field_options, _split_group_name


def test_split_is_syntax_only():
    assert _split_group_name("octa") == ("octa", [])
    assert _split_group_name("so3_irreps()") == ("so3_irreps", [])
    assert _split_group_name(" x ( a = 1 , b=[1, 2] )") == ("x", [("a", "1"), ("b", "[1, 2]")])
    for bad in ["(a=1)", "x(a=1", "x(a)", "x(=1)", "x(a=)", "x(a=1,,b=2)"]:
        with pytest.raises(ValueError):
            _split_group_name(bad)


def test_options_are_the_field_kinds_typed_fields_less_the_fixed_ones():
    options = _field_options(IrrepsFields())
    assert "reflections" not in options and options["filter_lmax"] is int and options["irreps"] is str
    assert _field_options(object()) == {}


def test_parse_types_values_and_drops_defaults():
    assert parse_group_name("so3_irreps(irreps='4x0e + 1x1o', radial=none, filter_lmax=2, seed=6)") == (
        "so3_irreps", {"irreps": "4x0e+1x1o", "seed": 6})
    assert parse_group_name("so3(band_limit=1, n_seeds=2)") == ("so3", {"band_limit": 1, "n_seeds": 2})
    assert parse_group_name("octa_faces(subgroup=[false, 3])") == ("octa_faces", {"subgroup": (False, 3)})


@pytest.mark.parametrize("name, match", [
    ("octo", "did you mean 'octa'"), ("octa(x=1)", "takes no options"),
    ("o3_irreps(reflections=false)", "fixed by the group"), ("so3_irreps(lmax=3)", "unknown option 'lmax'"),
    ("so3_irreps(filter_lmax=three)", "expected an integer"), ("so3_irreps(seed=1, seed=2)", "twice"),
    ("so3_irreps(radial=1)", "radial >= 2"), (3, "unknown group 3")])
def test_bad_names_raise_one_line(name, match):
    with pytest.raises(ValueError, match=match) as err:
        group_spec(name)
    assert "\n" not in str(err.value)


def test_one_canonical_name_and_one_spec_per_group():
    spellings = ["so3_irreps(seed=6, filter_lmax=3)", "so3_irreps( filter_lmax = 3 , seed=6 )",
                 "so3_irreps(filter_lmax=3, seed=6, irreps=2x0e+1x1o+1x2e)"]
    assert {canonical_group_name(s) for s in spellings} == {"so3_irreps(filter_lmax=3, seed=6)"}
    specs = {id(group_spec(s)) for s in spellings}
    assert len(specs) == 1 and group_spec(spellings[0]).fields.filter_lmax == 3
    assert canonical_group_name("so3_irreps(filter_lmax=2)") == "so3_irreps" and group_spec("octa").name == "octa"


def test_group_name_error_is_none_or_one_line_for_the_user():
    assert group_name_error("octa") is None and group_name_error("auto", extra=("auto",)) is None
    assert group_name_error("so3_irreps(filter_lmax=3)") is None
    msg = group_name_error("octo", what="--group", extra=("auto",))
    assert msg.startswith("--group 'octo' is not a group name; did you mean 'octa'?") and "auto" in msg
    assert "unknown option" in group_name_error("so3(lmax=1)") and "must read base" in group_name_error("so3(")
