"""Console output shared by the ``equivox`` command, the demo and the benchmark harness: progress lines, quiet
Lightning loggers, one-line warnings. Imports nothing heavy (Lightning only inside :func:`quiet_lightning`)."""
from __future__ import annotations

import logging
import warnings

__all__ = ["say", "quiet_lightning", "one_line_warning", "LIGHTNING_LOGGERS"]

#: the loggers that print per-run "GPU available" / model-summary chatter
LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric")


def say(msg: str = "", verbose: bool = True) -> None:
    """Print one progress line now (flushed, so ``nohup`` logs follow the run); nothing when ``verbose`` is False."""
    if verbose:
        print(msg, flush=True)


def quiet_lightning() -> None:
    """Raise Lightning's loggers to WARNING: one training run per competitor and seed would otherwise print the
    same accelerator banner every time."""
    import pytorch_lightning  # noqa: F401  (sets its loggers to INFO on import: lower them afterwards)

    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # Lightning's own deprecation, once per fit


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A ``warnings.formatwarning``: ``equivox: <Category>: <message>`` on one line (no source line)."""
    return f"equivox: {category.__name__}: {' '.join(str(message).split())}\n"
