"""equivox.groups.names: the name language ``base(option=value, ...)``: field options in group names
(``get_group("so3_irreps(irreps=4x0e+2x1o+1x2e, filter_lmax=3)")``) build the registered base group with those
options on its field kind, under one canonical name, reachable from the nets, YAML, the CLI and checkpoints; bad
names fail with one line.

Rotations are written here with ``torch.rot90`` on the voxel axes (and ``flip`` of all three for the inversion);
expected sizes and basis counts are worked out by hand from the irreps.
"""
import pickle

import pytest
import torch

from equivox import groups
from equivox.groups import (IrrepsFields, canonical_group_name, get_group, group_name_error, group_spec,
                            parse_group_name)
from equivox.groups.names import _field_options, _split_group_name
from equivox.nets import EquivariantUNet, InvariantClassifier


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


#: 4 scalars, 3 gates (one per non-scalar irrep), 2 vectors, one l=2 irrep: 4 + 3 + 2 * 3 + 5 = 18 channels
IRREPS = "4x0e+2x1o+1x2e"
NAME = f"so3_irreps(irreps={IRREPS}, filter_lmax=3)"
SMALL = dict(spatial_dims=3, in_channels=1, channels=(1, 1), strides=(2,), convs_per_level=1)


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


#: cube rotations written as torch ops on (B, C, D, H, W): quarter turns in each plane and two compositions
ROTATIONS = [
    ("rot90 DH", lambda t: torch.rot90(t, 1, (2, 3))),
    ("rot90 DW", lambda t: torch.rot90(t, 1, (2, 4))),
    ("rot90 HW", lambda t: torch.rot90(t, 1, (3, 4))),
    ("rot180 HW", lambda t: torch.rot90(t, 2, (3, 4))),
    ("rot90 DH . rot90 HW", lambda t: torch.rot90(torch.rot90(t, 1, (3, 4)), 1, (2, 3))),
    ("rot-90 DW . rot90 DH", lambda t: torch.rot90(torch.rot90(t, 1, (2, 3)), -1, (2, 4))),
]


# ------------------------------------------------------------------------------------------- names and spellings
def test_options_parse_by_type_and_have_one_canonical_name():
    assert parse_group_name(NAME) == ("so3_irreps", {"irreps": IRREPS, "filter_lmax": 3})
    assert parse_group_name("so3_irreps(radial=none, radial_basis=cosine, seed=2)") == (
        "so3_irreps", {"radial_basis": "cosine", "seed": 2})  # radial=none is the base's value: dropped
    spellings = [NAME, f"so3_irreps( filter_lmax = 3 ,irreps='4x0e + 2x1o + 1x2e' )",
                 f"so3_irreps(filter_lmax=3,irreps={IRREPS},radial_basis=gaussian)"]
    assert {canonical_group_name(s) for s in spellings} == {f"so3_irreps(filter_lmax=3, irreps={IRREPS})"}
    g = get_group(NAME)
    assert all(get_group(s) is g for s in spellings)
    assert g.name == f"so3_irreps(filter_lmax=3, irreps={IRREPS})"
    assert pickle.loads(pickle.dumps(g)) is g  # a saved group string rebuilds the same group
    assert get_group("so3_irreps(filter_lmax=2)") is get_group("so3_irreps")  # the base's own value
    assert "so3_irreps(" not in " ".join(groups.available_groups())  # listings keep the registered names


def test_the_field_kind_carries_the_options():
    fields = get_group(NAME).spec.fields
    assert (fields.irreps, fields.filter_lmax, fields.reflections) == (IRREPS, 3, False)
    assert get_group(NAME).field_size == 18
    o3 = get_group("o3_irreps(irreps=2x0e+1x1o+1x1e)").spec.fields
    assert o3.reflections is True and o3.irreps == "2x0e+1x1o+1x1e"  # reflections stay the group's
    assert get_group("octa_faces(subgroup=[false, 3])").field_size == 8  # O / C3: the 8 cube vertices
    so3 = get_group("so3(n_seeds=4, seed=1)")
    a, a_inv = so3.sampling_matrices
    assert a.shape == (4 * 24, 35) and a_inv.shape == (35, 96)  # 4 seed orbits of the 24 cube rotations, L=2


def test_nets_built_with_options_have_their_fields():
    torch.manual_seed(0)
    unet = EquivariantUNet(out_channels=2, group=NAME, **SMALL)
    plain = EquivariantUNet(out_channels=2, group="so3_irreps", **SMALL)
    assert get_group(unet.group).spec.fields.irreps == IRREPS
    assert unet.tensor_channels == (18, 18) and plain.tensor_channels == (12, 12)
    assert _count(unet) != _count(plain)
    assert _count(EquivariantUNet(out_channels=2, group="so3_irreps(filter_lmax=1)", **SMALL)) < _count(plain)


