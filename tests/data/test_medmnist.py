"""equivox.data.medmnist: MedMNIST-3D npz files load per split (images, int64 labels) and as a dataset of
(1, 28, 28, 28) float images in [0, 1]; missing arrays and count mismatches are refused."""
import numpy as np
import pytest
import torch

from equivox.data import DataError, MedMNIST3D, load_medmnist3d


def test_medmnist_npz(tmp_path):
    rng = np.random.default_rng(2)
    arrays = {}
    for split, n in (("train", 5), ("val", 2), ("test", 3)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 3, (n, 1))
    np.savez(tmp_path / "organmnist3d.npz", **arrays)
    imgs, labels = load_medmnist3d(tmp_path / "organmnist3d.npz", "val")
    assert imgs.shape == (2, 28, 28, 28) and labels.shape == (2,) and labels.dtype == np.int64
    ds = MedMNIST3D(tmp_path / "organmnist3d.npz", "test")
    item = ds[1]
    assert len(ds) == 3 and item["image"].shape == (1, 28, 28, 28) and item["image"].dtype == torch.float32
    np.testing.assert_allclose(item["image"][0].numpy(), arrays["test_images"][1] / 255.0, atol=1e-7)
    assert item["label"] == int(arrays["test_labels"][1, 0])
    np.savez(tmp_path / "partial.npz", train_images=arrays["train_images"])
    with pytest.raises(DataError, match=r"missing \['train_labels'\]"):
        load_medmnist3d(tmp_path / "partial.npz", "train")
    np.savez(tmp_path / "short.npz", train_images=arrays["train_images"], train_labels=arrays["train_labels"][:2])
    with pytest.raises(DataError, match="5 train images but 2 labels"):
        load_medmnist3d(tmp_path / "short.npz")
