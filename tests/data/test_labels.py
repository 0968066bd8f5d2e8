"""equivox.data.labels: classification label checks and the left/right class pairs of class names."""
from __future__ import annotations

import numpy as np
import pytest

from equivox.data import DataError, check_labels, left_right_pairs


def test_left_right_pairs_from_names():
    names = ["background", "frontal_L", "frontal_R", "Left Kidney", "right kidney", "liver", "lung_l"]
    assert left_right_pairs(names) == ((1, 2), (3, 4))  # lung_l has no right side: no pair
    assert left_right_pairs(["0", "1"]) == ()


def test_check_labels():
    assert check_labels(np.array([[1.0], [2.0]]), "d").tolist() == [1, 2]
    assert check_labels(np.array([True, False]), "d").dtype == np.int64
    with pytest.raises(DataError, match="d: labels must be class indices >= 0, found -1"):
        check_labels(np.array([0, -1]), "d")
    with pytest.raises(DataError, match="got dtype <U1"):
        check_labels(np.array(["a"]), "d")
    with pytest.raises(DataError, match="d labels"):
        check_labels(np.array([0.0, np.inf]), "d")
