"""Where a dataset's arrays come from: a registered name (:mod:`equivox.data.registry`), a ``.npz`` file or a
ModelNet-style mesh folder (classification), a registered segmentation dataset's volumes.

What comes back is as stored (no rescaling, no resizing): classification ``(images (N, [C,] D, H, W), labels (N,),
class names or None, skipped files)``; segmentation ``[(image (C, D, H, W), label (1, D, H, W))]`` with the label
names. Training (:mod:`equivox.training.data`) and the benchmark harness (:mod:`equivox.benchmark.data`) both read
through these functions, so a dataset is prepared the same way wherever it is scored.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from .errors import DataError
from .grids import downsample_volume
from .registry import DatasetSpec, dataset_names, find_dataset, get_dataset, unknown_dataset_message

__all__ = ["dataset_spec", "classification_raw", "npz_classification", "registered_volumes", "bundled_volume"]

_TASK_OF = {"classify": "classification", "segment": "segmentation"}
#: what ``dataset`` may be besides a registered name, per task (for error messages)
_FILE_FORMS = {"classify": "or give a path: a .npz file (MedMNIST-3D layout or 'images'/'labels' arrays) or a "
                           "ModelNet-style mesh folder",
               "segment": "or give a path: a Decathlon folder (with dataset.json), or image_dir + label_dir"}
#: "look the dataset up" (``spec=None`` means "files, no registered dataset")
_LOOKUP = object()


def _looks_like_path(name: str) -> bool:
    return "/" in name or "\\" in name or bool(Path(name).suffix) or Path(name).exists()


def dataset_spec(dataset: str, task: str) -> Optional[DatasetSpec]:
    """The registered :class:`~equivox.data.DatasetSpec` of ``dataset`` for ``task`` (``"classify"`` /
    ``"segment"``), or ``None`` when ``dataset`` is a path (its files are checked when loaded).

    Raises:
        DataError: ``dataset`` is neither registered nor a path (the message lists the registered datasets of the
            task), or it is registered for the other task.
    """
    spec = find_dataset(dataset)
    if spec is None:
        if isinstance(dataset, str) and dataset and _looks_like_path(dataset):
            return None
        raise DataError(unknown_dataset_message(dataset, _TASK_OF[task], _FILE_FORMS[task]))
    if spec.task != _TASK_OF[task]:
        other = "segment" if task == "classify" else "classify"
        raise DataError(f"dataset {dataset!r} is a {spec.task} dataset; use task {other!r}")
    return spec


def classification_raw(dataset: str, split: str, spec=_LOOKUP, progress: bool = True, strict: bool = False
                       ) -> Tuple[np.ndarray, np.ndarray, Optional[List[str]], Dict[str, str]]:
    """``(images, labels, class names or None, skipped {file: reason})`` of ``split`` (``"train"``, ``"val"``,
    ``"test"``) of a classification dataset, as stored (no rescaling).

    Args:
        dataset: a registered name, a ``.npz`` file (MedMNIST-3D keys, or ``images`` / ``labels``: a fixed 80/20
            split, seed 0) or a mesh folder (voxelized and cached, :class:`~equivox.data.MeshFolderVoxels`; its
            ``"train"`` split trains, ``"test"`` serves the others).
        spec: the dataset's spec (``None``: ``dataset`` is a path) when the caller has resolved it; default: looked
            up (:func:`dataset_spec`).
        progress, strict: of a mesh folder (progress bar; unusable files raise instead of being skipped).

    Raises:
        DataError: naming the dataset: unknown name, missing or unreadable file, wrong keys.
    """
    if spec is _LOOKUP:
        spec = dataset_spec(dataset, "classify")
    skipped: Dict[str, str] = {}
    if spec is not None:
        d = spec.load_split(split)
        x, y, names = d["images"], d["labels"], d["class_names"]
    else:
        p = Path(dataset)
        if p.suffix == ".npz":
            x, y = npz_classification(p, split)
            names = None
        elif p.is_dir():
            from .mesh_folders import MeshFolderVoxels

            ds = MeshFolderVoxels(p, split="train" if split == "train" else "test", progress=progress, strict=strict)
            x, y = np.asarray(ds.voxels), np.asarray(ds.labels)
            names = getattr(ds, "class_names", None)
            skipped = {str(f): r for f, r in ds.skipped}
        else:
            raise DataError(f"dataset {dataset!r} is neither a registered classification dataset "
                            f"({', '.join(dataset_names('classification'))}), a .npz file nor an existing mesh folder")
    return np.asarray(x), np.asarray(y), names, skipped


def npz_classification(p: Path, split: str) -> Tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` of ``split`` from a ``.npz``: MedMNIST-3D keys (``train_images``, ...; ``"val"`` is the
    test split when the file has no ``val_images``), or ``images`` / ``labels`` with a deterministic 80/20 split
    (permutation seed 0; ``"train"``: the 80 %, any other split the 20 %), as stored.

    Raises:
        DataError: the file is missing, truncated or not a ``.npz``, or has neither layout.
    """
    p = Path(p)
    if not p.is_file():
        raise DataError(f"classification data file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as z:
            keys = list(z.keys())
    except Exception as err:  # zipfile.BadZipFile (truncated), pickled objects, not an archive
        raise DataError(f"cannot read {p} (truncated or not a .npz archive): {type(err).__name__}: {err}") from None
    if f"{split}_images" in keys or "train_images" in keys:
        from .medmnist import load_medmnist3d

        if split == "val" and "val_images" not in keys:
            split = "test"
        return load_medmnist3d(p, split)
    if "images" in keys and "labels" in keys:
        try:
            with np.load(p, allow_pickle=False) as z:
                x, y = z["images"], z["labels"]
        except Exception as err:
            raise DataError(f"cannot read {p} (truncated or corrupt .npz archive): {type(err).__name__}: "
                            f"{err}") from None
        # no split in the file: deterministic 80/20 split
        idx = np.random.default_rng(0).permutation(len(y))
        cut = int(round(0.8 * len(y)))
        sel = idx[:cut] if split == "train" else idx[cut:]
        return x[np.sort(sel)], y[np.sort(sel)]
    raise DataError(f"{p}: expected MedMNIST-3D keys (train_images, train_labels, ...) or 'images' and 'labels', "
                    f"found {keys}")


def registered_volumes(spec: DatasetSpec, split: str, downsample: int = 1
                       ) -> Tuple[List[Tuple[torch.Tensor, torch.Tensor]], Dict[int, str]]:
    """``(volumes [(image (C, D, H, W), label (1, D, H, W))], label names {index: name})`` of a registered
    segmentation dataset's ``split``, each volume shrunk by ``downsample`` (:func:`~equivox.data.downsample_volume`:
    image averaged, label sampled)."""
    d = spec.load_split(split)
    return [downsample_volume(img, lab, downsample) for img, lab in d["volumes"]], d["label_names"]


def bundled_volume(name: str, downsample: int = 1) -> Tuple[torch.Tensor, torch.Tensor, Dict[int, str]]:
    """``(image (C, D, H, W), label (1, D, H, W) long, label_names)`` of a registered segmentation dataset's
    first training volume, optionally downsampled (the bundled chest CT: HU window [-1000, 1000] scaled to
    [0, 1]; the bundled brain atlas: intensity / 255). Raises :class:`DataError` listing the registered segmentation
    datasets for another name."""
    vols, names = registered_volumes(get_dataset(name, "segmentation"), "train", downsample)
    return vols[0][0], vols[0][1], dict(names)
