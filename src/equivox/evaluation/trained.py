"""Scoring a trained model: which data it is scored on and what it is called (``equivox evaluate`` / ``predict``).

* :func:`evaluation_data` -> :class:`EvaluationData`: the test split of a classification checkpoint's dataset, the
  validation volumes of a segmentation one, another dataset, or a labelled image/label folder pair prepared as in
  training (spacing, intensity from the checkpoint);
* :func:`as_trained`: a classification checkpoint whose model was trained on grids of another size than its
  config's ``input_size`` gets the size it was trained on;
* :func:`scored_spacing`: the voxel spacing of the data a segmentation checkpoint is scored on (for
  :func:`~equivox.evaluation.rotations.rotations_for_spacing`);
* :func:`model_label`: a model's name for tables and legends.

The checkpoint's data settings are read through :mod:`equivox.training` (its data preparation), which itself uses
:mod:`equivox.evaluation`: this module is therefore imported as ``equivox.evaluation.trained``, not from the
package's ``__init__`` (no import cycle).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["EvaluationData", "evaluation_data", "as_trained", "scored_spacing", "model_label"]


@dataclass
class EvaluationData:
    """The data a trained model is scored on.

    Attributes:
        task: ``"classify"`` or ``"segment"``.
        where: the data, for the start-up line (``"lidc [test]"``, the folder pair's absolute paths).
        description: what is scored (``"120 items"``, ``"4 volumes, whole"``).
        inputs: classification: ``(images, labels)`` (a float array ``(N, C, S, S, S)`` and a label tensor), ready
            for :func:`~equivox.evaluation.evaluate_classification`; segmentation: the list of ``{"image",
            "label"}`` items for :func:`~equivox.evaluation.evaluate_segmentation`.
        num_classes: the checkpoint's classes. class_names: segmentation class names (``None``: numbered).
        spacing: segmentation voxel spacing (mm, D, H, W) or ``None``. config: the checkpoint's
            :class:`~equivox.config.TrainConfig` as applied.
        notes: one line each on how the data were prepared (``"intensity auto -> mri (...)"``).
    """

    task: str
    where: str
    description: str
    inputs: Any
    num_classes: int
    class_names: Optional[List[str]] = None
    spacing: Optional[Tuple[float, ...]] = None
    config: Any = None
    notes: List[str] = field(default_factory=list)


def as_trained(hp: Dict[str, Any]) -> Tuple[Dict[str, Any], Optional[str]]:
    """``(hparams, note or None)``: a classification checkpoint whose model was trained on inputs of another size
    than its config's ``input_size`` (the benchmark and demo feed the stored grids and pool inside the model; their
    configs name the pooled size) gets the size it was trained on, so evaluate and predict feed what it takes."""
    cfg = dict(hp.get("config") or {})
    shape = (hp.get("data_info") or {}).get("input_shape")
    if cfg.get("task") != "classify" or not shape or len(set(shape)) != 1 or cfg.get("input_size") is None \
            or cfg.get("input_size") == shape[0]:
        return hp, None
    note = (f"the model was trained on {shape[0]}^3 inputs (its config's input_size is {cfg['input_size']}): grids "
            f"are prepared at {shape[0]}^3")
    return {**hp, "config": {**cfg, "input_size": int(shape[0])}}, note


def scored_spacing(hp: Dict[str, Any]) -> Optional[Tuple[float, ...]]:
    """The voxel spacing (mm) of the data a segmentation checkpoint is scored on: its config's ``spacing`` (the data
    were resampled to it), else the spacing read from its training data's headers; ``None`` for classification or
    when unknown."""
    cfg = dict(hp.get("config") or {})
    if cfg.get("task") != "segment":
        return None
    spacing = cfg.get("spacing") or (hp.get("data_info") or {}).get("spacing")
    return tuple(float(v) for v in spacing) if spacing else None


def model_label(hp: Optional[Dict[str, Any]], model) -> str:
    """A model's name for tables and legends: its class and group (e.g. ``EquivariantUNet (octa)``), not the
    checkpoint file's stem."""
    from ..models.specs import PICKLED_MODEL

    spec = (hp or {}).get("model_spec") or {}
    cls = spec.get("cls") or type(model).__name__
    if cls == PICKLED_MODEL:
        cls = type(model).__name__
    group = getattr(model, "group", None) or (spec.get("kwargs") or {}).get("group")
    return f"{cls} ({group})" if group else str(cls)


