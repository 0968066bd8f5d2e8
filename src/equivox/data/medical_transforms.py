"""MONAI dictionary transforms that check data inside a pipeline and fail with a :class:`~equivox.data.DataError`
naming the file: :class:`CheckFilesd` (files exist), :class:`LoadImageCheckedd` (read failures),
:class:`ValidatePaird` (a loaded image/label pair), and :class:`SegmentationCompose`, which surfaces those errors
unwrapped."""
from __future__ import annotations

from pathlib import Path
from typing import Hashable, Mapping, Optional

import numpy as np
import torch
from monai.transforms import Compose, LoadImaged, MapTransform

from .errors import DataError, check_finite
from .medical_checks import _check_affines, _check_label_values
from .medical_headers import _is_nifti

__all__ = ["CheckFilesd", "LoadImageCheckedd", "ValidatePaird", "SegmentationCompose"]


def _name(x, default: str) -> str:
    meta = getattr(x, "meta", None)
    if isinstance(meta, dict) and meta.get("filename_or_obj"):
        return str(meta["filename_or_obj"])
    return default


class CheckFilesd(MapTransform):
    """Raise :class:`DataError` naming the key and path when a file listed under ``keys`` does not exist
    (put it before loading; MONAI's own message is less direct)."""

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            p = d[key]
            if isinstance(p, (str, Path)) and not Path(p).is_file():
                raise DataError(f"{key} file not found: {p}")
        return d


class LoadImageCheckedd(LoadImaged):
    """MONAI ``LoadImaged`` whose read failures (unreadable, truncated, unsupported) become a
    :class:`DataError` naming the file. Same arguments as ``LoadImaged`` (MONAI's notice about the optional
    nvImageCodec DICOM plugin is silenced)."""

    def __init__(self, *args, **kwargs):
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*nvImageCodec.*")
            super().__init__(*args, **kwargs)

    def __call__(self, data, reader=None):
        try:
            return super().__call__(data, reader)
        except DataError:
            raise
        except Exception as err:
            files = [str(data.get(k)) for k in self.keys if k in data]
            bad = [f for f in files if not _reads_in_full(f)] or files
            raise DataError(f"cannot read {' or '.join(bad)} (unreadable, truncated or unsupported file): "
                            f"{type(err).__name__}: {err}".splitlines()[0]) from None


def _reads_in_full(path: str) -> bool:
    """Whether nibabel reads every byte of ``path`` (False for truncated / corrupt NIfTI files)."""
    if not _is_nifti(path):
        return True
    try:
        import nibabel as nib

        np.asarray(nib.load(path).dataobj)
        return True
    except Exception:
        return False


class ValidatePaird(MapTransform):
    """Check a loaded, channel-first image/label pair (``MetaTensor`` s ``(C, D, H, W)`` / ``(1, D, H, W)``):
    equal spatial shapes, affines within ``affine_atol``, no NaN/inf in the image, integer label values (in
    ``range(num_classes)`` when given).
    Raises :class:`DataError` naming the files. Place it right after ``EnsureChannelFirstd``.

    Args:
        keys: ``(image_key, label_key)``. num_classes: ``None`` skips the label-value check.
    """

    def __init__(self, keys=("image", "label"), num_classes: Optional[int] = None, affine_atol: float = 1e-3,
                 allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 2:
            raise ValueError("ValidatePaird needs keys=(image_key, label_key)")
        self.num_classes, self.affine_atol = num_classes, affine_atol

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        ik, lk = self.keys
        if lk not in d and self.allow_missing_keys:
            return d
        img, lab = d[ik], d[lk]
        iname, lname = _name(img, str(ik)), _name(lab, str(lk))
        if lab.shape[0] != 1:
            raise DataError(f"label {lname} must have one channel, got shape {tuple(lab.shape)}")
        if tuple(img.shape[1:]) != tuple(lab.shape[1:]):
            raise DataError(f"shape mismatch: image {iname} has spatial shape {tuple(img.shape[1:])}, label "
                            f"{lname} has {tuple(lab.shape[1:])}")
        if hasattr(img, "affine") and hasattr(lab, "affine"):
            _check_affines(img.affine.cpu().numpy(), lab.affine.cpu().numpy(), self.affine_atol, iname, lname)
        img_t = img.as_tensor() if hasattr(img, "as_tensor") else torch.as_tensor(img)
        if img_t.is_floating_point() and not bool(torch.isfinite(img_t).all()):
            check_finite(img_t.detach().cpu().numpy(), f"image {iname}")
        lab_t = lab.as_tensor() if hasattr(lab, "as_tensor") else torch.as_tensor(lab)
        _check_label_values(torch.unique(lab_t).cpu().numpy(), self.num_classes, f"label {lname}")
        return d


def _data_error_in(err: BaseException) -> Optional[DataError]:
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, DataError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


class SegmentationCompose(Compose):
    """MONAI ``Compose`` that re-raises a :class:`DataError` from any of its transforms as itself (MONAI wraps
    every transform failure in ``RuntimeError("applying transform ...")``, hiding the message)."""

    def __call__(self, input_, *args, **kwargs):
        try:
            return super().__call__(input_, *args, **kwargs)
        except RuntimeError as err:
            found = _data_error_in(err)
            if found is not None:
                raise DataError(str(found)) from err
            raise
