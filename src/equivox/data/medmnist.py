"""MedMNIST-3D ``.npz`` archives (keys ``{split}_images`` / ``{split}_labels``) as arrays and a torch dataset."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Optional, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DataError, require_file

__all__ = ["load_medmnist3d", "MedMNIST3D"]

PathLike = Union[str, Path]


def load_medmnist3d(path: PathLike, split: str = "train") -> Tuple[np.ndarray, np.ndarray]:
    """Read one split of a MedMNIST-3D style ``.npz`` (keys ``{split}_images``, ``{split}_labels``).

    Returns:
        ``images``: ``uint8`` ``(N, D, H, W)`` (28^3 or 64^3 for MedMNIST), ``labels``: ``int64`` ``(N,)``
        (single-label) or ``(N, K)`` (multi-label).

    Raises:
        DataError: missing file, missing keys (lists those present), wrong shapes or mismatched lengths.
    """
    path = require_file(path, "MedMNIST archive")
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            need = [f"{split}_images", f"{split}_labels"]
            missing = [k for k in need if k not in keys]
            if missing:
                raise DataError(f"{path} is not a MedMNIST-3D archive for split {split!r}: missing {missing}; "
                                f"it holds {keys}")
            images, labels = z[need[0]], z[need[1]]
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"cannot read MedMNIST archive {path}: {type(err).__name__}: {err}") from None
    if images.ndim != 4:
        raise DataError(f"{path}: {split}_images must be (N, D, H, W), got shape {images.shape}")
    labels = np.asarray(labels).astype(np.int64)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.shape[0] != images.shape[0]:
        raise DataError(f"{path}: {images.shape[0]} {split} images but {labels.shape[0]} labels")
    return images, labels


class MedMNIST3D(Dataset):
    """A split of a MedMNIST-3D style ``.npz`` as a classification dataset.

    Items are ``{"image": FloatTensor (1, D, H, W) in [0, 1] (uint8 / 255), "label": int}`` (``label`` is an
    ``int64`` tensor ``(K,)`` for multi-label archives), passed through ``transform`` (a callable on the
    dictionary, e.g. a MONAI ``Compose`` of dictionary transforms) when given.

    Attributes: ``images`` (uint8 numpy), ``labels`` (int64 numpy), ``num_classes``.
    """

    def __init__(self, path: PathLike, split: str = "train", transform: Optional[Callable] = None):
        self.path, self.split, self.transform = Path(path), split, transform
        self.images, self.labels = load_medmnist3d(path, split)
        self.num_classes = int(self.labels.max()) + 1 if self.labels.ndim == 1 and len(self.labels) else (
            self.labels.shape[1] if self.labels.ndim == 2 else 0)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Dict[str, object]:
        img = torch.from_numpy(self.images[i].astype(np.float32) / 255.0)[None]
        lab = self.labels[i]
        item = {"image": img, "label": int(lab) if np.ndim(lab) == 0 else torch.from_numpy(np.array(lab))}
        return self.transform(item) if self.transform is not None else item
