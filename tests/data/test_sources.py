"""equivox.data.sources: a dataset name resolved for a task, classification arrays from a .npz, registered
segmentation volumes downsampled."""
from __future__ import annotations

import numpy as np
import pytest

from equivox.data import DataError, bundled_volume, classification_raw, dataset_spec, npz_classification
from equivox.data import registered_volumes
from equivox.data.registry import get_dataset


def test_dataset_spec_names_the_task_and_the_registered_datasets(tmp_path):
    assert dataset_spec("lidc", "classify").name == "lidc"
    with pytest.raises(DataError, match="is a classification dataset; use task 'classify'"):
        dataset_spec("lidc", "segment")
    with pytest.raises(DataError, match="nopeset"):
        dataset_spec("nopeset", "classify")
    assert dataset_spec(str(tmp_path / "x.npz"), "classify") is None  # a path: checked when loaded


def test_npz_with_images_and_labels_splits_80_20(tmp_path):
    x, y = np.arange(10 * 8, dtype=np.uint8).reshape(10, 2, 2, 2), np.arange(10) % 2
    np.savez(tmp_path / "d.npz", images=x, labels=y)
    xtr, ytr = npz_classification(tmp_path / "d.npz", "train")
    xva, yva = npz_classification(tmp_path / "d.npz", "val")
    assert len(xtr) == 8 and len(xva) == 2
    firsts = sorted(map(int, xtr[:, 0, 0, 0])) + sorted(map(int, xva[:, 0, 0, 0]))
    assert sorted(firsts) == list(range(0, 80, 8))  # every item in exactly one split
    assert np.array_equal(npz_classification(tmp_path / "d.npz", "test")[0], xva)  # deterministic
    raw = classification_raw(str(tmp_path / "d.npz"), "train")
    assert np.array_equal(raw[0], xtr) and raw[2] is None and raw[3] == {}
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="truncated or not a .npz"):
        npz_classification(tmp_path / "bad.npz", "train")
    with pytest.raises(DataError, match="neither a registered classification dataset"):
        classification_raw(str(tmp_path / "none.txt"), "train")


def test_registered_volumes_downsampled():
    spec = get_dataset("chest_ct", "segmentation")
    full, label_names = registered_volumes(spec, "train", 1)
    half, _ = registered_volumes(spec, "train", 2)
    img, lab = full[0]
    assert half[0][0].shape[1:] == tuple(s // 2 for s in img.shape[1:]) and half[0][1].dtype == lab.dtype
    one = bundled_volume("chest_ct", 2)
    assert one[0].shape == half[0][0].shape and one[2] == dict(label_names)
