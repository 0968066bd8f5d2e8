"""Facts about a set of medical images read before any training (NIfTI headers through nibabel, header only where
possible): channel counts, the voxel spacing they share, and the automatic intensity rule (CT window or MRI
z-score, chosen from the values)."""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .errors import DataError, check_finite
from .medical_items import PathLike

__all__ = ["is_nifti", "scan_images", "check_same_channels", "common_spacing", "choose_intensity", "CT_RULE"]

_NIFTI = (".nii", ".nii.gz")


def is_nifti(path: PathLike) -> bool:
    """Whether ``path`` names a NIfTI file (``.nii`` / ``.nii.gz``), read with nibabel; other image formats go
    through MONAI's readers."""
    return str(path).lower().endswith(_NIFTI)


_is_nifti = is_nifti


def scan_images(paths: Sequence[PathLike]) -> List[Dict[str, object]]:
    """Header facts of NIfTI image files (nibabel, header only; other formats are listed with ``None`` facts):
    ``{"path", "shape" (spatial), "channels" (product of the axes after the third), "spacing" (mm along the RAS
    axes D, H, W, i.e. after the pipeline's ``Orientationd("RAS")``)}``.

    Raises:
        DataError: a header that cannot be read, naming the file.
    """
    import nibabel as nib

    out = []
    for p in paths:
        if not _is_nifti(p):
            out.append({"path": str(p), "shape": None, "channels": None, "spacing": None})
            continue
        try:
            img = nib.load(str(p))
            shape = tuple(int(n) for n in img.shape)
            zooms = [round(float(z), 5) for z in img.header.get_zooms()[:3]]  # float32 headers: 0.699999988
            ornt = nib.orientations.io_orientation(img.affine)
        except Exception as err:
            raise DataError(f"cannot read image file {p} (unreadable, truncated or not a NIfTI file): "
                            f"{type(err).__name__}: {err}".splitlines()[0]) from None
        ras = [0.0, 0.0, 0.0]
        for i in range(min(3, len(zooms))):
            ras[int(ornt[i, 0])] = zooms[i]
        channels = int(np.prod(shape[3:])) if len(shape) > 3 else 1
        out.append({"path": str(p), "shape": shape[:3], "channels": channels, "spacing": tuple(ras)})
    return out


def check_same_channels(infos: Sequence[Mapping[str, object]]) -> Optional[int]:
    """The channel (modality) count shared by every scanned image (:func:`scan_images`), ``None`` if unknown.

    Raises:
        DataError: an image whose channel count differs from the others', naming it, its shape and the count
            the others have.
    """
    from collections import Counter

    counts = Counter(i["channels"] for i in infos if i["channels"] is not None)
    if not counts:
        return None
    common = counts.most_common(1)[0][0]
    odd = [i for i in infos if i["channels"] is not None and i["channels"] != common]
    if odd:
        raise DataError(f"image {odd[0]['path']} has {odd[0]['channels']} channel(s) (shape "
                        f"{tuple(odd[0]['shape'])} + channels) but {counts[common]} other image(s) have {common}: "
                        "every image of a dataset needs the same channels (modalities)")
    return common


def common_spacing(infos: Sequence[Mapping[str, object]], rtol: float = 1e-3) -> Optional[Tuple[float, ...]]:
    """The voxel spacing (RAS axes, mm) shared by every scanned image, or ``None`` when they differ or are
    unknown."""
    spacings = [tuple(i["spacing"]) for i in infos if i["spacing"] is not None]
    if not spacings or len(spacings) < len(infos):
        return None
    first = np.asarray(spacings[0])
    if all(np.allclose(sp, first, rtol=rtol, atol=0) for sp in spacings):
        return tuple(float(v) for v in first)
    return None


#: the automatic intensity rule: CT windowing when the values span Hounsfield units (below ``low`` and above ``high``)
CT_RULE = (-500.0, 500.0)


def choose_intensity(paths: Sequence[PathLike], max_files: int = 8) -> Tuple[Optional[str], str]:
    """The intensity normalisation for images ``paths`` (``intensity="auto"``): ``"ct"`` (HU window) when their
    values span Hounsfield units (minimum below -500 and maximum above 500, :data:`CT_RULE`), else ``"mri"``
    (per-volume z-score over the nonzero voxels). Reads up to ``max_files`` files (evenly spread). Returns
    ``(name, reason)``.

    Raises:
        DataError: an unreadable / truncated file, naming it.
    """
    import nibabel as nib

    paths = [p for p in paths if _is_nifti(p)]
    if not paths:
        return "mri", "not NIfTI: per-volume z-score"
    pick = [paths[i] for i in sorted({int(round(j)) for j in np.linspace(0, len(paths) - 1, min(max_files, len(paths)))})]
    lo, hi = np.inf, -np.inf
    for p in pick:
        try:
            data = np.asarray(nib.load(str(p)).dataobj)
        except Exception as err:
            raise DataError(f"cannot read image file {p} (unreadable, truncated or not a NIfTI file): "
                            f"{type(err).__name__}: {err}".splitlines()[0]) from None
        check_finite(data, f"image file {p}")
        lo, hi = min(lo, float(data.min())), max(hi, float(data.max()))
    rng = f"values {lo:.4g}..{hi:.4g} in {len(pick)} image(s)"
    if lo < CT_RULE[0] and hi > CT_RULE[1]:
        return "ct", f"{rng}: Hounsfield units -> CT window -1000..1000 HU to [0, 1]"
    return "mri", f"{rng}: not HU (needs < {CT_RULE[0]:g} and > {CT_RULE[1]:g}) -> per-volume z-score"
