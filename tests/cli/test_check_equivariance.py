"""equivox.cli.check_equivariance: options, old spellings, user errors."""
from __future__ import annotations

from equivox import cli


def test_options_and_old_spellings(capsys):
    args = cli.build_parser().parse_args(["check-equivariance", "--model", "unet", "--channels", "1,1"])
    assert (args.task, args.channels, args.model) == ("segment", [1, 1], None)
    assert "--model is deprecated" in capsys.readouterr().err


def test_user_errors(tmp_path, capsys):
    assert cli.main(["check-equivariance", "--group", "octo"]) == 2
    assert "did you mean 'octa'?" in capsys.readouterr().err
    assert cli.main(["check-equivariance", "/no/such.ckpt"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert cli.main(["check-equivariance", "--group", "trivial", "--channels", "1,1", "--size", "7", "--out",
                     str(tmp_path)]) == 2
    assert "--size 7 must be a positive multiple of the model's size_multiple (2)" in capsys.readouterr().err


def test_check_equivariance_help_is_true(capsys):
    assert cli.main(["check-equivariance", "--help"]) == 0
    assert "15-60" not in capsys.readouterr().out
    import inspect

    assert "15-60" not in inspect.getsource(cli.check_equivariance)
