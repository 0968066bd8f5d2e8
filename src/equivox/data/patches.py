"""In-memory training datasets: classification grids, random segmentation patches, fixed validation crops; the
rotation augmentation they apply, and stratified subsampling.

Items are dicts: classification ``{"image": (C, D, H, W) float32, "label": int}``; segmentation ``{"image":
(C, p, p, p) float32, "label": (1, p, p, p) int64}``.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from .grids import center_crop

__all__ = ["ArrayClassificationDataset", "VolumePatches", "VolumeCrops", "augmentation_transform",
           "subsample_indices"]


def subsample_indices(labels: np.ndarray, n: Optional[int], seed: int = 0) -> np.ndarray:
    """``n`` indices drawn without replacement, stratified by label (class proportions kept, the largest
    remainders rounded up), sorted. ``n=None`` or ``n >= len(labels)``: all indices."""
    labels = np.asarray(labels)
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    out = []
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.floor(counts / counts.sum() * n).astype(int)
    quota[np.argsort(-(counts / counts.sum() * n - quota))[: n - quota.sum()]] += 1
    for c, q in zip(classes, quota):
        idx = np.flatnonzero(labels == c)
        out.append(rng.choice(idx, size=min(q, len(idx)), replace=False))
    return np.sort(np.concatenate(out))


class ArrayClassificationDataset(Dataset):
    """In-memory classification dataset over tensors.

    Args:
        images: ``(N, C, D, H, W)`` float tensor. labels: ``(N,)`` integer array.
        transform: optional callable on the item dict (e.g. :func:`augmentation_transform`).
        class_names: label names (default ``"0", "1", ...``).

    Items: ``{"image": (C, D, H, W) float32, "label": int}``.
    """

    def __init__(self, images, labels, transform: Optional[Callable] = None, class_names=None):
        self.images = torch.as_tensor(images, dtype=torch.float32)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if self.images.dim() != 5 or len(self.images) != len(self.labels):
            raise ValueError(f"images must be (N, C, D, H, W) with N == len(labels); got {tuple(self.images.shape)} "
                             f"and {len(self.labels)} labels")
        self.transform = transform
        n = int(self.labels.max()) + 1 if len(self.labels) else 0
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(n)]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        item = {"image": self.images[i], "label": int(self.labels[i])}
        return self.transform(item) if self.transform is not None else item

    def tensors(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(images (N, C, D, H, W), labels (N,))`` without transforms (for evaluation)."""
        return self.images, self.labels


def augmentation_transform(kind: str, keys: Sequence[str], group: str = "octa", seed: int = 0) -> Optional[Callable]:
    """Random-rotation augmentation on item dicts: ``"grid"`` (exact random element of ``group``, or of the 24
    cube rotations for continuous groups), ``"so3"`` (Haar-random resampled rotation; labels nearest), ``"none"``
    (``None``). All ``keys`` rotate together. Seeded with ``seed`` (per worker process: reseed via the DataLoader)."""
    from .rotations import RandGridRotatedd, RandSO3Rotatedd

    if kind == "none":
        return None
    if kind == "grid":
        from ..groups import get_group

        # a continuous group has no finite set of grid rotations to draw from: the cube's are exact on any grid
        g = group if get_group(group).order is not None else "octa"
        t = RandGridRotatedd(list(keys), group=g)
    elif kind == "so3":
        modes = ("bilinear",) + ("nearest",) * (len(keys) - 1)
        t = RandSO3Rotatedd(list(keys), mode=modes)
    else:
        raise ValueError(f"augment must be 'none', 'grid' or 'so3', got {kind!r}")
    t.set_random_state(seed)
    return t


class VolumePatches(Dataset):
    """Random patches (``patch`` cube) from in-memory volumes, image and label cropped together.

    Args:
        volumes: list of ``(image (C, D, H, W) float, label (1, D, H, W) long)``.
        patch: patch side. length: items per epoch. pos_fraction: share of patches centred on a foreground voxel
            (MONAI ``RandCropByPosNegLabeld`` semantics, implemented via ``monai.transforms``).
        transform: optional callable on the item dict (e.g. rotation augmentation). seed: base seed; item ``i``
            of epoch ``e`` is drawn with seed ``seed + i`` mixed with ``e`` (call :meth:`set_epoch`).

    Item ``i`` comes from volume ``i % len(volumes)``; when an epoch is shorter than the list of volumes (many
    small volumes, e.g. one part each), from volume ``i`` of a permutation drawn per epoch instead, so every
    volume is seen over the epochs and an epoch is not the first volumes of a sorted list. Volumes smaller than
    the patch are zero-padded first.
    """

    def __init__(self, volumes, patch: int, length: int, pos_fraction: float = 0.5,
                 transform: Optional[Callable] = None, seed: int = 0):
        from monai.transforms import RandCropByPosNegLabeld, SpatialPadd

        self.volumes = volumes
        self.patch, self.length, self.transform, self.seed = patch, length, transform, seed
        self.epoch = 0
        self._order = self._permutation()
        self.pad = SpatialPadd(["image", "label"], spatial_size=(patch,) * 3)
        self.crop = RandCropByPosNegLabeld(["image", "label"], "label", spatial_size=(patch,) * 3,
                                           pos=pos_fraction, neg=1 - pos_fraction, num_samples=1,
                                           image_key="image", image_threshold=-np.inf)

    def _permutation(self) -> Optional[np.ndarray]:
        if self.length >= len(self.volumes):
            return None
        return np.random.default_rng((self.seed, self.epoch)).permutation(len(self.volumes))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self._order = self._permutation()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> Dict[str, Any]:
        img, lab = self.volumes[i % len(self.volumes) if self._order is None else int(self._order[i])]
        # a seed per (item, epoch): the same patch whichever worker draws it, another one every epoch
        self.crop.set_random_state(self.seed * 1_000_003 + self.epoch * 10_007 + i)
        d = self.pad({"image": img, "label": lab})
        d = self.crop(d)[0]
        item = {"image": torch.as_tensor(d["image"]).float().contiguous(),
                "label": torch.as_tensor(d["label"]).long().contiguous()}
        return self.transform(item) if self.transform is not None else item


class VolumeCrops(Dataset):
    """Fixed centre crops (``size`` cube, or whole volumes when ``size`` is None) of in-memory volumes
    ``[(image (C, D, H, W), label (1, D, H, W))]``: validation items."""

    def __init__(self, volumes, size: Optional[int]):
        self.items = []
        for img, lab in volumes:
            if size is not None:
                img, lab = center_crop(img, (size,) * 3), center_crop(lab, (size,) * 3)
            self.items.append({"image": img.float().contiguous(), "label": lab.long().contiguous()})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        return self.items[i]
