"""Old name of :mod:`equivox.benchmark.irreps_competitors` (the irreps rows of the benchmark harness), kept so that
``--import equivox.irreps.competitors`` and ``from equivox.irreps import competitors`` keep working.

A harness module, not part of the irreps field kind: nothing in :mod:`equivox.irreps` imports it (its layer in
tests/test_package_structure.py is the harness's).
"""
from __future__ import annotations

from ..benchmark.irreps_competitors import (IRREPS_CLASSIFIER, MELBA_FIELD, MELBA_GROUP, MELBA_UNET, melba_group,
                                            melba_unet, register_irreps_competitors)

__all__ = ["MELBA_FIELD", "MELBA_GROUP", "IRREPS_CLASSIFIER", "MELBA_UNET", "melba_group", "melba_unet",
           "register_irreps_competitors"]
