"""equivox.cli._parsing: exact names, typo suggestions, on/off flags and their older true/false form, value types."""
from __future__ import annotations

import argparse

import pytest

from equivox import cli
from equivox.cli import _parsing


def _parse(argv):
    return cli.build_parser().parse_args(argv)


@pytest.mark.parametrize("argv, value", [
    (["--canonical-pose"], True), (["--no-canonical-pose"], False), (["--canonical-pose", "false"], False),
    (["--canonical-pose=off"], False), (["--canonical-pose", "yes"], True), ([], None),
    (["--no-canonical-pose", "--canonical-pose"], True),
])
def test_on_off_flags(argv, value, capsys):
    assert _parse(["train", *argv]).canonical_pose is value
    assert capsys.readouterr().err == ""


def test_a_flag_before_a_positional_leaves_it_alone():
    """canonicalize takes the model positionally: ``--overwrite model.ckpt`` is the flag, then the model."""
    args = _parse(["canonicalize", "--overwrite", "m.ckpt", "--canonical-pose", "true"])
    assert (args.overwrite, args.model, args.canonical_pose) == (True, "m.ckpt", True)
    args = _parse(["canonicalize", "--strict", "m.ckpt"])
    assert (args.strict, args.model) == (True, "m.ckpt")


@pytest.mark.parametrize("argv, expected", [
    (["train", "--canonical-pose", "maybe"], "expected true or false, got 'maybe'"),
    (["train", "--overwrite=perhaps"], "expected true or false"),
    (["train", "--epoch", "3"], "unknown option --epoch; did you mean --epochs?"),
    (["train", "--no-plot"], "did you mean --no-plots?"),
    (["train", "--devices", "two"], "devices must be an integer or 'auto'"),
    (["train", "--spacing", "1,0,1"], "expected 1 or 3 positive comma-separated numbers"),
    (["train", "--class-names", "a,,b"], "expected comma-separated non-empty names"),
    (["train", "--epochs", "3", "--epo", "4"], "unknown option --epo"),
])
def test_mistakes_are_one_line_exit_2(argv, expected, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_value_types():
    assert _parsing.parse_ints("2, 4") == [2, 4] and _parsing.parse_floats3("1.5") == (1.5, 1.5, 1.5)
    assert _parsing.parse_devices("auto") == "auto" and _parsing.parse_devices("2") == 2
    assert _parsing.parse_names("a,b") == ["a", "b"]
    with pytest.raises(argparse.ArgumentTypeError):
        _parsing.parse_bool("maybe")
    assert [_parsing.shown(v) for v in ((2, 4), True, False, None, 0.5)] == ["2,4", "on", "off", "none", "0.5"]


def test_all_parsers_lists_every_command():
    words = [" ".join(w) for w, _ in cli.all_parsers(cli.build_parser())]
    for name in ("train", "evaluate", "predict", "demo", "canonicalize", "check-equivariance", "data list",
                 "data info", "data build", "nnunet plans"):
        assert name in words
