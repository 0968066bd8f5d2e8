"""Datasets for a :class:`~equivox.training.TrainConfig`: what training needs to assemble its splits from the data
preparation of :mod:`equivox.data` (sources, grids, patches, folders, intensity rules).

Classification items: ``image`` FloatTensor ``(C, S, S, S)``, ``label`` int. Segmentation items: ``image``
``(C, D, H, W)`` float, ``label`` ``(1, D, H, W)`` integer class map. :func:`resolve_data_settings` fills in what the
data decide (absolute paths, intensity rule, group, spacing) once per config; :func:`build_datasets` returns
``(train, val, info)``; every missing file or bad value raises :class:`equivox.data.DataError` (or ``ValueError``)
naming it.

Every name this module exported before the preparation moved to :mod:`equivox.data` is still importable here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..data import DataError
from ..data.folders import _CHECKED_PAIRS, _pair_key  # noqa: F401  (re-exported: tests reset the set)
from ..data.folders import preflight_segmentation_files, segmentation_eval_transforms, segmentation_files, split_items
from ..data.grids import (center_crop, classification_grids, describe_resize, downsample_volume, resize_grids,
                          resize_plan)
from ..data.intensity import intensity_scale, resolve_intensity
from ..data.labels import check_labels
from ..data.patches import (ArrayClassificationDataset, VolumeCrops, VolumePatches, augmentation_transform,
                            subsample_indices)
from ..data.sources import bundled_volume, classification_raw, npz_classification, registered_volumes
from .config import TrainConfig

__all__ = ["DataInfo", "ArrayClassificationDataset", "resize_grids", "resize_plan", "describe_resize",
           "resolve_data_settings", "segmentation_file_items", "segmentation_eval_dataset", "subsample_indices",
           "build_datasets", "bundled_volume", "classification_arrays", "augmentation_transform", "center_crop",
           "intensity_scale", "preflight_segmentation_files", "dataset_spec"]

# names of the preparation before it moved to equivox.data, kept for code that imported them from here
_registered_volumes = registered_volumes
_npz_classification = npz_classification
_downsample_volume = downsample_volume
_check_labels = check_labels


@dataclass
class DataInfo:
    """What the model needs to know about the data: channels, classes and their names, sizes."""

    in_channels: int
    num_classes: int
    class_names: List[str]
    n_train: int
    n_val: int
    spatial_size: Tuple[int, ...] = ()
    extra: Dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- one resolution
#: attribute of a config that :func:`resolve_data_settings` returned: ``(fingerprint of its fields, notes, name of
#: its registered dataset or None)``. A run resolves its data once: ``equivox train`` resolves before training
#: starts and :func:`~equivox.training.fit` gets that config, whose fingerprint still matches, so nothing is scanned,
#: chosen or looked up again (a config changed since has another fingerprint and is resolved afresh).
_RESOLVED = "_equivox_data_resolution"


def _fingerprint(cfg: TrainConfig) -> str:
    return repr(sorted(cfg.to_dict().items()))


def _resolution(cfg: TrainConfig):
    """``(notes, registered dataset name or None)`` of a resolved, unchanged ``cfg``; ``None`` otherwise."""
    found = getattr(cfg, _RESOLVED, None)
    if found is None or found[0] != _fingerprint(cfg):
        return None
    return found[1], found[2]


def _mark_resolved(cfg: TrainConfig, notes: List[str], spec) -> None:
    try:  # a config type that takes no new attributes is resolved again when asked: slower, not wrong
        object.__setattr__(cfg, _RESOLVED, (_fingerprint(cfg), list(notes), None if spec is None else spec.name))
    except (AttributeError, TypeError):
        pass


def dataset_spec(cfg: TrainConfig):
    """The registered :class:`~equivox.data.DatasetSpec` of ``cfg``, or ``None`` for files: from the resolution
    :func:`resolve_data_settings` recorded on ``cfg`` when it is resolved and unchanged (a registry look-up by
    name), else :meth:`TrainConfig.validate_dataset` (which raises for an unknown name or the wrong task)."""
    resolved = _resolution(cfg)
    if resolved is None:
        return cfg.validate_dataset()
    name = resolved[1]
    if name is None:
        return None
    from ..data.registry import find_dataset

    spec = find_dataset(name)
    return spec if spec is not None else cfg.validate_dataset()  # unregistered since: the full check says why


# ---------------------------------------------------------------------------------------------- classification
_UNRESOLVED = object()


def _classification_raw(cfg: TrainConfig, split: str, spec=_UNRESOLVED):
    """``(x, y, class names or None, skipped {file: reason})`` of ``split`` as stored (no rescaling):
    :func:`equivox.data.classification_raw` of ``cfg.dataset``."""
    if spec is _UNRESOLVED:
        spec = dataset_spec(cfg)
    return classification_raw(cfg.dataset, split, spec, progress=cfg.progress, strict=cfg.strict)


def classification_arrays(cfg: TrainConfig, split: str, scale: Optional[float] = None,
                          _raw=None) -> Tuple[torch.Tensor, np.ndarray, List[str]]:
    """Images ``(N, 1, S, S, S)`` (resized per ``cfg.input_size`` / ``cfg.resize``), labels ``(N,)`` and class
    names for ``split`` (``"train"``, ``"val"``, ``"test"``) of ``cfg.dataset``
    (:func:`equivox.data.classification_grids` of :func:`equivox.data.classification_raw`).

    Integer images are divided by ``scale`` (default: :func:`intensity_scale` of the *training* split, so every
    split is scaled alike). Raises :class:`DataError` naming the dataset for NaN/inf images, non-integer or
    negative labels, wrongly shaped arrays and non-cubic grids that cannot be resized or rotation-augmented.
    """
    x, y, names, _ = _raw if _raw is not None else _classification_raw(cfg, split)
    if scale is None:
        scale = intensity_scale(x if split == "train" else _classification_raw(cfg, "train")[0])
    return classification_grids(x, y, names, f"{cfg.dataset} [{split}]", scale, cfg.input_size, cfg.resize,
                                cfg.augment)


def _classification(cfg: TrainConfig, spec):
    raw_tr, raw_va = _classification_raw(cfg, "train", spec), _classification_raw(cfg, "val", spec)
    scale = intensity_scale(raw_tr[0])  # one decision for both splits
    xtr, ytr, names = classification_arrays(cfg, "train", scale, raw_tr)
    xva, yva, _ = classification_arrays(cfg, "val", scale, raw_va)
    itr = subsample_indices(ytr, cfg.max_train, cfg.seed)
    iva = subsample_indices(yva, cfg.max_val, cfg.seed + 1)
    aug = augmentation_transform(cfg.augment, ["image"], cfg.group, cfg.seed)
    train = ArrayClassificationDataset(xtr[itr], ytr[itr], aug, names)
    val = ArrayClassificationDataset(xva[iva], yva[iva], None, names)
    k = cfg.num_classes or max(len(names), int(max(ytr.max(), yva.max())) + 1)
    info = DataInfo(xtr.shape[1], k, names, len(train), len(val), tuple(xtr.shape[2:]),
                    extra={"skipped_files": {**raw_tr[3], **raw_va[3]}, "intensity_scale": scale})
    return train, val, info


# ---------------------------------------------------------------------------------------------- segmentation
def _segmentation(cfg: TrainConfig, spec):
    aug = augmentation_transform(cfg.augment, ["image", "label"], cfg.group, cfg.seed)
    if spec is None:
        return _segmentation_files(cfg, aug)
    vols, names = registered_volumes(spec, "train", cfg.downsample)
    val_vols, val_names = registered_volumes(spec, "val", cfg.downsample)
    names = {**val_names, **names}
    train = VolumePatches(vols, cfg.patch_size, cfg.patches_per_epoch, transform=aug, seed=cfg.seed)
    val = VolumeCrops(val_vols, cfg.val_crop)
    top = max(int(lab.max()) for _, lab in vols + val_vols) + 1
    k = cfg.num_classes or (len(names) if names else top)
    cls_names = [names.get(i, str(i)) for i in range(k)]
    in_channels = int(vols[0][0].shape[0])
    return train, val, DataInfo(in_channels, k, cls_names, len(train), len(val), tuple(vols[0][0].shape[1:]))


def segmentation_file_items(cfg: TrainConfig) -> Tuple[List[Dict[str, str]], int, List[str]]:
    """``(items [{"image", "label"} absolute paths], num_classes, class names)`` of ``cfg``'s own segmentation
    files: the ``image_dir`` / ``label_dir`` pair (``num_classes`` required) or the Decathlon folder
    ``dataset`` (:func:`equivox.data.segmentation_files`: every header read, every pair checked in full)."""
    return segmentation_files(cfg.image_dir, cfg.label_dir, cfg.dataset, cfg.num_classes, cfg.class_names)


def _split_items(cfg: TrainConfig, items):
    return split_items(items, cfg.seed, cfg.max_train, cfg.max_val)


def _intensity(cfg: TrainConfig, train_items) -> Tuple[Optional[str], str]:
    """``cfg.intensity``, with ``"auto"`` decided from the training images (:func:`equivox.data.resolve_intensity`)."""
    return resolve_intensity(cfg.intensity, train_items)


def _eval_transforms(cfg: TrainConfig, k: int, intensity: Optional[str]):
    """The validation / evaluation pipeline of ``cfg`` (:func:`equivox.data.segmentation_eval_transforms`)."""
    return segmentation_eval_transforms(k, cfg.spacing, intensity, cfg.val_crop,
                                        int(np.prod(cfg.strides)) if cfg.strides else 1)


def segmentation_eval_dataset(cfg: TrainConfig, items: Sequence[Dict[str, str]], num_classes: int):
    """Every pair of ``items`` prepared as the validation split of a run with ``cfg`` (its spacing, its intensity
    rule, which must be resolved, not ``"auto"``: see :func:`resolve_data_settings`), for scoring a test folder."""
    from ..data import segmentation_dataset

    if cfg.intensity == "auto":
        raise ValueError("segmentation_eval_dataset needs a resolved intensity (the training run's), not 'auto'")
    return segmentation_dataset(list(items), _eval_transforms(cfg, num_classes, cfg.intensity))


def _segmentation_files(cfg: TrainConfig, aug):
    from ..data import segmentation_dataset, segmentation_transforms
    from ..data.medical import common_spacing, scan_images

    items, k, names = segmentation_file_items(cfg)
    train_items, val_items = _split_items(cfg, items)
    intensity, why = _intensity(cfg, train_items)
    extra = [aug] if aug is not None else []
    tr_t = segmentation_transforms(spacing=cfg.spacing, intensity=intensity, patch_size=(cfg.patch_size,) * 3,
                                   num_classes=k, num_samples=max(1, cfg.patches_per_epoch // max(1, len(train_items))),
                                   extra=extra)
    va_t = _eval_transforms(cfg, k, intensity)
    train = segmentation_dataset(train_items, tr_t)
    val = segmentation_dataset(val_items, va_t)
    in_channels = int(val[0]["image"].shape[0])  # modalities (e.g. 4 for Decathlon BrainTumour), not always 1
    spacing = cfg.spacing or common_spacing(scan_images([it["image"] for it in items]))
    return train, val, DataInfo(in_channels, k, names, len(train_items), len(val_items), (),
                                extra={"intensity": intensity, "intensity_reason": why,
                                       "spacing": list(spacing) if spacing else None})


# ---------------------------------------------------------------------------------------------- the config's data
def _absolute(path: Optional[str]) -> Optional[str]:
    return None if path is None else str(Path(path).expanduser().resolve())


def resolve_data_settings(cfg: TrainConfig) -> Tuple[TrainConfig, List[str]]:
    """A copy of ``cfg`` with what the data decide filled in, and a list of notes saying what was decided (for the
    start-up line):

    * data paths made absolute (``image_dir``, ``label_dir``, a ``dataset`` path), so a checkpoint works from any
      working directory;
    * own NIfTI segmentation data: ``intensity="auto"`` -> ``"ct"`` or ``"mri"`` from the training images'
      values (:func:`equivox.data.choose_intensity`); the voxel spacing read from the headers when ``spacing``
      is not set (RAS axes): ``group="auto"`` chooses the largest exact group for it
      (:func:`equivox.groups.auto_group`), any other group is checked against it (one-line warning naming the
      exact groups);
    * classification grids: how they reach ``input_size`` (:func:`describe_resize`).

    Resolved once: the returned config records its resolution, so resolving it again (as :func:`fit` does with the
    config ``equivox train`` resolved) returns it and its notes without reading any file, and
    :func:`build_datasets` does not look its dataset up again; a config changed since is resolved afresh.

    Raises :class:`DataError` for unreadable files, mixed channel counts, or ``group="auto"`` over images of
    different spacings without ``spacing``.
    """
    from ..groups import auto_group, check_spacing

    resolved = _resolution(cfg)
    if resolved is not None:
        return cfg, list(resolved[0])
    notes: List[str] = []
    changes: Dict[str, Any] = {"image_dir": _absolute(cfg.image_dir), "label_dir": _absolute(cfg.label_dir)}
    spec = cfg.validate_dataset()
    if spec is None and cfg.image_dir is None and cfg.label_dir is None:
        changes["dataset"] = _absolute(cfg.dataset)
    cfg = dataclasses.replace(cfg, **changes)
    if cfg.task == "segment" and spec is None:
        from ..data.medical import common_spacing, scan_images

        items, _, _ = segmentation_file_items(cfg)
        spacing = cfg.spacing or common_spacing(scan_images([it["image"] for it in items]))
        where = "resampled" if cfg.spacing else "from the headers"
        if cfg.group == "auto":
            if spacing is None:
                raise DataError("group 'auto' needs one voxel spacing, but the images' headers differ (or are not "
                                "NIfTI); resample them to one with --spacing D,H,W (mm)")
            group, why = auto_group(spacing)
            cfg = dataclasses.replace(cfg, group=group)
            notes.append(f"group auto -> {group} ({why})")
        elif cfg.spacing is None and spacing is not None:
            check_spacing(cfg.group, spacing)
        notes.append(f"spacing {'x'.join(f'{v:g}' for v in spacing)} mm ({where})" if spacing else
                     "spacing: mixed in the headers (not resampled; set --spacing)")
        intensity, why = _intensity(cfg, _split_items(cfg, items)[0])
        cfg = dataclasses.replace(cfg, intensity=intensity)
        notes.append(f"intensity {intensity or 'none'} ({why})")
    elif cfg.task == "segment":
        notes.append(f"intensity as registered for {cfg.dataset}")
    elif cfg.input_size is not None and spec is None and str(cfg.dataset).endswith(".npz"):
        x, _ = npz_classification(Path(cfg.dataset), "train")
        notes.append(f"input {describe_resize(int(x.shape[-1]), cfg.input_size, cfg.resize)}")
    _mark_resolved(cfg, notes, spec)
    return cfg, notes


def build_datasets(cfg: TrainConfig):
    """``(train_dataset, val_dataset, DataInfo)`` for ``cfg`` (see :class:`~equivox.training.TrainConfig`); the
    dataset is looked up once (:func:`dataset_spec`: not at all for a config :func:`resolve_data_settings`
    returned) and handed to every split's loader."""
    spec = dataset_spec(cfg)  # unknown name or wrong task: fail before loading anything
    if cfg.task == "classify":
        return _classification(cfg, spec)
    return _segmentation(cfg, spec)