# --------------------------------------------------------------------------------------------------- equivariance
def test_classifier_with_options_is_invariant_under_cube_rotations():
    torch.manual_seed(1)
    model = InvariantClassifier(out_channels=3, group=NAME, **SMALL).eval()
    x = torch.randn(2, 1, 8, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = model(x)
        for name, rot in ROTATIONS:
            assert _rel(model(rot(x)), y) < 1e-4, name
        # the check can fail: a voxel shuffle that is no rotation changes the output
        assert _rel(model(x.transpose(3, 4).flip(2)[:, :, :, :, torch.randperm(8)]), y) > 1e-3


def test_unet_with_options_on_o3_is_equivariant_with_the_inversion():
    torch.manual_seed(2)
    model = EquivariantUNet(out_channels=2, group="o3_irreps(irreps=2x0e+1x1o+1x1e, radial_basis=cosine)",
                            **SMALL).eval()
    x = torch.randn(1, 1, 8, 8, 8, generator=torch.Generator().manual_seed(4))
    ops = ROTATIONS[:3] + [("inversion", lambda t: t.flip(2, 3, 4)),
                           ("inversion . rot90 DH", lambda t: torch.rot90(t, 1, (2, 3)).flip(2, 3, 4))]
    with torch.no_grad():
        y = model(x)
        for name, op in ops:
            assert _rel(model(op(x)), op(y)) < 1e-4, name


# --------------------------------------------------------------------------------------------------- kernel bases
def _n_paths(irreps_l, lmax):
    """Allowed (l_out, l_filter, l_in) triples of SO(3) between two fields with irreps of degrees ``irreps_l``."""
    return sum(1 for lo in irreps_l for li in irreps_l for lf in range(abs(li - lo), min(li + lo, lmax) + 1))


@pytest.mark.parametrize("lmax", [0, 2])
def test_kernel_basis_follows_filter_lmax(lmax):
    from equivox.nn.conv import pair_basis

    g = get_group(f"so3_irreps(irreps=1x0e+1x1o, filter_lmax={lmax}, radial=2)")
    basis = pair_basis(g, g.hidden_repr, g.hidden_repr, 3)["basis"]
    # one field is 0e (scalar), 0e (gate), 1o: 2 radial functions per allowed path
    assert basis.shape == (2 * _n_paths([0, 0, 1], lmax), 5, 5, 27)
    assert _n_paths([0, 0, 1], 0) == 5 and _n_paths([0, 0, 1], 2) == 11


# ---------------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name, expected", [
    ("so3_irrep(filter_lmax=3)", "unknown group 'so3_irrep'; did you mean 'so3_irreps'"),
    ("so3_irreps(filter_lamx=3)", "unknown option 'filter_lamx' for group 'so3_irreps' (irreps fields); options: "
                                  "irreps (a string), filter_lmax (an integer)"),
    ("so3_irreps(filter_lmax=two)", "option filter_lmax=two of group 'so3_irreps': expected an integer, got 'two'"),
    ("so3_irreps(radial=1.5)", "expected an integer or none, got '1.5'"),
    ("so3_irreps(filter_lmax=true)", "expected an integer, got 'true'"),
    ("octa(band_limit=3)", "group 'octa' takes no options: its regular fields have none"),
    ("so3_irreps(reflections=true)", "'reflections' of group 'so3_irreps' is fixed by the group"),
    ("so3_irreps(irreps=1x1e)", "use the spherical-harmonic parities"),
    ("so3_irreps(irreps=4x0q)", "'4x0q' is not an e3nn irreps string"),
    ("so3_irreps(radial_basis=box)", "radial_basis 'box' is not one of e3nn's"),
    ("so3(band_limit=3)", "84 coefficients per parity but n_seeds=3 gives 72 samples"),
    ("so3_irreps(filter_lmax)", "options are option=value separated by commas"),
    ("so3_irreps(filter_lmax=3, filter_lmax=2)", "gives option 'filter_lmax' twice"),
])
def test_bad_names_fail_with_one_line(name, expected):
    with pytest.raises(ValueError) as err:
        get_group(name)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_registered_names_cannot_look_like_options():
    spec = groups.GROUPS["octa"]
    import dataclasses

    with pytest.raises(ValueError, match="may not contain"):
        groups.register_group(dataclasses.replace(spec, name="octa(x=1)"))


