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

User files are only ever opened for reading. After the pipeline, arrays are MONAI ``MetaTensor`` s
``(C, D, H, W)`` (``(1, D, H, W)`` float32 label) whose axes are RAS+ voxel axes and whose ``affine`` holds
the voxel-to-world (RAS mm) matrix.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Hashable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    MapTransform,
    NormalizeIntensityd,
    Orientationd,
    RandCropByPosNegLabeld,
    RandSpatialCropd,
    ScaleIntensityRanged,
    Spacingd,
    SpatialPadd,
)

from .errors import DataError, check_finite

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

PathLike = Union[str, Path]
IMAGE_EXTENSIONS = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr", ".img", ".hdr")
_MAX_LISTED = 10


def _listing(items: Sequence, limit: int = _MAX_LISTED) -> str:
    items = [str(i) for i in items]
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def strip_image_extension(name: str) -> Optional[str]:
    """File name without its (possibly double) image extension, e.g. ``"case_01.nii.gz" -> "case_01"``;
    ``None`` for names without a known extension (see ``IMAGE_EXTENSIONS``)."""
    low = name.lower()
    for ext in IMAGE_EXTENSIONS:
        if low.endswith(ext):
            return name[: -len(ext)]
    return None


# ----------------------------------------------------------------------------------------------------------
# item lists


def _read_dataset_json(root: Path) -> dict:
    if not root.is_dir():
        raise DataError(f"Decathlon folder not found: {root}")
    meta = root / "dataset.json"
    if not meta.is_file():
        raise DataError(f"{root} has no dataset.json (Medical Segmentation Decathlon layout expected)")
    try:
        return json.loads(meta.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{meta} is not valid JSON: {err}") from None


def decathlon_items(root: PathLike, section: str = "training") -> List[Dict[str, str]]:
    """Items of a Decathlon folder (``dataset.json``, ``imagesTr/``, ``labelsTr/``, ``imagesTs/``).

    Args:
        root: the task folder (e.g. ``Task09_Spleen``).
        section: ``"training"`` (dicts with ``image`` and ``label``) or ``"test"`` (image paths only).

    Returns:
        ``[{"image": abs path, "label": abs path}, ...]`` (``{"image": ...}`` for ``"test"``) in
        ``dataset.json`` order; relative paths like ``./imagesTr/x.nii.gz`` are resolved against ``root``.

    Raises:
        DataError: missing folder / ``dataset.json``, invalid JSON, missing section or keys, or listed files
            that do not exist (all of them are named).
    """
    root = Path(root)
    meta = _read_dataset_json(root)
    if section not in meta:
        raise DataError(f"{root / 'dataset.json'} has no {section!r} list (keys: {sorted(meta)})")
    items, missing = [], []
    for n, entry in enumerate(meta[section]):
        if isinstance(entry, str):
            entry = {"image": entry}
        if not isinstance(entry, dict) or "image" not in entry or (section == "training" and "label" not in entry):
            raise DataError(f"{root / 'dataset.json'}: entry {n} of {section!r} lacks 'image'/'label': {entry}")
        item = {}
        for key in ("image", "label"):
            if key in entry:
                p = (root / entry[key]).resolve()
                item[key] = str(p)
                if not p.is_file():
                    missing.append(str(p))
        items.append(item)
    if missing:
        raise DataError(f"{len(missing)} file(s) listed in {root / 'dataset.json'} are missing: {_listing(missing)}")
    if not items:
        raise DataError(f"{root / 'dataset.json'}: the {section!r} list is empty")
    return items


def decathlon_labels(root: PathLike) -> Dict[int, str]:
    """The ``labels`` mapping of a Decathlon ``dataset.json`` as ``{value: name}`` (e.g. ``{0: "background",
    1: "spleen"}``); ``len(...)`` is the ``num_classes`` to validate against."""
    root = Path(root)
    meta = _read_dataset_json(root)
    if "labels" not in meta:
        raise DataError(f"{root / 'dataset.json'} has no 'labels' mapping")
    try:
        return {int(k): str(v) for k, v in sorted(meta["labels"].items(), key=lambda kv: int(kv[0]))}
    except (ValueError, AttributeError):
        raise DataError(f"{root / 'dataset.json'}: 'labels' must map integer strings to names") from None


def folder_pair_items(image_dir: PathLike, label_dir: PathLike, image_suffix: str = "") -> List[Dict[str, str]]:
    """Pair images and labels stored in two folders by file name (extension-insensitive: ``a.nii.gz`` pairs
    with ``a.nii``).

    Args:
        image_suffix: a suffix removed from image names before matching, e.g. ``"_0000"`` for nnU-Net's
            ``case_0000.nii.gz`` / ``case.nii.gz``.

    Returns:
        ``[{"image": abs path, "label": abs path}, ...]`` sorted by name.

    Raises:
        DataError: missing folders, no images, or images without labels / labels without images (named).
    """
    image_dir, label_dir = Path(image_dir), Path(label_dir)
    for d, what in ((image_dir, "image"), (label_dir, "label")):
        if not d.is_dir():
            raise DataError(f"{what} folder not found: {d}")

    def index(folder: Path, suffix: str = "") -> Dict[str, Path]:
        out: Dict[str, Path] = {}
        for p in sorted(folder.iterdir()):
            stem = strip_image_extension(p.name) if p.is_file() and not p.name.startswith(".") else None
            if stem is None:
                continue
            if suffix and stem.endswith(suffix):
                stem = stem[: -len(suffix)]
            if stem in out:
                raise DataError(f"two files in {folder} share the name {stem!r}: {out[stem].name}, {p.name}")
            out[stem] = p
        return out

    images, labels = index(image_dir, image_suffix), index(label_dir)
    if not images:
        raise DataError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {image_dir}")
    no_label = sorted(set(images) - set(labels))
    no_image = sorted(set(labels) - set(images))
    if no_label or no_image:
        parts = []
        if no_label:
            parts.append(f"images without a label in {label_dir}: {_listing(images[s].name for s in no_label)}")
        if no_image:
            parts.append(f"labels without an image in {image_dir}: {_listing(labels[s].name for s in no_image)}")
        raise DataError("; ".join(parts))
    return [{"image": str(images[s].resolve()), "label": str(labels[s].resolve())} for s in sorted(images)]


# ----------------------------------------------------------------------------------------------------------
# header facts: channels, spacing, intensity range

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


# ----------------------------------------------------------------------------------------------------------
# checks


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


# ----------------------------------------------------------------------------------------------------------
# pipeline and datasets


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
