"""equivox.cli._common: which errors are the user's (``user_input`` turns a library's ValueError about what the user
gave into a one-line ``CLIError``), and loading a trained model (``load_trained``)."""
from __future__ import annotations

import pytest

from equivox import cli
from equivox.cli import _common
from equivox.config import ConfigError, UserError
from equivox.data import DataError


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


def test_load_trained_needs_a_model_with_its_training_settings(tmp_path):
    import torch
    from torch import nn

    with pytest.raises(FileNotFoundError, match="checkpoint not found: /no/such.ckpt"):
        _common.load_trained("/no/such.ckpt")
    plain = tmp_path / "plain.pt"
    torch.save(nn.Conv3d(1, 2, 3), plain)
    with pytest.raises(cli.CLIError, match="holds a model without equivox training settings"):
        _common.load_trained(plain)
    model, hp = _common.load_trained(plain, need_settings=False)  # a model is enough here
    assert isinstance(model, nn.Conv3d) and hp is None
    bad = tmp_path / "bad.pt"
    bad.write_text("not a model")
    with pytest.raises(cli.CLIError, match=f"cannot read model file {bad}"):  # a user error, not a traceback
        _common.load_trained(bad)
