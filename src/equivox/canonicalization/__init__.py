"""Canonicalization: exact rotation robustness for any model, at its upright accuracy.

:func:`canonicalize` puts any model behind a small, exactly equivariant canonicalizer (:class:`GroupScorer`) that
picks the pose to run it in; :func:`equivox.training.fit_canonicalizer` fits that canonicalizer on upright data for a frozen,
already trained model. See ``docs/canonicalization.md``.
"""
from .scorer import GroupScorer, scorer_group
from .wrapper import MODES, TASKS, Canonicalized, canonicalize

__all__ = ["Canonicalized", "GroupScorer", "MODES", "TASKS", "canonicalize", "scorer_group"]
