"""equivox.cli.main: a user error is one line with exit code 2, an internal error keeps its traceback; the
``equivox`` console script and ``python -m equivox`` reach the same ``main``."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from equivox import cli
from equivox.cli import _common
from equivox.config import ConfigError, UserError
from equivox.data import DataError

ROOT = Path(__file__).resolve().parents[2]


def _failing(monkeypatch, exc):
    """Make ``equivox data list`` raise ``exc``."""
    def run(args):
        raise exc

    monkeypatch.setitem(cli._RUN, "data", run)


@pytest.mark.parametrize("exc", [ConfigError("epochs must be a positive integer, got 0"), cli.CLIError("bad option"),
                                 DataError("image file /x.nii.gz is truncated"),
                                 FileNotFoundError("checkpoint not found: /x.ckpt"), NotADirectoryError("/x")])
def test_a_user_error_is_one_line_exit_2(exc, monkeypatch, capsys):
    _failing(monkeypatch, exc)
    assert cli.main(["data", "list"]) == 2
    err = capsys.readouterr().err
    assert err == f"equivox: error: {exc}\n"
    with pytest.raises(type(exc)):  # --debug: the traceback instead
        cli.main(["--debug", "data", "list"])


@pytest.mark.parametrize("exc", [ValueError("a bug's ValueError"), KeyError("x"), TypeError("bug"),
                                 RuntimeError("bug"), AttributeError("bug")])
def test_an_internal_error_keeps_its_traceback(exc, monkeypatch, capsys):
    """A plain ValueError is not a user error any more: a bug in the library or the CLI shows its traceback."""
    _failing(monkeypatch, exc)
    with pytest.raises(type(exc)):
        cli.main(["data", "list"])
    assert "equivox: error" not in capsys.readouterr().err


def test_user_input_marks_a_library_valueerror_as_a_user_error():
    """Where a library call checks what the user gave and reports it as a plain ValueError (a model file, an nnU-Net
    plans file, constructor arguments), the command says so explicitly."""
    with pytest.raises(cli.CLIError, match="cannot read model file"):
        with _common.user_input():
            raise ValueError("cannot read model file x.pt")
    with pytest.raises(ConfigError):  # a user error passes through unchanged
        with _common.user_input():
            raise ConfigError("x")
    with pytest.raises(RuntimeError):
        with _common.user_input():
            raise RuntimeError("a bug")
    assert issubclass(cli.CLIError, UserError) and issubclass(ConfigError, UserError)
    assert issubclass(ConfigError, ValueError) and not issubclass(cli.CLIError, ValueError)
    assert set(cli.user_errors()) == {UserError, DataError, FileNotFoundError, NotADirectoryError}


def test_interrupt_is_exit_130(monkeypatch, capsys):
    _failing(monkeypatch, KeyboardInterrupt())
    assert cli.main(["data", "list"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_python_m_equivox_user_error_one_line_and_internal_error_traceback(tmp_path):
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-m", "equivox", "train", "--epochs", "0"], capture_output=True, text=True,
                         env=env, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert res.stderr == "equivox: error: epochs must be a positive integer, got 0\n"
    code = ("import sys\nfrom equivox import cli\ndef run(args):\n    raise ValueError('internal')\n"
            "cli._RUN['data'] = run\nsys.exit(cli.main(['data', 'list']))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 1 and "Traceback" in res.stderr and "ValueError: internal" in res.stderr


def test_the_console_script_entry_point_is_main():
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["equivox"] == "equivox.cli:main"
    assert "from .cli import main" in (ROOT / "src" / "equivox" / "__main__.py").read_text()


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in cli.COMMANDS:
        assert command.NAME in out
    assert [m.NAME for m in cli.COMMANDS] == ["train", "evaluate", "predict", "demo", "canonicalize",
                                               "check-equivariance", "data", "nnunet"]
