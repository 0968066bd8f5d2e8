"""Medical segmentation volumes (NIfTI and anything MONAI's ``LoadImage`` reads) through MONAI, with
validation that fails early with clear :class:`~equivox.data.DataError` messages.

* item lists: :func:`decathlon_items` (Medical Segmentation Decathlon folder with ``dataset.json``),
  :func:`folder_pair_items` (an image folder and a label folder matched by file name);
* checks: :func:`load_image_checked` (one file read in full: readable, 3D, finite), :func:`validate_pair` (an
  image/label pair on disk, via nibabel) and the dictionary transforms
  :class:`CheckFilesd` / :class:`LoadImageCheckedd` / :class:`ValidatePaird` used inside the pipeline;
* pipeline: :func:`segmentation_transforms` (MONAI ``Compose``: load, channel-first, validate, RAS orientation,
  resampling to a spacing, CT windowing or MRI z-score, optional patch sampling);
* datasets: :func:`segmentation_dataset` (MONAI ``Dataset`` / ``CacheDataset`` / ``PersistentDataset``).

Each job is a module of its own, re-exported here: :mod:`.medical_items` (item lists), :mod:`.medical_headers`
(channels, spacing, the intensity rule), :mod:`.medical_checks` (files checked on disk), :mod:`.medical_transforms`
(the checking MONAI transforms), :mod:`.medical_pipeline` (pipeline, datasets).

User files are only ever opened for reading. After the pipeline, arrays are MONAI ``MetaTensor`` s
``(C, D, H, W)`` (``(1, D, H, W)`` float32 label) whose axes are RAS+ voxel axes and whose ``affine`` holds
the voxel-to-world (RAS mm) matrix.
"""
from __future__ import annotations

from .medical_checks import load_image_checked, validate_pair
from .medical_headers import CT_RULE, check_same_channels, choose_intensity, common_spacing, is_nifti, scan_images
from .medical_items import (IMAGE_EXTENSIONS, PathLike, decathlon_items, decathlon_labels,  # noqa: F401
                            folder_pair_items, strip_image_extension)
from .medical_pipeline import load_monai_checked, segmentation_dataset, segmentation_transforms
from .medical_transforms import CheckFilesd, LoadImageCheckedd, SegmentationCompose, ValidatePaird

__all__ = [
    "IMAGE_EXTENSIONS",
    "strip_image_extension",
    "decathlon_items",
    "decathlon_labels",
    "folder_pair_items",
    "validate_pair",
    "load_image_checked",
    "load_monai_checked",
    "is_nifti",
    "CheckFilesd",
    "LoadImageCheckedd",
    "ValidatePaird",
    "SegmentationCompose",
    "segmentation_transforms",
    "segmentation_dataset",
    "scan_images",
    "check_same_channels",
    "common_spacing",
    "choose_intensity",
    "CT_RULE",
]
