"""The harness's data: the loaders and intensity rules of ``equivox train``, from :mod:`equivox.data`.

Classification: :func:`equivox.data.classification_raw` and :func:`equivox.data.classification_grids` read a
registered dataset (:func:`equivox.data.dataset_names`), a ``.npz`` file (MedMNIST-3D keys, or ``images``/``labels``)
or a mesh folder, at the stored resolution (``input_size=None``), with the training path's label checks and intensity
rule (integer images up to 255 divided by 255, decided on the training split for every split). Checkpoints are
selected on the dataset's ``val`` split, unless that split is the test split (the bundled furniture, a ``.npz``
without one): then 15 % of the training split (stratified, fixed seed) is held out instead. Scores are on the
``test`` split only.

Mesh-level SO(3) protocol (:func:`rotated_mesh_grids`): for a dataset that offers its meshes (``DatasetSpec.meshes``,
e.g. ``kicad_parts``), every test item is re-voxelized from its mesh rotated by each random rotation, with the
dataset's own voxelization rule (``DatasetSpec.mesh_options``, grid side = the stored one): no resampling blur.

Segmentation: the registered dataset's ``test`` volumes (the training path's loader and downsampling), each centre
cropped to a cube or whole; every volume is one scored item, except crops without any foreground voxel (no Dice is
defined there; the run's description counts them). Training uses ``equivox train``'s own datasets
(random patches of the ``train`` volumes, validation on the ``val`` volumes).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from ..data.labels import left_right_pairs  # the rule lives with the data; re-exported for the harness's users

__all__ = ["ClassificationData", "SegmentationData", "load_classification_data", "load_segmentation_data",
           "left_right_pairs", "rotated_mesh_grids", "rotated_mesh_labels", "mesh_dataset",
           "nested_fractions", "stratified_holdout", "VAL_FRACTION", "DATA_EFFICIENCY_FRACTIONS"]

#: share of the training split held out (stratified, seed 1234) for checkpoint selection
VAL_FRACTION = 0.15
#: training fractions of the data-efficiency curve (``benchmarks/accuracy.py --data-efficiency``)
DATA_EFFICIENCY_FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass
class ClassificationData:
    """Splits of a classification dataset at stored resolution: images ``(N, C, S, S, S)`` float32 (the training
    path's intensity rule: [0, 1] for 8-bit data), labels ``(N,)`` int64. ``val`` is for checkpoint selection
    only; scores are on ``test``."""

    name: str
    x_train: torch.Tensor
    y_train: np.ndarray
    x_val: torch.Tensor
    y_val: np.ndarray
    x_test: torch.Tensor
    y_test: np.ndarray
    class_names: List[str]
    metric: str = "accuracy"
    caption: str = ""


@dataclass
class SegmentationData:
    """Scored volumes of a segmentation dataset: ``volumes`` = ``[{"image": (C, D, H, W), "label": (1, D, H, W)}]``
    (each one item of the per-item scores), ``class_names`` (index = class, background first), ``class_swaps``: the
    left/right class pairs a mirror reflection exchanges (:func:`equivox.data.left_right_pairs` of the names)."""

    name: str
    volumes: List[Dict[str, torch.Tensor]]
    class_names: List[str]
    in_channels: int
    caption: str = ""
    class_swaps: Tuple[Tuple[int, int], ...] = ()


def stratified_holdout(y: np.ndarray, fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(keep, hold)`` index arrays: ``round(fraction * n_c)`` (at least 1) items of each class with more than two
    items held out, by one seeded permutation per class."""
    rng = np.random.default_rng(seed)
    hold = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        hold.extend(idx[: max(1, int(round(fraction * len(idx))))] if len(idx) > 2 else [])
    hold = np.sort(np.asarray(hold, dtype=int))
    return np.setdiff1d(np.arange(len(y)), hold), hold


def load_classification_data(name: str) -> ClassificationData:
    """Load a classification dataset through the training path (see the module docstring): a registered name
    (e.g. ``"furniture"``, ``"lidc"``), a ``.npz`` file or a mesh folder. Metric: AUROC for two classes, else
    accuracy."""
    from ..data import classification_grids, classification_raw, dataset_spec, get_dataset, intensity_scale

    spec = dataset_spec(str(name), "classify")  # unknown name or wrong task: fail before loading anything
    raw_tr, raw_va, raw_te = (classification_raw(str(name), s, spec) for s in ("train", "val", "test"))
    scale = intensity_scale(raw_tr[0])  # one decision, on the training split, for every split

    def grids(raw, split):  # stored resolution: the models pool inside (PooledInput)
        return classification_grids(*raw[:3], f"{name} [{split}]", scale)

    x, y, names = grids(raw_tr, "train")
    x_te, y_te, _ = grids(raw_te, "test")
    own_val = not (raw_va[0].shape == raw_te[0].shape and np.array_equal(raw_va[0], raw_te[0]))
    if own_val:  # the dataset's own validation split
        x_va, y_va, _ = grids(raw_va, "val")
    else:  # its "val" is the test split: hold out part of train instead, never select on test items
        keep, hold = stratified_holdout(y, VAL_FRACTION, seed=1234)
        x, y, x_va, y_va = x[keep], y[keep], x[hold], y[hold]
    k = max(len(names), int(max(y.max(), y_te.max())) + 1)
    names = list(names) + [str(i) for i in range(len(names), k)]
    about = (get_dataset(spec.name).metadata()["description"].rstrip(".") if spec is not None else str(name))
    val = "its val split" if own_val else f"val = {VAL_FRACTION:.0%} of train, held out"
    caption = (f"{about} ({len(y)} train / {len(y_va)} val / {len(y_te)} test; {val}; scores on the test split"
               + (f"; intensities / {scale:g}" if scale != 1 else "") + ")")
    return ClassificationData(spec.name if spec is not None else str(name), x, y, x_va, y_va, x_te, y_te, names,
                              "auroc" if k == 2 else "accuracy", caption)


def mesh_dataset(name: str):
    """The registered dataset ``name`` that offers meshes (its :class:`~equivox.data.DatasetSpec`).

    Raises:
        DataError: ``name`` is no registered dataset (a file, a folder, an unregistered
            :class:`ClassificationData`), or its spec has no ``meshes`` (one line naming it).
    """
    from ..data import DataError
    from ..data.registry import find_dataset

    spec = find_dataset(str(name))
    if spec is None:
        raise DataError(f"dataset {name!r} is not a registered dataset, so it offers no meshes: the mesh-level SO(3) "
                        "protocol needs a DatasetSpec with meshes=...; use so3_protocol='grid'")
    if spec.meshes is None:
        spec.mesh_paths("test")  # raises the one-line error naming the dataset
    return spec


def rotated_mesh_grids(name: str, rotations: Mapping[str, np.ndarray], size: int,
                       index: Optional[Sequence[int]] = None, verbose: bool = True) -> Dict[str, torch.Tensor]:
    """Test items of a registered classification dataset voxelized from their meshes under each rotation.

    Args:
        name: a registered dataset offering meshes (:func:`mesh_dataset`).
        rotations: ``{rotation name: 3x3 matrix}`` in the grid's ``(d, h, w)`` frame (the convention of
            :class:`~equivox.evaluation.Rotation` ``.matrix``: the object moves by ``M`` about its bounding-box
            centre), e.g. the ``so3`` rotations of :func:`~equivox.evaluation.rotation_set`.
        size: grid side (the stored one). index: the test items to voxelize (default all), in this order.
        verbose: progress lines (:func:`~equivox.benchmark.progress.say`) about every tenth of the items.

    Returns:
        ``{rotation name: float32 (N, 1, size, size, size)}`` occupancies (0 / 1), voxelized by
        :func:`~equivox.data.voxelize_mesh` with the dataset's ``mesh_options`` (the placement rule of its stored
        grids: under ``placement="box"`` each rotated mesh's bounding box is re-fitted to the grid, so nothing is
        cut off). Each grid is cached on disk (:func:`equivox.cache.cached_tensors`, keyed by the SHA-256 of the
        mesh file, the matrix, the options and the trimesh version), so a rerun voxelizes nothing.
    """
    import trimesh

    from ..data import load_mesh, voxelize_mesh

    def voxelize(path, m, opts, parsed):
        if "mesh" not in parsed:
            parsed["mesh"] = load_mesh(path)
        return voxelize_mesh(parsed["mesh"], size=size, rotation=m, **opts)

    grids = _rotated_meshes(name, rotations, size, index, verbose, f"grid-v1|trimesh={trimesh.__version__}",
                            voxelize)
    return {r: torch.from_numpy((g[:, None] > 0).astype(np.float32)) for r, g in grids.items()}


def rotated_mesh_labels(name: str, rotations: Mapping[str, np.ndarray], size: int,
                        index: Optional[Sequence[int]] = None, verbose: bool = True) -> Dict[str, torch.Tensor]:
    """Test items of a registered segmentation dataset labelled from their meshes under each rotation: as
    :func:`rotated_mesh_grids`, but each shape's material gives its voxels' class
    (:func:`~equivox.data.material_class`, :func:`~equivox.data.voxelize_labelled_shapes` with the dataset's
    ``mesh_options``). Returns ``{rotation name: int64 (N, 1, size, size, size)}`` label maps (image = label > 0)."""
    from ..data import material_class, parse_vrml_shapes, voxelize_labelled_shapes

    def voxelize(path, m, opts, parsed):
        if "shapes" not in parsed:
            shapes = parse_vrml_shapes(path.read_text(errors="replace"), where=str(path))
            parsed["shapes"] = [(material_class(mat), v, f) for mat, v, f in shapes]
        return voxelize_labelled_shapes(parsed["shapes"], size=size, rotation=m, **opts)

    labels = _rotated_meshes(name, rotations, size, index, verbose, "labels-v2", voxelize)
    return {r: torch.from_numpy(g[:, None].astype(np.int64)) for r, g in labels.items()}


def _rotated_meshes(name, rotations, size, index, verbose, rule_version: str, voxelize) -> Dict[str, np.ndarray]:
    """``{rotation: uint8 (N, size, size, size)}`` of ``voxelize(path, matrix, mesh_options, parsed)`` per test
    item and rotation (``parsed``: a per-item dict for the parsed mesh), each grid cached on disk by the mesh file's
    SHA-256, the matrix, the options and ``rule_version``."""
    from ..cache import cached_tensors
    from .progress import say

    spec = mesh_dataset(name)
    paths = spec.mesh_paths("test")
    opts = dict(spec.mesh_options)
    items = list(range(len(paths))) if index is None else [int(i) for i in index]
    mats = {r: np.asarray(m, dtype=np.float64).reshape(3, 3) for r, m in rotations.items()}
    out = {r: np.zeros((len(items), size, size, size), dtype=np.uint8) for r in mats}
    rule = ",".join(f"{k}={opts[k]}" for k in sorted(opts))
    built, t0, step = 0, time.time(), max(1, len(items) // 10)
    say(f"mesh protocol: voxelizing {len(items)} {spec.name} test meshes under {len(mats)} rotation(s) at {size}^3 "
        f"({rule}; cached on disk)", verbose and bool(mats))
    for n, i in enumerate(items):
        digest = hashlib.sha256(paths[i].read_bytes()).hexdigest()
        parsed: Dict = {}
        for r, m in mats.items():
            key = f"equivox-mesh-{rule_version}|{digest}|size={size}|{rule}|rotation={m.tobytes().hex()}"

            def build(m=m, path=paths[i]):
                nonlocal built
                built += 1
                return {"grid": torch.from_numpy(np.asarray(voxelize(path, m, opts, parsed), dtype=np.uint8))}

            out[r][n] = cached_tensors(key, build)["grid"].numpy()
        if mats and ((n + 1) % step == 0 or n + 1 == len(items)):
            say(f"  {n + 1}/{len(items)} meshes: {built} grids voxelized, "
                f"{(n + 1) * len(mats) - built} from the cache, {time.time() - t0:.0f} s", verbose)
    return out


def load_segmentation_data(name: str, downsample: int, crop: Optional[int], multiple: int = 1) -> SegmentationData:
    """The scored volumes of a registered segmentation dataset (its ``test`` split, downsampled like training),
    centre-cropped to a ``crop``-sided cube, or with ``crop=None`` whole, each axis centre-trimmed to a multiple of
    ``multiple`` (the network's total stride)."""
    from ..data import center_crop, get_dataset, registered_volumes

    spec = get_dataset(name, "segmentation")
    vols, label_names = registered_volumes(spec, "test", downsample)
    train_names = registered_volumes(spec, "train", downsample)[1] if not label_names else {}
    label_names = {**train_names, **label_names}
    k = max([max(label_names, default=0)] + [int(lab.max()) for _, lab in vols]) + 1

    def size(img):
        return (crop,) * 3 if crop is not None else tuple(n // multiple * multiple for n in img.shape[-3:])

    crops = [{"image": center_crop(img, size(img)), "label": center_crop(lab, size(img))} for img, lab in vols]
    volumes = [v for v in crops if bool((v["label"] > 0).any())]
    if not volumes:
        raise ValueError(f"dataset {name!r}: no scored test volume has foreground")
    about = spec.metadata()["description"].rstrip(".")
    names = [label_names.get(i, str(i)) for i in range(k)]
    skipped = f", {len(crops) - len(volumes)} background-only crop(s) skipped" if len(volumes) < len(crops) else ""
    return SegmentationData(spec.name, volumes, names, int(vols[0][0].shape[0]),
                            f"{about}; {len(volumes)} test volume(s), "
                            f"{f'centre {crop}^3' if crop else 'whole'}{skipped}",
                            left_right_pairs(names))


def nested_fractions(labels: np.ndarray, fractions: Sequence[float], seed: int) -> Dict[float, np.ndarray]:
    """Stratified, nested subsets: for each fraction ``f`` the first ``max(1, round(f * n_c))`` items of one seeded
    permutation of each class ``c``. Smaller fractions are subsets of larger ones (same seed)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    perms = {c: rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)}
    out = {}
    for f in fractions:
        if not 0 < f <= 1:
            raise ValueError(f"train fractions must be in (0, 1], got {f}")
        out[f] = np.sort(np.concatenate([p[: max(1, int(round(f * len(p))))] for p in perms.values()]))
    return out
