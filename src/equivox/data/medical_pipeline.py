"""The standard 3D segmentation pipeline (:func:`segmentation_transforms`: load, channel-first, validate, RAS
orientation, resampling, intensity, patches), the MONAI datasets around it (:func:`segmentation_dataset`), and
:func:`load_monai_checked`, the input checks for the formats nibabel does not read."""
from __future__ import annotations

from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    NormalizeIntensityd,
    Orientationd,
    RandCropByPosNegLabeld,
    ScaleIntensityRanged,
    Spacingd,
    SpatialPadd,
)

from .errors import DataError, check_finite
from .medical_items import PathLike
from .medical_transforms import CheckFilesd, LoadImageCheckedd, SegmentationCompose, ValidatePaird

__all__ = ["load_monai_checked", "segmentation_transforms", "segmentation_dataset"]


def load_monai_checked(item: Mapping[str, PathLike], num_classes: Optional[int] = None,
                       before: str = "training") -> dict:
    """The checks of :func:`load_image_checked` (and, for an ``{"image", "label"}`` item, of
    :func:`validate_pair`) for formats nibabel does not read (``.mha``, ``.nrrd``, ...): the files are loaded in
    full by the pipeline's own :class:`LoadImageCheckedd`, made channel-first, and must be 3D with finite values;
    a pair then goes through :class:`ValidatePaird` (shapes, affines, label values). Returns the loaded item
    (``MetaTensor`` s ``(C, D, H, W)``).

    Raises:
        DataError: one line naming the file and the problem.
    """
    keys = [k for k in ("image", "label") if k in item]
    d = SegmentationCompose([CheckFilesd(keys), LoadImageCheckedd(keys, image_only=True),
                             EnsureChannelFirstd(keys)])({k: str(item[k]) for k in keys})
    for k in keys:
        if d[k].ndim != 4:
            raise DataError(f"{k} file {item[k]} is {d[k].ndim - 1}D (shape {tuple(d[k].shape[1:])}); it must be a "
                            "3D volume (D, H, W)")
        if k == "image":
            check_finite(np.asarray(d[k]), f"image file {item[k]}", before)
    if "label" in d:
        d = ValidatePaird(("image", "label"), num_classes=num_classes)(d)
    return d


def segmentation_transforms(
    spacing: Optional[Sequence[float]] = (1.0, 1.0, 1.0),
    intensity: Optional[str] = "ct",
    ct_window: Tuple[float, float] = (-1000.0, 1000.0),
    patch_size: Optional[Sequence[int]] = None,
    num_classes: Optional[int] = 2,
    num_samples: int = 1,
    pos_neg: Tuple[float, float] = (1.0, 1.0),
    keys: Tuple[str, str] = ("image", "label"),
    affine_atol: float = 1e-3,
    extra: Sequence = (),
) -> Compose:
    """The standard 3D segmentation pipeline as a MONAI ``Compose`` of dictionary transforms (a
    :class:`SegmentationCompose`, which surfaces :class:`DataError` s unwrapped).

    Steps: :class:`CheckFilesd` -> :class:`LoadImageCheckedd` -> ``EnsureChannelFirstd`` ->
    :class:`ValidatePaird` (shape, affine, label values) -> ``Orientationd(axcodes="RAS")`` ->
    ``Spacingd(pixdim=spacing, mode=("bilinear", "nearest"))`` (skipped if ``spacing`` is None) -> intensity:
    ``"ct"``: ``ScaleIntensityRanged`` mapping ``ct_window`` (HU) to ``[0, 1]`` with clipping; ``"mri"``:
    ``NormalizeIntensityd(nonzero=True, channel_wise=True)`` (z-score over the nonzero voxels); ``None``: as
    stored -> with ``patch_size``: ``SpatialPadd`` to at least ``patch_size`` then
    ``RandCropByPosNegLabeld`` (``num_samples`` patches per volume, ``pos_neg`` = (pos, neg) ratio; the
    result is then a list of dictionaries) -> ``extra`` transforms (e.g. ``RandGridRotatedd(keys)``) ->
    ``EnsureTyped``.

    Output: ``image`` float32 ``MetaTensor`` ``(C, D, H, W)`` (RAS axes, resampled trilinearly), ``label``
    ``MetaTensor`` ``(1, D, H, W)`` with exact label values (nearest resampling).
    """
    ik, lk = keys
    t: List = [
        CheckFilesd(keys),
        LoadImageCheckedd(keys, image_only=True),
        EnsureChannelFirstd(keys),
        ValidatePaird(keys, num_classes=num_classes, affine_atol=affine_atol),
        Orientationd(keys, axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
    ]
    if spacing is not None:
        t.append(Spacingd(keys, pixdim=tuple(spacing), mode=("bilinear", "nearest")))
    if intensity == "ct":
        t.append(ScaleIntensityRanged(ik, a_min=ct_window[0], a_max=ct_window[1], b_min=0.0, b_max=1.0, clip=True))
    elif intensity == "mri":
        t.append(NormalizeIntensityd(ik, nonzero=True, channel_wise=True))
    elif intensity is not None:
        raise ValueError(f"intensity must be 'ct', 'mri' or None, got {intensity!r}")
    if patch_size is not None:
        t.append(SpatialPadd(keys, spatial_size=tuple(patch_size)))
        t.append(RandCropByPosNegLabeld(keys, label_key=lk, spatial_size=tuple(patch_size), pos=pos_neg[0],
                                        neg=pos_neg[1], num_samples=num_samples, image_key=ik,
                                        image_threshold=-np.inf if intensity == "mri" else 0.0))
    t.extend(extra)
    t.append(EnsureTyped(keys, track_meta=True))
    return SegmentationCompose(t)


def segmentation_dataset(items: Sequence[dict], transform, cache: Optional[str] = None,
                         cache_dir: Optional[PathLike] = None, cache_rate: float = 1.0, num_workers: int = 0):
    """Wrap ``items`` and a transform in a MONAI dataset.

    Args:
        cache: ``None`` (plain ``monai.data.Dataset``), ``"memory"`` (``CacheDataset``: the deterministic
            prefix of ``transform`` is computed once and kept in RAM) or ``"disk"`` (``PersistentDataset``:
            kept as files under ``cache_dir``, default ``equivox.cache.cache_dir() / "monai"``; when that folder
            cannot be created a ``CacheWarning`` is issued once and the uncached ``Dataset`` is returned).
    """
    from monai.data import CacheDataset, Dataset, PersistentDataset

    if cache is None:
        return Dataset(list(items), transform)
    if cache == "memory":
        return CacheDataset(list(items), transform, cache_rate=cache_rate, num_workers=num_workers,
                            progress=False)
    if cache == "disk":
        from ..cache import usable_cache_dir, warn_once

        try:
            if cache_dir is None:
                cache_dir = usable_cache_dir("monai")
                if cache_dir is None:  # already warned
                    return Dataset(list(items), transform)
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            warn_once("monai-dir", f"MONAI disk cache folder {cache_dir} cannot be used ({type(err).__name__}: "
                                   f"{err}); continuing without the disk cache")
            return Dataset(list(items), transform)
        return PersistentDataset(list(items), transform, cache_dir=cache_dir)
    raise ValueError(f"cache must be None, 'memory' or 'disk', got {cache!r}")
