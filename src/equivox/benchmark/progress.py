"""Progress lines and quiet Lightning loggers for the benchmark harness, the demo and the CLI."""
from __future__ import annotations

import logging
import warnings

__all__ = ["say", "quiet_lightning"]

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
