"""The classification run of the harness: every competitor trained on upright data with
:func:`equivox.training.fit`, scored upright, under every grid-exact rotation of ``octa`` and under Haar-random
SO(3) rotations, one record per (dataset, competitor, train fraction, seed) (:func:`run_classification`).

The protocol is rotation-safe: data stay at their stored resolution (e.g.
32^3); a model that works at a lower ``input_size`` sees the volume through :class:`PooledInput` (average pooling by
an integer factor), so random rotations (and ``augment="so3"`` during training) resample the full-resolution grid
*before* any pooling. ``placement="sphere"`` zero-pads the stored grid by ``3/2`` first, so the bounding sphere of a
centred object fits in the box and no rotation cuts anything off (content lost per rotation is reported either
way). Grid rotations commute with the pooling and padding, so they stay exact. ``so3_protocol="mesh"`` (datasets
that offer their meshes, e.g. ``kicad_parts``) scores the random rotations on test items re-voxelized from the
rotated mesh (:func:`~equivox.benchmark.data.rotated_mesh_grids`: no resampling blur, nothing cut off) instead of
resampled grids; the upright and grid rows are the same under both protocols.
"""
from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..training.plateau import plateaued
from .competitors import BuildContext, build_network, check_order
from .data import ClassificationData, load_classification_data, mesh_dataset, nested_fractions, rotated_mesh_grids
from .progress import quiet_lightning, say
from .records import make_record
from .run_common import (DEFAULT_COMPETITORS, SO3_PROTOCOLS, _dataset_files, _evaluate_with_meshes, _fit_head,
                         _pose_rates, _scores_line, _wrap_canonicalizer, so3_content_lost)

__all__ = ["run_classification", "PooledInput"]


class PooledInput(nn.Module):
    """Zero-pad, optionally canonicalise the pose, then average-pool stored grids before a model.

    Args:
        model: the classifier (works on ``(S + 2 * pad) / factor`` cubes).
        factor: integer pooling factor. pad: zero voxels added on every side first.
        canonical: apply :class:`~equivox.nn.CanonicalPose` at the padded stored resolution.

    Shapes: ``(B, C, S, S, S) -> model(...)``. Padding and pooling commute with the 24 cube rotations (exact), so
    the wrapper keeps the model's invariance; rotations applied to its input act at the stored resolution.
    Attributes ``group``, ``out_channels`` and ``in_channels`` mirror the wrapped model.
    """

    def __init__(self, model: nn.Module, factor: int, pad: int = 0, canonical: bool = False):
        super().__init__()
        from ..nn.canonical import CanonicalPose

        self.model, self.factor, self.pad = model, int(factor), int(pad)
        self.pose = CanonicalPose() if canonical else None
        for attr in ("group", "out_channels", "in_channels"):
            if hasattr(model, attr):
                setattr(self, attr, getattr(model, attr))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad:
            x = F.pad(x, (self.pad,) * 6)
        if self.pose is not None:
            x = self.pose(x)
        return self.model(F.avg_pool3d(x, self.factor) if self.factor > 1 else x)


def _geometry(stored: int, input_size: int, placement: str) -> Tuple[int, int]:
    """``(pad, factor)`` so that ``(stored + 2 pad) / factor == input_size``."""
    if placement not in ("box", "sphere"):
        raise ValueError(f"placement must be 'box' or 'sphere', got {placement!r}")
    padded = stored if placement == "box" else int(math.ceil(stored * 1.5 / input_size)) * input_size
    if (padded - stored) % 2 or padded % input_size:
        raise ValueError(f"input_size {input_size} does not fit stored size {stored} with placement={placement!r} "
                         f"(padded size {padded} must be a multiple of input_size and differ by an even number)")
    return (padded - stored) // 2, padded // input_size


