"""Rotation-augmented evaluation: score a model on a set of rotations of the data.

* :mod:`.rotations`: :class:`Rotation`, :func:`rotation_set` (identity, grid-exact group elements, random SO(3)).
* :mod:`.classification` / :mod:`.segmentation`: :func:`evaluate_classification`, :func:`evaluate_segmentation`
  -> :class:`RotationReport` (per-rotation scores, summary, JSON/CSV).
* :mod:`.report`: :class:`RotationReport`, :func:`compare_reports`.
* :mod:`.plots`: :func:`plot_rotation_scores`, :func:`plot_segmentation_slices`, :func:`plot_equivariance_errors`.
* :mod:`.tta`: :class:`GroupTTA` (average any model over grid elements: invariant/equivariant baseline).

Works with any ``nn.Module`` taking plain ``(B, C, D, H, W)`` tensors (equivox, MONAI, torch).
"""
from .classification import evaluate_classification
from .plots import plot_equivariance_errors, plot_rotation_scores, plot_segmentation_slices
from .report import RotationReport, compare_reports
from .rotations import Rotation, rotation_set
from .segmentation import evaluate_segmentation, pad_to_multiple, predict_rotated
from .tta import GroupTTA

__all__ = [
    "Rotation",
    "rotation_set",
    "evaluate_classification",
    "evaluate_segmentation",
    "predict_rotated",
    "pad_to_multiple",
    "RotationReport",
    "compare_reports",
    "plot_rotation_scores",
    "plot_segmentation_slices",
    "plot_equivariance_errors",
    "GroupTTA",
]
