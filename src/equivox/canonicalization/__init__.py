"""Canonicalization: exact rotation robustness for any model, at its upright accuracy.

:func:`canonicalize` puts any model behind a small, exactly equivariant canonicalizer (:class:`GroupScorer`) that
picks the pose to run it in; :func:`equivox.training.fit_canonicalizer` fits that canonicalizer on upright data for a frozen,
already trained model. ``scorer="confidence"`` picks the pose by the model's own confidence instead (adaptive
canonicalization: no canonicalizer to fit, one forward pass per element); ``scorer="calibrated"`` reads that output
with a small head fitted on held-out upright items (:func:`fit_upright_head`). See ``docs/canonicalization.md``.
"""
from .scorer import GroupScorer, scorer_group
from .upright import copy_features, fit_upright_head
from .wrapper import MODES, SCORERS, TASKS, Canonicalized, canonicalize, confidence_scores

__all__ = ["Canonicalized", "GroupScorer", "MODES", "SCORERS", "TASKS", "canonicalize", "confidence_scores",
           "scorer_group", "copy_features", "fit_upright_head"]