def run_classification(dataset="furniture", competitors: Sequence[str] = DEFAULT_COMPETITORS,
                       fractions: Sequence[float] = (1.0,), seeds: Sequence[int] = (0,), *, input_size: int = 16,
                       placement: str = "box", channels: Sequence[int] = (4, 8, 16), strides: Sequence[int] = (2, 2),
                       convs_per_level: int = 1, hidden_features: Sequence[int] = (64,), epochs: int = 30,
                       batch_size: int = 16, lr: float = 3e-3, equal_steps: bool = False,
                       until_plateau: bool = False, max_epochs: Optional[int] = None, n_random: int = 8,
                       so3_protocol: str = "grid", max_test: Optional[int] = None, metric: Optional[str] = None,
                       out: Optional[Path] = None, progress: bool = False, verbose: bool = True,
                       keep_models: bool = False) -> Dict:
    """Train and score every classification competitor for every train fraction and seed.

    Args:
        dataset: a name / path for :func:`~equivox.benchmark.load_classification_data`, or a
            :class:`~equivox.benchmark.ClassificationData`.
        competitors: registered names (:func:`~equivox.benchmark.competitor_names`); the ``octa``
            ``InvariantClassifier(channels, strides, ...)`` is the reference the plain rows are matched to.
        fractions: training fractions (nested, stratified; :func:`~equivox.benchmark.nested_fractions`). A data-
            efficiency curve is ``fractions=DATA_EFFICIENCY_FRACTIONS`` with three or more seeds.
        seeds: one run per seed (same seed: same subsets, initial weights and rotations for every competitor).
        input_size: the cube the models see (stored grids are average-pooled to it). placement: ``"box"`` or
            ``"sphere"`` (see the module docstring).
        channels, strides, convs_per_level, hidden_features: the reference classifier (``channels`` are fields).
        epochs, batch_size, lr: training (AdamW, best checkpoint by validation loss on the held-out val split);
            a competitor's ``train`` options override them.
        equal_steps: train a fraction ``f`` for ``ceil(epochs / f)`` epochs, so every fraction gets the optimizer
            steps of the full set (a data-efficiency curve then measures data, not training length).
        until_plateau, max_epochs: ``epochs`` becomes the minimum and every run trains on until its validation
            accuracy curve has reached its plateau (:func:`~equivox.training.plateaued`), at most ``max_epochs``
            (default ``3 * epochs``): the same rule for every competitor.
        n_random: random SO(3) rotations (seeded by the run's seed); max_test: a stratified subsample of the test
            split (fixed seed: the same items for every seed and competitor, so comparisons are paired).
        so3_protocol: how the random rotations act (:data:`SO3_PROTOCOLS`): ``"grid"`` resamples the stored
            grid (trilinear; the corners outside the inscribed sphere are cut, see ``content_lost_so3``);
            ``"mesh"`` rotates each test item's mesh by the same seeded matrices and voxelizes it with the
            dataset's rule (:func:`~equivox.benchmark.data.rotated_mesh_grids`, cached on disk; needs a
            registered dataset whose ``DatasetSpec`` has ``meshes``, e.g. ``kicad_parts``, else one
            ``DataError`` before any training). Upright and cube rows are the same under both.
        metric: ``"accuracy"`` or ``"auroc"`` (two classes); default the dataset's (AUROC for two classes). AUROC
            is not a mean over items, so its records carry no intervals: pass ``"accuracy"`` for paired verdicts.
        out: folder for run outputs (checkpoints, logs); default a temporary folder.
        keep_models: return the trained models in ``result["models"][(name, fraction, seed)]``.

    Returns:
        dict with ``records`` (:data:`~equivox.benchmark.RECORD_KEYS` plus ``so3_protocol``, ``content_lost_so3``,
        ``identity_rate``, ...), ``reports`` (:class:`~equivox.evaluation.RotationReport` per record), ``config``,
        ``caption``, ``models``.
    """
    from ..baselines import build_from_spec, count_parameters
    from ..evaluation import GroupTTA, evaluate_classification, rotation_set
    from ..training import ArrayClassificationDataset, DataInfo, TrainConfig, augmentation_transform, fit
    from ..training.data import subsample_indices

    quiet_lightning()
    data = dataset if isinstance(dataset, ClassificationData) else load_classification_data(dataset)
    comps = check_order(list(competitors), "classify")
    if metric is not None:
        if metric not in ("accuracy", "auroc"):
            raise ValueError(f"metric must be 'accuracy' or 'auroc', got {metric!r}")
        data.metric = metric
    if so3_protocol not in SO3_PROTOCOLS:
        raise ValueError(f"so3_protocol must be one of {SO3_PROTOCOLS}, got {so3_protocol!r}")
    if so3_protocol == "mesh":
        _check_mesh_protocol(data)
    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="equivox-accuracy-"))
    pad, factor = _geometry(int(data.x_train.shape[-1]), input_size, placement)
    k, c_in = len(data.class_names), int(data.x_train.shape[1])
    base_kwargs = dict(spatial_dims=3, in_channels=c_in, out_channels=k, channels=list(channels),
                       strides=list(strides), convs_per_level=convs_per_level, hidden_features=list(hidden_features))
    reference = build_from_spec({"cls": "InvariantClassifier", "kwargs": {**base_kwargs, "group": "octa"}})

    def padded(x):  # rotations (evaluation and augmentation) act on the padded stored grid: nothing is cut
        return F.pad(x, (pad,) * 6) if pad else x

    x_train, x_test, y_test = padded(data.x_train), padded(data.x_test), data.y_test
    test_index = None  # all test items
    if max_test is not None and max_test < len(y_test):
        test_index = subsample_indices(y_test, max_test, 2)
        x_test, y_test = x_test[test_index], y_test[test_index]
    val = ArrayClassificationDataset(padded(data.x_val), data.y_val, None, data.class_names)
    records, reports, models = [], [], {}
    n_runs, run = len(comps) * len(fractions) * len(seeds), 0
    for seed in seeds:
        rots = rotation_set("standard", group="octa", n_random=n_random, seed=seed)
        mesh_x = None
        if so3_protocol == "mesh":  # re-voxelized rotated meshes: nothing is cut off
            grids = rotated_mesh_grids(data.name, {r.name: r.matrix_array for r in rots if r.kind == "so3"},
                                       int(data.x_test.shape[-1]), test_index, verbose)
            mesh_x, lost = {name: padded(g) for name, g in grids.items()}, [0.0] * len(grids)
        else:
            lost = so3_content_lost(x_test, rots)
        subsets = nested_fractions(data.y_train, fractions, seed)
        for frac in fractions:
            idx = subsets[frac]
            trained: Dict[str, Tuple[nn.Module, float, int, list]] = {}
            for comp in comps:
                run += 1
                tag = f"[{run}/{n_runs}] {comp.name}, fraction {frac:g}, seed {seed}"
                if comp.tta_of:
                    model, secs, steps, curve = trained[comp.tta_of]
                    model = GroupTTA(model, "octa")  # around the trained PooledInput: rotations at stored size
                    say(f"{tag}: test-time augmentation of {comp.tta_of!r} (24 forward passes per item)", verbose)
                else:
                    if comp.frozen_of:
                        model = trained[comp.frozen_of][0]
                    else:
                        ctx = BuildContext("classify", c_in, k, "octa", reference, base_kwargs, seed, input_size)
                        net = build_network(comp, ctx)
                        model = PooledInput(net, factor, 0, comp.canonical and not comp.canonicalize)
                    if comp.canonicalize:
                        model = _wrap_canonicalizer(model, comp, "classify", seed)
                    if not comp.fits:  # a confidence canonicalizer: nothing to fit, the frozen model's cost
                        (_, secs, _, curve), steps = trained[comp.frozen_of], 0
                        secs += _fit_head(model, comp, [val.images],
                                          seed, tag, verbose)
                        trained[comp.name] = (model, secs, steps, curve)
                if comp.fits:
                    aug = augmentation_transform(comp.augment, ["image"], "octa", seed)  # at stored resolution
                    train = ArrayClassificationDataset(x_train[idx], data.y_train[idx], aug, data.class_names)
                    info = DataInfo(c_in, k, data.class_names, len(train), len(val), (input_size,) * 3)
                    opts = {"epochs": math.ceil(epochs / frac - 1e-9) if equal_steps else epochs,
                            "batch_size": batch_size, "lr": lr, "until_plateau": until_plateau,
                            "max_epochs": max_epochs, **comp.train}
                    cfg = TrainConfig(task="classify", dataset=data.name, input_size=input_size, seed=seed,
                                      progress=progress, **opts,
                                      out_dir=str(out / f"{comp.name}-f{frac:g}-s{seed}".replace(" ", "_")),
                                      extra={"model_summary": False})
                    say(f"{tag}: training {count_parameters(model)} parameters on {len(train)} items", verbose)
                    res = fit(cfg, model=model, train_data=train, val_data=val, info=info)
                    model, secs, steps = res.model, res.seconds, res.global_step
                    if comp.frozen_of:  # its cost: the frozen model's training and the canonicalizer's fitting
                        secs += trained[comp.frozen_of][1]
                    curve = res.curve
                    trained[comp.name] = (model, secs, steps, curve)
                t = time.time()
                rep = _evaluate_with_meshes(evaluate_classification, model, (x_test, torch.as_tensor(y_test)), rots,
                                            mesh_x and {n: (g, torch.as_tensor(y_test)) for n, g in mesh_x.items()},
                                            batch_size=64, num_classes=k, progress=progress, name=comp.name,
                                            metric=data.metric, check_equivariance=True)
                identity, equivalent = _pose_rates(model, [x_test])
                rec = make_record(dataset=data.name, task="classify", comp=comp, report=rep, seed=seed,
                                  train_fraction=frac, n_train=len(idx), params=count_parameters(model),
                                  train_seconds=secs, train_steps=steps, eval_seconds=time.time() - t,
                                  canonical_pose=comp.canonical, identity_rate=identity,
                                  equivalent_rate=equivalent, input_size=input_size,
                                  placement=placement, so3_protocol=so3_protocol,
                                  content_lost_so3=float(np.mean(lost)) if lost else None, curve=curve,
                                  plateau=plateaued(curve))
                say(_scores_line(rec) + (f"; identity picked for {identity:.0%} of upright test items, an "
                                         f"equivalent pose for {equivalent:.0%}" if identity is not None else ""),
                    verbose)
                records.append(rec)
                reports.append(rep)
                if keep_models:
                    models[(comp.name, frac, seed)] = model
    config = dict(task="classify", dataset=data.name, metric=data.metric, competitors=list(competitors),
                  fractions=list(fractions),
                  seeds=list(seeds), input_size=input_size, placement=placement, channels=list(channels),
                  strides=list(strides), convs_per_level=convs_per_level, hidden_features=list(hidden_features),
                  epochs=epochs, equal_steps=equal_steps, until_plateau=until_plateau, max_epochs=max_epochs,
                  batch_size=batch_size, lr=lr, n_random=n_random,
                  so3_protocol=so3_protocol, max_test=max_test, n_train=len(data.y_train), n_val=len(data.y_val),
                  n_test=len(y_test),
                  dataset_files=_dataset_files(data.name), threads=torch.get_num_threads())
    caption = data.caption + ("; random SO(3) rows: each test mesh rotated, then voxelized again (mesh protocol)"
                              if so3_protocol == "mesh" and n_random else "")
    return {"records": records, "reports": reports, "config": config, "caption": caption, "models": models}


