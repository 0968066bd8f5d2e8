"""Training equivox (or any) 3D models with PyTorch Lightning.

* :class:`TrainConfig` -- one dataclass for data, model and engine options (YAML-loadable).
* :func:`fit` -- seeded training with CSV metrics, best/last checkpoints, resume, DDP pass-through.
* :class:`ClassificationModule`, :class:`SegmentationModule` -- Lightning modules wrapping any ``nn.Module``.
* :func:`build_datasets` (the data preparation of :mod:`equivox.data`, resolved once per config by
  :func:`resolve_data_settings`), :func:`build_model` (the model role ``arch`` names, :mod:`equivox.models`),
  :func:`load_checkpoint` (the one loader, :func:`equivox.models.load_model`).
* :func:`plateaued`, :func:`learning_curve` -- when a run has learned what it can (``until_plateau``).
* :func:`fit_canonicalizer` (a canonicalizer for a frozen trained model), :func:`load_model` (equivox checkpoint,
  MONAI bundle, pickled or TorchScript model).
"""
from .canonical import fit_canonicalizer, load_model
from .config import TrainConfig, load_yaml_config
from .data import (ArrayClassificationDataset, DataInfo, augmentation_transform, build_datasets, bundled_volume,
                   center_crop, classification_arrays, resize_grids, resolve_data_settings, subsample_indices)
from .fit import FitResult, build_model, default_precision, fit, load_checkpoint, make_trainer
from .modules import ClassificationModule, SegmentationModule, split_batch
from .plateau import PLATEAU_GAIN, learning_curve, plateaued

__all__ = [
    "TrainConfig", "load_yaml_config",
    "ArrayClassificationDataset", "DataInfo", "augmentation_transform", "build_datasets", "bundled_volume",
    "center_crop", "classification_arrays", "resize_grids", "resolve_data_settings", "subsample_indices",
    "FitResult", "build_model", "default_precision", "fit", "load_checkpoint", "make_trainer",
    "ClassificationModule", "SegmentationModule", "split_batch", "fit_canonicalizer", "load_model",
    "PLATEAU_GAIN", "learning_curve", "plateaued",
]
