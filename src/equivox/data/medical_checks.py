"""Checks of medical image files on disk before any work starts (nibabel, read-only): one file read in full
(readable, 3D, finite: :func:`load_image_checked`), an image/label pair (shapes, affines, label values:
:func:`validate_pair`), and the label-value and affine checks the pipeline's transforms share."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from .errors import DataError, check_finite
from .medical_items import _MAX_LISTED, PathLike

__all__ = ["load_image_checked", "validate_pair"]


def _check_label_values(values: np.ndarray, num_classes: Optional[int], where: str) -> None:
    values = np.asarray(values).ravel()
    if num_classes is None:  # no range known: labels must still be whole numbers
        frac = values[values != np.round(values)]
        if frac.size:
            shown = [float(v) for v in np.unique(frac)[:_MAX_LISTED]]
            raise DataError(f"{where}: label values {shown} are not integers (a label map holds class indices; "
                            f"was an image passed as the label, or was it resampled with interpolation?)")
        return
    bad = values[(values != np.round(values)) | (values < 0) | (values >= num_classes)]
    if bad.size:
        shown = [v.item() if hasattr(v, "item") else v for v in np.unique(bad)[:_MAX_LISTED]]
        shown = [int(v) if float(v).is_integer() else float(v) for v in shown]
        more = f" (and {np.unique(bad).size - _MAX_LISTED} more)" if np.unique(bad).size > _MAX_LISTED else ""
        raise DataError(f"{where}: label values {shown}{more} are outside range({num_classes}) "
                        f"(expected integers 0..{num_classes - 1})")


def _check_affines(a_img: np.ndarray, a_lab: np.ndarray, atol: float, img_name: str, lab_name: str) -> None:
    a_img, a_lab = np.asarray(a_img, dtype=np.float64), np.asarray(a_lab, dtype=np.float64)
    if not np.allclose(a_img, a_lab, atol=atol, rtol=0):
        diff = float(np.abs(a_img - a_lab).max())
        raise DataError(f"affine mismatch between image {img_name} and label {lab_name} (max difference "
                        f"{diff:.4g} > tolerance {atol}): image affine\n{np.round(a_img, 4)}\nlabel affine\n"
                        f"{np.round(a_lab, 4)}")


def _spatial_shape_nifti(shape: Tuple[int, ...]) -> Tuple[int, ...]:
    return tuple(shape[:3])


def load_image_checked(path: PathLike, what: str = "image", before: str = "training"):
    """``(nibabel image, data array as stored)`` of an image file (NIfTI or another format nibabel reads) read in
    full, after the checks every input gets before any work starts: the file reads to its last byte (a truncated or
    corrupt file fails here, not mid-run); it has at least 3 axes (a 3D volume ``(D, H, W)``, an image may add
    channels (modalities) on the 4th axis); no NaN/inf values. The file is only read.

    Args:
        what: ``"image"`` or ``"label"`` (for the message). before: what NaN/inf values must be fixed before
            (``"training"``, ``"prediction"``).

    Raises:
        DataError: one line naming the file and the problem.
    """
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)  # reads every byte: truncated gzip / short files fail here
    except Exception as err:
        raise DataError(f"cannot read {what} file {path} (unreadable, truncated or not a supported image): "
                        f"{type(err).__name__}: {err}".splitlines()[0]) from None
    if data.ndim < 3:
        more = ", or 4D with channels last (D, H, W, C)" if what == "image" else ""
        raise DataError(f"{what} file {path} is {data.ndim}D (shape {tuple(data.shape)}); it must be a 3D volume "
                        f"(D, H, W){more}")
    check_finite(data, f"{what} file {path}", before)
    return img, data


def validate_pair(image_path: PathLike, label_path: PathLike, num_classes: Optional[int] = None,
                  affine_atol: float = 1e-3) -> Dict[str, object]:
    """Check an image/label file pair before training (nibabel, read-only; the files are never changed).

    Checks, in order: both files exist; each is readable in full (a truncated/corrupt file is caught here,
    not mid-epoch), has at least 3 axes and no NaN/inf values (:func:`load_image_checked`); spatial shapes agree
    (the image may carry extra trailing axes, e.g. modalities ``(X, Y, Z, 4)``); the label is one 3D volume;
    affines agree within ``affine_atol`` (mm); label values are integers, in ``range(num_classes)`` when
    ``num_classes`` is given.

    Returns:
        ``{"shape": spatial shape, "affine": 4x4 float64, "spacing": voxel sizes (mm), "label_values": sorted
        list}``.

    Raises:
        DataError: the first problem found, naming the file(s) and listing offending label values.
    """
    paths = {"image": Path(image_path), "label": Path(label_path)}
    for what, p in paths.items():
        if not p.exists():
            raise DataError(f"{what} file not found: {p}")
        if not p.is_file():
            raise DataError(f"{what} path is not a regular file: {p}")
    loaded = {what: load_image_checked(p, what) for what, p in paths.items()}
    (img, _), (lab, lab_data) = loaded["image"], loaded["label"]
    s_img, s_lab = tuple(img.shape), tuple(lab.shape)
    lab_spatial = s_lab[:3] if len(s_lab) <= 3 or all(n == 1 for n in s_lab[3:]) else None
    if lab_spatial is None:
        raise DataError(f"label {paths['label']} must be a single 3D volume, got shape {s_lab}")
    if _spatial_shape_nifti(s_img) != lab_spatial:
        raise DataError(f"shape mismatch: image {paths['image']} has spatial shape {s_img[:3]} (full {s_img}), "
                        f"label {paths['label']} has {lab_spatial}")
    _check_affines(img.affine, lab.affine, affine_atol, str(paths["image"]), str(paths["label"]))
    _check_label_values(np.unique(lab_data), num_classes, f"label {paths['label']}")
    return {"shape": lab_spatial, "affine": np.asarray(img.affine, dtype=np.float64),
            "spacing": tuple(float(v) for v in img.header.get_zooms()[:3]),
            "label_values": [v.item() for v in np.unique(lab_data)]}
