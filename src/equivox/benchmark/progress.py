"""Progress lines and quiet Lightning loggers for the benchmark harness: defined in :mod:`equivox.console` (shared
with the CLI and the demo), re-exported here."""
from __future__ import annotations

from ..console import LIGHTNING_LOGGERS, quiet_lightning, say

__all__ = ["say", "quiet_lightning", "LIGHTNING_LOGGERS"]
