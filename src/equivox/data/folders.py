"""Segmentation data in files: an image/label NIfTI folder pair or a Decathlon folder, found, checked in full before
any training work, split into training and validation items, and the validation pipeline they are read through.

Items are ``{"image": path, "label": path}`` dicts (absolute paths); images are 3D (an optional 4th axis holds the
channels), labels 3D class maps of the same spatial shape and affine.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import DataError
from .registry import dataset_names

__all__ = ["segmentation_files", "preflight_segmentation_files", "split_items", "segmentation_eval_transforms"]


def segmentation_files(image_dir: Optional[str] = None, label_dir: Optional[str] = None, folder: Optional[str] = None,
                       num_classes: Optional[int] = None, class_names: Optional[Sequence[str]] = None
                       ) -> Tuple[List[Dict[str, str]], int, List[str]]:
    """``(items, num_classes, class names)`` of an image/label folder pair (``image_dir`` + ``label_dir``;
    ``num_classes`` required, counting the background; ``class_names`` default ``"0", "1", ...``) or of a Decathlon
    ``folder`` (with ``dataset.json``; its labels name the classes, ``num_classes`` default their number).

    Every image header is read first (an image whose channel count differs from the others' raises, naming it),
    then every pair is checked in full (:func:`preflight_segmentation_files`).

    Raises:
        DataError: one line naming the folder or file and the problem.
    """
    from .medical import check_same_channels, decathlon_items, decathlon_labels, folder_pair_items, scan_images

    if image_dir is not None or label_dir is not None:
        if image_dir is None or label_dir is None:
            raise DataError("an image/label folder pair needs both image_dir and label_dir")
        items = folder_pair_items(image_dir, label_dir)
        if num_classes is None:
            raise DataError("num_classes is required for an image/label folder pair (count the background)")
        k, names = num_classes, list(class_names) if class_names else [str(i) for i in range(num_classes)]
        if len(names) != k:
            raise DataError(f"class_names has {len(names)} name(s) ({', '.join(names)}) but num_classes is {k} "
                            "(background included)")
    else:
        root = Path(str(folder))
        if folder is None or not root.is_dir():
            raise DataError(f"dataset {folder!r} is neither a registered segmentation dataset "
                            f"({', '.join(dataset_names('segmentation'))}) nor a Decathlon folder (with dataset.json)")
        items = decathlon_items(root)
        labels = decathlon_labels(root)
        k = num_classes or len(labels)
        names = [labels.get(i, str(i)) for i in range(k)]
    check_same_channels(scan_images([it["image"] for it in items]))
    preflight_segmentation_files(items, k)
    return items, k, names


#: image/label pairs that passed :func:`preflight_segmentation_files` in this process, keyed by their paths, sizes
#: and modification times (a run checks its files once, not again in each step that lists them)
_CHECKED_PAIRS: set = set()


def _pair_key(item: Dict[str, str], num_classes: Optional[int]):
    try:
        stats = [os.stat(item[k]) for k in ("image", "label")]
    except OSError:
        return None
    return (item["image"], item["label"], num_classes) + tuple((s.st_size, s.st_mtime_ns) for s in stats)


def preflight_segmentation_files(items: Sequence[Dict[str, str]], num_classes: Optional[int]) -> None:
    """Check every image/label pair of ``items`` before any training work starts (nothing is written before):
    each file read in full (a truncated or corrupt file fails here), 3D (an image may add channels on the 4th
    axis), no NaN/inf values, equal spatial shapes, matching affines, label values in ``range(num_classes)``
    (:func:`equivox.data.validate_pair`; other formats than NIfTI: :func:`equivox.data.load_monai_checked`). A pair
    already checked in this process, unchanged on disk, is not read again.

    Raises:
        DataError: the first problem, one line naming the file(s) and the problem.
    """
    from .medical import is_nifti, load_monai_checked, validate_pair

    for item in items:
        key = _pair_key(item, num_classes)
        if key is not None and key in _CHECKED_PAIRS:
            continue
        if is_nifti(item["image"]) and is_nifti(item["label"]):
            validate_pair(item["image"], item["label"], num_classes)
        else:
            load_monai_checked(item, num_classes)
        if key is not None:
            _CHECKED_PAIRS.add(key)


def split_items(items: Sequence[Dict[str, str]], seed: int, max_train: Optional[int] = None,
                max_val: Optional[int] = None) -> Tuple[List[Dict[str, str]], List[Dict[str, str]]]:
    """``(train items, validation items)``: ``round(20 %)`` of the items (at least one) drawn by a permutation seeded
    with ``seed`` validate, the rest train, each list in the items' order, then cut to ``max_train`` /
    ``max_val``.

    Raises:
        DataError: fewer than two items (one to train on, one to validate).
    """
    if len(items) < 2:
        raise DataError(f"need at least 2 image/label pairs (train + validation), found {len(items)}")
    order = np.random.default_rng(seed).permutation(len(items))
    n_val = max(1, int(round(0.2 * len(items))))
    val_items = [items[i] for i in sorted(order[:n_val])]
    train_items = [items[i] for i in sorted(order[n_val:])]
    if max_train:
        train_items = train_items[:max_train]
    if max_val:
        val_items = val_items[:max_val]
    return train_items, val_items


def segmentation_eval_transforms(num_classes: int, spacing: Optional[Sequence[float]], intensity: Optional[str],
                                 val_crop: Optional[int] = None, size_multiple: int = 1):
    """The validation / evaluation pipeline of segmentation files: load, check, RAS, resample to ``spacing`` (mm;
    ``None``: as stored), the ``intensity`` rule (resolved: ``"ct"``, ``"mri"`` or ``None``), an optional centre
    crop / pad to ``val_crop``^3, and zero-padding of every axis to a multiple of ``size_multiple`` (the model's
    strides' product, so the equivariance stays exact)."""
    from monai.transforms import DivisiblePadd

    from .medical import segmentation_transforms

    extra = []
    if val_crop is not None:
        from monai.transforms import ResizeWithPadOrCropd

        extra.append(ResizeWithPadOrCropd(["image", "label"], (val_crop,) * 3))
    extra.append(DivisiblePadd(["image", "label"], k=int(size_multiple)))
    return segmentation_transforms(spacing=spacing, intensity=intensity, patch_size=None, num_classes=num_classes,
                                   extra=extra)
