"""What the commands share: the user-error types, progress lines, loading a trained model."""
from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

from ..config.errors import UserError
from ..console import say

__all__ = ["CLIError", "UserError", "say", "quiet_libraries", "user_input", "load_trained", "MODEL_HELP"]

MODEL_HELP = ("trained model: a checkpoint from 'equivox train' or 'equivox canonicalize' (its .ckpt files or "
              "canonicalized.pt; the demo's and benchmark's run checkpoints too)")


class CLIError(UserError):
    """A user error found by a command (options that do not go together, a folder that already holds a run):
    printed as one line, exit code 2."""


@contextlib.contextmanager
def user_input():
    """A library call that reads what the user gave (a model file, a plans file, constructor arguments) and reports
    bad input as a plain ``ValueError``: inside this block such a ``ValueError`` is a user error (:class:`CLIError`,
    one line, exit code 2). Outside, a plain ``ValueError`` is an internal error and keeps its traceback."""
    try:
        yield
    except UserError:
        raise
    except ValueError as err:
        raise CLIError(str(err)) from err


def quiet_libraries() -> None:
    """Hide Lightning banners and third-party deprecation chatter (progress bars and results stay)."""
    from ..console import quiet_lightning

    quiet_lightning()
    logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)  # a DICOM plugin notice
    for mod in ("pytorch_lightning", "lightning_fabric", "torchmetrics", "monai", "escnn", "torch"):
        warnings.filterwarnings("ignore", module=mod)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def load_trained(path, need_settings: bool = True):
    """``(model, hparams)`` from anything equivox writes: a checkpoint (``.ckpt``) of ``train``, ``canonicalize``,
    the demo or the benchmark, or ``canonicalized.pt``; with ``need_settings=False`` also any model
    :func:`equivox.training.load_model` reads (hparams ``None``)."""
    from ..training import load_model

    if not Path(path).exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    with user_input():
        model, hp = load_model(path)
    if hp is None and need_settings:
        raise CLIError(f"{path} holds a model without equivox training settings (task, data, classes); give a "
                       "checkpoint from 'equivox train' or 'equivox canonicalize' (its .ckpt files or "
                       "canonicalized.pt)")
    return model, hp
