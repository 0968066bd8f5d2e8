"""The bundled datasets as ``torch.utils.data.Dataset`` s of dicts: the shape stores one item per grid
(``{"image": FloatTensor (1, D, H, W), "label": int, ...}``), the segmentation samples ``repeats`` copies of their
one volume (``{"image", "label": LongTensor (1, D, H, W), "affine"}``)."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from torch.utils.data import Dataset as _Dataset

from .bundled_shapes import load_furniture_shapes, load_kicad_parts, load_lidc_nodules
from .bundled_volumes import load_brain_atlas_lr_sample, load_brain_atlas_sample, load_chest_ct_sample

__all__ = ["LIDCNoduleDataset", "FurnitureShapesDataset", "KiCadPartsDataset", "ChestCTDataset", "BrainAtlasDataset",
           "BrainAtlasLRDataset"]


def _torch():
    import torch

    return torch


class _ClassificationVoxels(_Dataset):
    def __init__(self, grids: np.ndarray, labels: np.ndarray, extra: dict[str, np.ndarray],
                 class_names, transform: Callable | None):
        self._grids = grids
        self._labels = labels
        self._extra = extra
        self.class_names = list(class_names)
        self.transform = transform

    def __len__(self) -> int:
        return len(self._labels)

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    def class_counts(self) -> dict[str, int]:
        return {c: int((self._labels == i).sum()) for i, c in enumerate(self.class_names)}

    def __getitem__(self, i: int) -> dict[str, Any]:
        torch = _torch()
        item = {"image": torch.from_numpy(self._grids[i].astype(np.float32))[None],
                "label": int(self._labels[i])}
        for k, v in self._extra.items():
            item[k] = v[i].item() if hasattr(v[i], "item") else v[i]
        if self.transform is not None:
            item = self.transform(item)
        return item


class LIDCNoduleDataset(_ClassificationVoxels):
    """Torch dataset over :func:`load_lidc_nodules`.

    Items: ``{"image": FloatTensor (1, 32, 32, 32) in {0, 1}, "label": int (0 benign,
    1 malignant), "patient_id": str, "malignancy": float (median rating)}``.
    ``transform`` (optional) is applied to the item dict (e.g. MONAI dict transforms).
    """

    def __init__(self, split: str | None = "train", transform: Callable | None = None):
        d = load_lidc_nodules(split)
        super().__init__(d["masks"], d["label"],
                         {"patient_id": d["patient_id"], "malignancy": d["malignancy_median"]},
                         d["class_names"], transform)
        self.split = split


class FurnitureShapesDataset(_ClassificationVoxels):
    """Torch dataset over :func:`load_furniture_shapes`.

    Items: ``{"image": FloatTensor (1, 32, 32, 32) in {0, 1}, "label": int,
    "model_id": str}``; ``class_names`` gives the label meaning.
    """

    def __init__(self, split: str | None = "train", transform: Callable | None = None):
        d = load_furniture_shapes(split)
        super().__init__(d["voxels"], d["label"], {"model_id": d["model_id"]},
                         d["class_names"], transform)
        self.split = split


class KiCadPartsDataset(_ClassificationVoxels):
    """Torch dataset over :func:`load_kicad_parts`.

    Items: ``{"image": FloatTensor (1, 32, 32, 32) in {0, 1}, "label": int, "model_path": str}``;
    ``class_names`` gives the label meaning.
    """

    def __init__(self, split: str | None = "train", transform: Callable | None = None):
        d = load_kicad_parts(split)
        super().__init__(d["voxels"], d["label"], {"model_path": d["model_path"]}, d["class_names"], transform)
        self.split = split


class _SegmentationSample(_Dataset):
    def __init__(self, sample: dict, image: np.ndarray, transform: Callable | None, repeats: int):
        if repeats < 1:
            raise ValueError("repeats must be >= 1")
        self._image = image.astype(np.float32)
        self._label = sample["label"].astype(np.int64)
        self.affine = sample["affine"]
        self.spacing = sample["spacing"]
        self.label_names = sample["label_names"]
        self.transform = transform
        self.repeats = repeats

    def __len__(self) -> int:
        return self.repeats

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < self.repeats:
            raise IndexError(i)
        torch = _torch()
        item = {"image": torch.from_numpy(self._image.copy())[None],
                "label": torch.from_numpy(self._label.copy())[None],
                "affine": torch.as_tensor(self.affine, dtype=torch.float64)}
        if self.transform is not None:
            item = self.transform(item)
        return item


class ChestCTDataset(_SegmentationSample):
    """The chest CT sample as a torch dataset of ``repeats`` identical items (use a
    random-crop ``transform`` such as MONAI ``RandSpatialCropd`` to sample patches).

    Items: ``{"image": FloatTensor (1, 120, 120, 110), "label": LongTensor (1, 120,
    120, 110) with values 0-5 (see ``label_names``), "affine": (4, 4)}``.
    With ``normalize=True`` (default) HU are clipped to ``hu_window`` and scaled to [0, 1].
    """

    def __init__(self, normalize: bool = True, hu_window=(-1000.0, 1000.0),
                 transform: Callable | None = None, repeats: int = 1):
        s = load_chest_ct_sample()
        img = s["image"].astype(np.float32)
        if normalize:
            lo, hi = hu_window
            img = (np.clip(img, lo, hi) - lo) / (hi - lo)
        super().__init__(s, img, transform, repeats)


class BrainAtlasDataset(_SegmentationSample):
    """The Colin27/AAL sample as a torch dataset of ``repeats`` identical items.

    Items: ``{"image": FloatTensor (1, 90, 108, 90) scaled to [0, 1] when
    ``normalize`` (intensity / 255), "label": LongTensor (1, 90, 108, 90) values 0-7,
    "affine": (4, 4)}``.
    """

    def __init__(self, normalize: bool = True, transform: Callable | None = None, repeats: int = 1):
        s = load_brain_atlas_sample()
        img = s["image"].astype(np.float32)
        if normalize:
            img = img / 255.0
        super().__init__(s, img, transform, repeats)


class BrainAtlasLRDataset(_SegmentationSample):
    """:func:`load_brain_atlas_lr_sample` as a torch dataset of ``repeats`` identical items.

    Items: ``{"image": FloatTensor (1, 90, 108, 90) (intensity / 255 when ``normalize``), "label":
    LongTensor (1, 90, 108, 90) values 0-15, "affine": (4, 4)}``; ``class_swaps`` lists the left/right pairs.
    """

    def __init__(self, normalize: bool = True, transform: Callable | None = None, repeats: int = 1):
        s = load_brain_atlas_lr_sample()
        img = s["image"].astype(np.float32)
        if normalize:
            img = img / 255.0
        super().__init__(s, img, transform, repeats)
        self.class_swaps = s["class_swaps"]
