"""Helpers of the tests/data test files, handed out as fixtures: small NIfTI files written with nibabel."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _save_nifti(path, data, affine):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return path


def _random_nifti_pair(folder: Path, name="case", shape=(10, 12, 8), affine=None, label_affine=None, label=None,
                       seed=0):
    rng = np.random.default_rng(seed)
    affine = np.diag([2.0, 1.5, 3.0, 1.0]) if affine is None else affine
    img = rng.normal(0, 300, shape).astype(np.float32)
    if label is None:
        label = np.zeros(shape, np.uint8)
        label[3:7, 4:9, 2:6] = 1
    folder.mkdir(parents=True, exist_ok=True)
    ip = _save_nifti(folder / f"{name}_img.nii.gz", img, affine)
    lp = _save_nifti(folder / f"{name}_lab.nii.gz", label, affine if label_affine is None else label_affine)
    return ip, lp, img, label


def _nifti_pair(folder: Path, name: str, image: np.ndarray, label: np.ndarray):
    folder.mkdir(parents=True, exist_ok=True)
    ip, lp = folder / f"{name}.nii.gz", folder / f"{name}_seg.nii.gz"
    _save_nifti(ip, image, np.eye(4))
    _save_nifti(lp, label, np.eye(4))
    return ip, lp


@pytest.fixture
def save_nifti():
    """``save_nifti(path, data, affine) -> path``: ``data`` written as a NIfTI file."""
    return _save_nifti


@pytest.fixture
def random_nifti_pair():
    """``random_nifti_pair(folder, name="case", shape=(10, 12, 8), affine=None, label_affine=None, label=None,
    seed=0) -> (image_path, label_path, image, label)``: ``<name>_img.nii.gz`` (normal noise, std 300) and
    ``<name>_lab.nii.gz`` (a box of 1s unless ``label`` is given), affine diag(2, 1.5, 3) unless given."""
    return _random_nifti_pair


@pytest.fixture
def nifti_pair():
    """``nifti_pair(folder, name, image, label) -> (image_path, label_path)``: ``<name>.nii.gz`` and
    ``<name>_seg.nii.gz`` with the identity affine."""
    return _nifti_pair
