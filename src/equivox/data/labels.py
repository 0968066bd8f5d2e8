"""Labels and class names: the checks classification labels get, and the left/right class pairs a mirror image
exchanges (derived from the class names: a property of the data, which label-permuting networks and the rotation
tests of groups with reflections need)."""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

from .errors import DataError, check_finite

__all__ = ["check_labels", "left_right_pairs"]


def check_labels(y: np.ndarray, where: str) -> np.ndarray:
    """Classification labels ``(N,)`` (or any shape, flattened) as int64 class indices.

    Float labels must be finite whole numbers; booleans count as 0 / 1.

    Raises:
        DataError: naming ``where``: NaN/inf, fractional or negative labels, or a non-numeric dtype.
    """
    y = np.asarray(y)
    if y.dtype.kind == "f":
        check_finite(y, f"{where} labels")
        frac = y[y != np.round(y)]
        if frac.size:
            raise DataError(f"{where}: labels must be integer class indices, found {sorted(set(frac.tolist()))[:10]}")
    elif y.dtype.kind not in "uib":
        raise DataError(f"{where}: labels must be integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64).reshape(-1)
    if len(y) and y.min() < 0:
        raise DataError(f"{where}: labels must be class indices >= 0, found {int(y.min())}")
    return y


def left_right_pairs(class_names: Sequence[str]) -> Tuple[Tuple[int, int], ...]:
    """Class pairs ``(left, right)`` whose names differ only by a ``_L`` / ``_R`` suffix or a ``left`` / ``right``
    word (case-insensitive), e.g. ``frontal_L`` / ``frontal_R``: the classes a mirror image swaps. Indices are
    positions in ``class_names`` (background first); sorted; a name without its other side pairs with nothing."""
    def key(name: str):
        n = str(name)
        for side, suffixes in (("L", ("_L", "_l")), ("R", ("_R", "_r"))):
            if n.endswith(suffixes):
                return n[:-2].lower(), side
        words = n.lower().replace("_", " ").split()
        for side, word in (("L", "left"), ("R", "right")):
            if word in words:
                return " ".join(w for w in words if w != word), side
        return None

    sides: Dict[str, Dict[str, int]] = {}
    for i, n in enumerate(class_names):
        k = key(n)
        if k is not None:
            sides.setdefault(k[0], {})[k[1]] = i
    return tuple(sorted((d["L"], d["R"]) for d in sides.values() if set(d) == {"L", "R"}))
