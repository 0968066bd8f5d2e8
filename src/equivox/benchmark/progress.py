"""Progress lines and quiet Lightning loggers for the benchmark harness, the demo and the CLI."""
from __future__ import annotations

import logging

__all__ = ["say", "quiet_lightning"]

#: the loggers that print per-run "GPU available" / model-summary chatter
LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning.fabric")


def say(msg: str = "", verbose: bool = True) -> None:
    """Print one progress line now (flushed, so ``nohup`` logs follow the run); nothing when ``verbose`` is False."""
    if verbose:
        print(msg, flush=True)


def quiet_lightning() -> None:
    """Raise Lightning's loggers to WARNING: one training run per competitor and seed would otherwise print the
    same accelerator banner every time."""
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