# ------------------------------------------------------------------------------- config, YAML, CLI, checkpoints
def test_train_config_yaml_and_cli_take_options(tmp_path, capsys):
    from equivox import cli
    from equivox.training import TrainConfig, build_model, load_yaml_config

    cfg = TrainConfig(task="segment", group=NAME, channels=(1, 1), strides=(2,), convs_per_level=1)
    assert TrainConfig.from_dict(cfg.to_dict()).group == NAME
    f = tmp_path / "run.yaml"
    f.write_text(f"train:\n  task: segment\n  group: {NAME}\n  channels: [1, 1]\n  strides: [2]\n")
    from_yaml = TrainConfig.from_dict(load_yaml_config(f))
    assert from_yaml.group == NAME
    model = build_model(from_yaml, 1, 3)
    assert get_group(model.group).spec.fields.filter_lmax == 3 and model.tensor_channels[0] == 18
    args = cli.build_parser().parse_args(["train", "--group", NAME])
    assert cli.train_config_from_args(args).group == NAME
    with pytest.raises(ValueError, match=r"^group 'so3_irreps\(filter_lamx=3\)': unknown option 'filter_lamx'"):
        TrainConfig(group="so3_irreps(filter_lamx=3)")
    assert cli.main(["train", "--group", "so3_irreps(filter_lmax=x)"]) == 2
    assert cli.main(["check-equivariance", "--group", "so3_irreps(filter_lamx=3)"]) == 2
    err = capsys.readouterr().err
    assert "group 'so3_irreps(filter_lmax=x)': option filter_lmax=x of group 'so3_irreps': expected an integer" in err
    assert "--group 'so3_irreps(filter_lamx=3)': unknown option 'filter_lamx'" in err
    assert group_name_error("octo").startswith("group 'octo' is not a group name; did you mean 'octa'?")


def test_checkpoint_rebuilds_the_options(tmp_path):
    from equivox.baselines import build_from_spec
    from equivox.training import load_checkpoint

    torch.manual_seed(5)
    spelled = f"so3_irreps(filter_lmax = 3, irreps = {IRREPS})"
    model = build_from_spec({"cls": "InvariantClassifier", "kwargs": dict(SMALL, out_channels=3, group=spelled)})
    x = torch.randn(1, 1, 8, 8, 8, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        y = model.eval()(x)
    path = tmp_path / "m.ckpt"
    torch.save({"hyper_parameters": {"model_spec": model.equivox_spec},
                "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, path)
    canonical = get_group(spelled).name
    groups._DERIVED.pop(canonical)  # as in a fresh process: the group is rebuilt from the saved string
    groups._INSTANCES.pop(canonical)
    loaded, _ = load_checkpoint(path)
    assert get_group(loaded.group).spec.fields.irreps == IRREPS and get_group(loaded.group).name == canonical
    with torch.no_grad():
        assert torch.allclose(loaded(x), y, atol=1e-6)


def test_a_field_type_finds_the_group_with_its_options():
    from equivox.groups import group_of_field_type

    plain, optioned = get_group("so3_irreps"), get_group(NAME)  # one escnn SO(3) under both
    assert group_of_field_type(optioned.hidden_type(2)) is optioned
    assert group_of_field_type(plain.hidden_type(2)) is plain


def test_a_field_type_on_an_equal_gspace_built_elsewhere_finds_the_registered_name():
    """A gspace no built group owns (an equal one) matches by its escnn group: the registered name wins over one with
    options, whichever of them was built first."""
    from escnn import gspaces
    from escnn import nn as enn

    from equivox.groups import group_of_field_type

    get_group("so3_irreps(filter_lmax=3)")  # built before and after the plain group: same answer
    plain = get_group("so3_irreps")
    get_group(NAME)
    elsewhere = gspaces.rot3dOnR3(maximum_frequency=2)
    assert elsewhere is not plain.gspace
    assert group_of_field_type(enn.FieldType(elsewhere, [plain.hidden_repr] * 2)) is plain


def test_options_keep_a_group_exact_where_its_base_is():
    from equivox.nnunet.rules import choose_group

    name = "so3_irreps(filter_lmax=1)"
    iso_plan = ([(3, 3, 3)] * 3, [(1, 1, 1), (2, 2, 2), (2, 2, 2)])
    assert choose_group(*iso_plan, cube_group=name) == name  # exact on isotropic plans, as so3_irreps is
    thick_plan = ([(1, 3, 3)] * 3, [(1, 1, 1), (1, 2, 2), (1, 2, 2)])
    assert choose_group(*thick_plan, cube_group=name) == "d4_axial_d"
