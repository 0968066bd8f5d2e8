"""Intensity rules: how stored values are brought to what a model is trained on.

Classification arrays: one divisor, decided on the training split for every split (:func:`intensity_scale`).
NIfTI segmentation images: a normalisation (``"ct"``, ``"mri"`` or none), configured or chosen from the training
images' value range (:func:`resolve_intensity`); the choice is stored with the checkpoint so evaluation and
prediction prepare images alike.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = ["intensity_scale", "resolve_intensity"]


def intensity_scale(x: np.ndarray) -> float:
    """The divisor that maps stored classification images to ``[0, 1]``: 255 for integer data (e.g. ``uint8``
    MedMNIST intensities) with values above 1 and at most 255, else 1 (float data such as HU or z-scores, binary
    masks and booleans are kept as stored). Decided once, on the training split, for every split."""
    x = np.asarray(x)
    if x.dtype.kind in "ui" and x.size and 1 < int(x.max()) <= 255 and int(x.min()) >= 0:
        return 255.0
    return 1.0


def resolve_intensity(intensity: Optional[str], train_items: Sequence[Mapping[str, str]]
                      ) -> Tuple[Optional[str], str]:
    """``(rule, why)``: ``intensity`` as configured (``"ct"``, ``"mri"``, ``None``: ``"as configured"``), or for
    ``"auto"`` the rule chosen from the training images (``train_items``: ``{"image": path}`` dicts) by
    :func:`equivox.data.choose_intensity` (minimum below -500 and maximum above 500: ``"ct"``, else ``"mri"``),
    with the reason."""
    from .medical import choose_intensity

    if intensity != "auto":
        return intensity, "as configured"
    return choose_intensity([it["image"] for it in train_items])