def _check_mesh_protocol(data: ClassificationData) -> None:
    """Fail before any training when the mesh protocol cannot run on ``data``: no registered dataset with meshes
    (one line), a mesh list that does not match the test split, stored grids that are not 0 / 1 occupancies (the
    re-voxelized items are), or a first test mesh that, voxelized upright, differs from its stored grid in more
    than 5 % of the occupied voxels (``mesh_options`` do not rebuild the stored grids)."""
    from ..data import DataError

    spec = mesh_dataset(data.name)
    n_mesh, n_test = len(spec.mesh_paths("test")), len(data.y_test)
    if n_mesh != n_test:
        raise DataError(f"dataset {spec.name!r}: {n_mesh} test meshes for {n_test} test items; the mesh protocol "
                        "needs one mesh per test item, in order")
    if not bool(((data.x_test == 0) | (data.x_test == 1)).all()):
        raise DataError(f"dataset {spec.name!r}: the mesh protocol compares re-voxelized 0/1 occupancies with the "
                        "stored test grids, which hold other values")
    stored = data.x_test[0]
    upright = rotated_mesh_grids(spec.name, {"identity": np.eye(3)}, int(stored.shape[-1]), [0], False)["identity"][0]
    differ = int((upright != stored).sum())
    if differ > 0.05 * max(1, int(stored.sum())):
        raise DataError(f"dataset {spec.name!r}: test mesh 0 voxelized upright with mesh_options "
                        f"{spec.mesh_options} differs from its stored grid in {differ} of {int(stored.sum())} "
                        "occupied voxels; the options must be those the stored grids were built with")