def evaluation_data(hp: Dict[str, Any], dataset: Optional[str] = None, image_dir=None, label_dir=None,
                    val_crop: Optional[int] = None, split: Optional[str] = None, max_items: Optional[int] = None,
                    seed: int = 0) -> EvaluationData:
    """The data to score a checkpoint's model on, prepared as in its training run.

    Args:
        hp: the checkpoint's hyper-parameters (``config``, ``data_info``, ``num_classes``; as
            :func:`equivox.training.load_model` returns them).
        dataset: score this dataset instead of the one the checkpoint was trained on.
        image_dir, label_dir: segmentation: score every image of this folder against its label (same names),
            prepared as in training (spacing, intensity from the checkpoint; ``intensity="auto"`` is chosen from
            these images).
        val_crop: with ``image_dir``: score a centre crop of this side (``None``: whole volumes).
        split: classification: ``"train"``, ``"val"`` or ``"test"`` (default); segmentation: ``"val"`` only (the
            training split is random patches of the same files).
        max_items: score at most this many items (classification: a stratified subsample drawn with ``seed``).

    Raises:
        ConfigError: options that do not go together (``image_dir`` without ``label_dir``, ``val_crop`` without
            ``image_dir``, a folder pair for a classification checkpoint, a segmentation split other than val).
        DataError: the data cannot be read (the message names the file).
    """
    import torch

    from ..config import ConfigError, TrainConfig
    from ..data import DataError, folder_pair_items
    from ..training import build_datasets, classification_arrays, subsample_indices
    from ..training.data import segmentation_eval_dataset

    if (image_dir is None) != (label_dir is None):
        raise ConfigError("give both image_dir and label_dir (a labelled folder pair to score)")
    if val_crop is not None and image_dir is None:
        raise ConfigError("val_crop is for scoring a labelled folder (image_dir / label_dir); the training data is "
                          "scored as the run validated it (its val_crop)")
    hp, size_note = as_trained(hp)
    notes = [size_note] if size_note else []
    cfg_d = dict(hp.get("config") or {})
    data_info = dict(hp.get("data_info") or {})
    if dataset is not None:
        cfg_d.update(dataset=dataset, image_dir=None, label_dir=None)
    cfg = TrainConfig.from_dict({**cfg_d, "resume": None, "overwrite": False})
    num_classes = int(hp["num_classes"])
    spacing = scored_spacing(hp)
    split = split or ("test" if cfg.task == "classify" else "val")
    if cfg.task != "classify" and split != "val":
        raise ConfigError(f"split {split!r}: segmentation checkpoints are scored on the validation split only (the "
                          "training split is random patches of the same files); score other labelled data as an "
                          "image/label folder pair")
    if cfg.task == "classify":
        if image_dir is not None:
            raise ConfigError("an image/label folder pair is for segmentation checkpoints; give a classification "
                              "dataset (a .npz file or a mesh folder)")
        x, y, _ = classification_arrays(cfg, split, data_info.get("intensity_scale"))
        idx = subsample_indices(y, max_items, seed)
        return EvaluationData("classify", f"{cfg.dataset} [{split}]", f"{len(idx)} items",
                              (x[idx], torch.as_tensor(y[idx])), num_classes, config=cfg, notes=notes)
    class_names = data_info.get("class_names")
    if image_dir is not None:
        items = folder_pair_items(image_dir, label_dir)
        if cfg.intensity == "auto":
            from ..data.medical import choose_intensity

            intensity, why = choose_intensity([it["image"] for it in items])
            notes.append(f"intensity auto -> {intensity} ({why})")
            cfg.intensity = intensity
        cfg.val_crop = val_crop
        ds = segmentation_eval_dataset(cfg, items, num_classes)
        where = f"{Path(image_dir).resolve()} + {Path(label_dir).resolve()}"
        seg_items = [ds[i] for i in range(min(len(ds), max_items or len(ds)))]
        description = f"{len(seg_items)} volumes, " + (f"centre {val_crop}^3 crops" if val_crop else "whole")
    else:
        try:
            _, val, info = build_datasets(cfg)
        except DataError as err:
            raise DataError(f"{err} (the data this checkpoint was trained on; score other data as an image/label "
                            "folder pair or another dataset)") from None
        class_names = class_names or info.class_names
        where = f"{cfg.image_dir or cfg.dataset} [{split}]"
        seg_items = [val[i] for i in range(min(len(val), max_items or len(val)))]
        description = f"{len(seg_items)} volumes"
    if class_names is not None and len(class_names) != num_classes:
        class_names = None
    return EvaluationData("segment", where, description, seg_items, num_classes, class_names=class_names,
                          spacing=spacing, config=cfg, notes=notes)
