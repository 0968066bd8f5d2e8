"""Run competitors: train each on upright data with :func:`equivox.training.fit`, score it upright, under every
grid-exact rotation of ``octa`` and under Haar-random SO(3) rotations, and return one record
(:mod:`equivox.benchmark.records`) per (dataset, competitor, train fraction, seed).

Classification (:func:`run_classification`), rotation-safe protocol: data stay at their stored resolution (e.g.
32^3); a model that works at a lower ``input_size`` sees the volume through :class:`PooledInput` (average pooling by
an integer factor), so random rotations (and ``augment="so3"`` during training) resample the full-resolution grid
*before* any pooling. ``placement="sphere"`` zero-pads the stored grid by ``3/2`` first, so the bounding sphere of a
centred object fits in the box and no rotation cuts anything off (content lost per rotation is reported either
way). Grid rotations commute with the pooling and padding, so they stay exact. ``so3_protocol="mesh"`` (datasets
that offer their meshes, e.g. ``kicad_parts``) scores the random rotations on test items re-voxelized from the
rotated mesh (:func:`~equivox.benchmark.data.rotated_mesh_grids`: no resampling blur, nothing cut off) instead of
resampled grids; the upright and grid rows are the same under both protocols.

Segmentation (:func:`run_segmentation`): training on random patches of the dataset's training volumes (the
``equivox train`` datasets, same seeds and steps for every competitor), scored on its test volumes, image and
label rotated together (mean foreground Dice; per-class Dice and the validation learning curve are kept too).
"""
from __future__ import annotations

import csv
import math
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .competitors import CANONICALIZER, BuildContext, build_network, check_order
from .data import (ClassificationData, load_classification_data, load_segmentation_data, mesh_dataset,
                   nested_fractions, rotated_mesh_grids, rotated_mesh_labels)
from .progress import quiet_lightning, say
from ..training.plateau import PLATEAU_GAIN, learning_curve, plateaued, run_curve, curve_key
from .records import make_record

__all__ = ["run_classification", "run_segmentation", "PooledInput", "so3_content_lost", "learning_curve", "plateaued",
           "PLATEAU_GAIN",
           "DEFAULT_COMPETITORS", "SO3_PROTOCOLS"]

#: how the random SO(3) rows of a classification run rotate a test item: ``"grid"`` resamples the stored grid
#: (trilinear, corners cut), ``"mesh"`` rotates the item's mesh and voxelizes it again (datasets with meshes)
SO3_PROTOCOLS = ("grid", "mesh")
#: whole test volumes are trimmed to multiples of this, so every U-Net row takes them (MONAI's UNet row has one
#: stride-2 level more than the reference; three levels fit)
WHOLE_VOLUME_MULTIPLE = 8

#: the rows of a run that names none: the reference, its parameter-matched twin, the twin + grid augmentation
DEFAULT_COMPETITORS = ("equivariant (octa)", "plain (matched params)", "plain + grid aug")


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


def so3_content_lost(x: torch.Tensor, rotations) -> List[float]:
    """Mean fraction of occupancy mass lost per random rotation (``1 - sum(R x) / sum(x)``, items ``(N, 1, ...)``):
    what rotating the box cut off (0 when everything lies inside the inscribed sphere)."""
    total = x.sum(dim=(1, 2, 3, 4)).clamp_min(1e-12)
    out = []
    for r in rotations:
        if r.kind == "so3":
            out.append(float((1 - r.apply_image(x).sum(dim=(1, 2, 3, 4)) / total).clamp_min(0).mean()))
    return out


def _pose_rates(model: nn.Module, batches: Sequence[torch.Tensor]) -> Tuple[Optional[float], Optional[float]]:
    """A canonicalized model's identity rate and equivalent-pose rate (``Canonicalized.identity_rate`` /
    ``equivalent_rate``) over the items of ``batches`` (``(B, C, D, H, W)`` each; volumes of different shapes in
    separate batches), weighted by items; ``(None, None)`` for other models."""
    if not hasattr(model, "identity_rate"):
        return None, None
    n = sum(len(b) for b in batches)
    identity = sum(model.identity_rate(b) * len(b) for b in batches) / n
    equivalent = sum(model.equivalent_rate(b) * len(b) for b in batches) / n
    return identity, equivalent


def _f(v) -> str:
    return "  -  " if v is None else f"{v:.3f}"


def _scores_line(rec: Dict) -> str:
    ci = rec.get("upright_ci")
    return (f"    {rec['metric']} upright {_f(rec['upright'])}"
            + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
            + f"  cube mean {_f(rec['mean_grid'])} worst {_f(rec['worst_grid'])}  so3 mean {_f(rec['mean_so3'])} "
              f"worst {_f(rec['worst_so3'])}  ({rec['train_seconds']:.0f} s train, {rec['n_test']} test items)")


def _evaluate_with_meshes(evaluate, model: nn.Module, data, rotations, mesh_data, **kw):
    """``evaluate(model, data, rotations, **kw)`` (:func:`~equivox.evaluation.evaluate_classification` or
    :func:`~equivox.evaluation.evaluate_segmentation`); with ``mesh_data`` (``{so3 rotation name: data}``, the mesh
    protocol: the items re-voxelized from their rotated meshes) each ``so3`` row is scored instead on its
    re-voxelized items, unrotated, keeping the row's name, kind and place (rows and per-item scores)."""
    from ..evaluation import Rotation, RotationReport

    if mesh_data is None:
        return evaluate(model, data, rotations, **kw)
    rep = evaluate(model, data, [r for r in rotations if r.kind != "so3"], **kw)
    kw = {**kw, "check_equivariance": False}
    rows, per_item, seconds = {r["rotation"]: r for r in rep.rows}, dict(rep.per_item), rep.meta["seconds"]
    for r in rotations:
        if r.kind == "so3":
            part = evaluate(model, mesh_data[r.name], [Rotation.identity()], **kw)
            rows[r.name] = {**part.rows[0], "rotation": r.name, "kind": "so3", "exact": False}
            per_item[r.name] = part.per_item["identity"]
            seconds += part.meta["seconds"]
    meta = {**rep.meta, "n_rotations": len(rotations), "seconds": round(seconds, 3), "so3_protocol": "mesh"}
    return RotationReport(rep.name, rep.metric, [rows[r.name] for r in rotations], rep.equivariance_error,
                          rep.element_errors, meta, {r.name: per_item[r.name] for r in rotations})


def _fit_head(model: nn.Module, comp, val_images, seed: int, tag: str, verbose: bool) -> float:
    """A calibrated canonicalizer's head fitted on the validation items (never the test items); seconds spent
    (0 for a confidence canonicalizer, which has nothing to fit)."""
    if comp.scorer != "calibrated":
        say(f"{tag}: nothing to fit ({comp.eval_cost} forward passes per item)", verbose)
        return 0.0
    from ..canonicalization import fit_upright_head

    info = fit_upright_head(model, val_images, seed=seed)
    say(f"{tag}: upright head fitted on {info['items']} validation items in {info['seconds']:.0f} s (upright copy "
        f"scored highest for {info['identity_rate']:.0%} of them; {comp.eval_cost} forward passes per item)", verbose)
    return float(info["seconds"])


def _wrap_canonicalizer(model: nn.Module, comp, task: str, seed: int) -> nn.Module:
    from ..canonicalization import canonicalize

    torch.manual_seed(seed + 1)
    kw = dict(canonical_pose=comp.canonical) if task == "classify" else {}
    return canonicalize(model, comp.canonicalize, task, freeze_model=comp.frozen_of is not None, **kw,
                        **CANONICALIZER, scorer=comp.scorer)


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


def _check_label_mesh_protocol(data, test_index, downsample: int, test_crop) -> None:
    """The mesh protocol of a segmentation run needs whole, stored-resolution test volumes, and its rule must
    rebuild the stored labels: test item 0 labelled upright from its mesh must equal its stored label map."""
    from ..data import DataError

    if downsample != 1 or test_crop is not None:
        raise ValueError("so3_protocol='mesh' scores whole test volumes at the stored resolution: use downsample=1 "
                         f"and test_crop=None (got downsample={downsample}, test_crop={test_crop})")
    first = [test_index[0]] if test_index else [0]
    size = int(data.volumes[0]["label"].shape[-1])
    upright = rotated_mesh_labels(data.name, {"up": np.eye(3)}, size, first, verbose=False)["up"][0]
    stored = data.volumes[0]["label"].long()
    if upright.shape != stored.shape or not torch.equal(upright, stored):
        raise DataError(f"dataset {data.name!r}: test mesh {first[0]} labelled upright differs from its stored label "
                        "map; the mesh options must be those the stored labels were built with")


def _dataset_files(name: str) -> Dict:
    """``{file: {"bytes", "sha256"}}`` of a registered dataset's provenance record (which data were run)."""
    from ..data.registry import find_dataset

    spec = find_dataset(name)
    return dict(spec.metadata().get("files") or {}) if spec is not None else {}


def run_segmentation(dataset: str = "chest_ct", competitors: Sequence[str] = DEFAULT_COMPETITORS,
                     seeds: Sequence[int] = (0,), *, downsample: int = 2, patch_size: int = 24, val_crop: int = 48,
                     test_crop: Union[int, str, None] = "val_crop", channels: Sequence[int] = (2, 4),
                     strides: Sequence[int] = (2,), convs_per_level: int = 2,
                     epochs: int = 20, patches_per_epoch: int = 32, batch_size: int = 16, lr: float = 3e-3,
                     n_random: int = 4, rotation_group: str = "octa", so3_protocol: str = "grid",
                     until_plateau: bool = False, max_epochs: Optional[int] = None, resume: bool = False,
                     max_test: Optional[int] = None, out: Optional[Path] = None,
                     progress: bool = False, verbose: bool = True, keep_models: bool = False) -> Dict:
    """Train and score every segmentation competitor for every seed.

    Args:
        dataset: a registered segmentation dataset (``"chest_ct"``, ``"brain_atlas"``, ...), downsampled by
            ``downsample``.
        competitors: registered names; the ``octa`` ``EquivariantUNet(channels, strides)`` with the default head
            is the reference the plain rows are matched to.
        seeds: one run per seed and competitor (same seed: same initial patches and rotations for all).
        patch_size, val_crop, epochs, patches_per_epoch, batch_size, lr: training (:class:`TrainConfig`; steps =
            ``epochs * patches_per_epoch / batch_size``), best checkpoint by validation loss; a competitor's
            ``train`` options override them (``val_crop``: centre crop of the validation volumes).
        until_plateau, max_epochs: ``epochs`` becomes the minimum and every run trains on until its validation Dice
            curve has reached its plateau (:func:`~equivox.training.plateaued`), at most ``max_epochs`` (default
            ``3 * epochs``): the same rule for every competitor.
        resume: a run whose folder under ``out`` already holds ``checkpoints/last.ckpt`` continues from it (with
            ``until_plateau``: an earlier run brought to its plateau) instead of starting over; rows on a frozen
            model (whose checkpoint also holds that model) always start afresh.
        test_crop: centre crop (cube side) of every scored test volume (default ``"val_crop"``: the validation
            crop); ``None``: whole test volumes, each axis
            centre-trimmed to a multiple of :data:`WHOLE_VOLUME_MULTIPLE` (held-out tiles are scored whole).
        n_random: random SO(3) rotations of the test volumes (seeded by the run's seed).
        so3_protocol: ``"grid"`` resamples image (trilinear) and label (nearest); ``"mesh"`` (datasets offering
            meshes, e.g. ``kicad_part_segments``) labels each test item again from its rotated mesh
            (:func:`~equivox.benchmark.data.rotated_mesh_labels`; needs whole test volumes, ``test_crop=None``).
        max_test: score this many test volumes, evenly spaced over the stored order (stratified for a store
            sorted by family); default all.
        rotation_group: the grid-exact elements scored (``"octa"``: the 24 rotations; ``"full_octa"``: the 48
            rotations and reflections, under which the dataset's left/right labels are swapped for every model).
        out: folder for run outputs; default a temporary folder. keep_models: return ``result["models"]``.

    Returns:
        dict with ``records`` (:data:`~equivox.benchmark.RECORD_KEYS` plus ``upright_dice_<class>``, ``curve`` =
        ``[(step, val Dice)]``, ``head``, ``identity_rate``), ``reports``, ``config``, ``caption``,
        ``models[(name, seed)]`` (``keep_models``), ``volume`` (the first scored volume) and ``class_names``.
    """
    from ..baselines import build_from_spec, count_parameters
    from ..evaluation import evaluate_segmentation, rotation_set
    from ..training import TrainConfig, fit

    quiet_lightning()
    comps = check_order(list(competitors), "segment")
    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="equivox-segmentation-"))
    if test_crop == "val_crop":
        test_crop = val_crop
    if so3_protocol not in SO3_PROTOCOLS:
        raise ValueError(f"so3_protocol must be one of {SO3_PROTOCOLS}, got {so3_protocol!r}")
    data = load_segmentation_data(dataset, downsample, test_crop,
                                  multiple=max(WHOLE_VOLUME_MULTIPLE, math.prod(strides)))
    test_index = None
    if max_test is not None and max_test < len(data.volumes):
        test_index = sorted({int(round(v)) for v in np.linspace(0, len(data.volumes) - 1, max_test)})
        data.volumes = [data.volumes[i] for i in test_index]
    if so3_protocol == "mesh":
        _check_label_mesh_protocol(data, test_index, downsample, test_crop)
    k, c_in = len(data.class_names), data.in_channels
    base_kwargs = dict(spatial_dims=3, in_channels=c_in, out_channels=k, channels=list(channels),
                       strides=list(strides), convs_per_level=convs_per_level)
    reference = build_from_spec({"cls": "EquivariantUNet", "kwargs": {**base_kwargs, "group": "octa"}})
    records, reports, models = [], [], {}
    n_runs, run = len(comps) * len(seeds), 0
    perm = list(range(k))  # what a reflection does to the labels: a property of the data, the same for all
    for left, right in data.class_swaps:
        perm[left], perm[right] = right, left
    for seed in seeds:
        rots = rotation_set("standard", group=rotation_group, n_random=n_random, seed=seed)
        mesh_vols = None
        if so3_protocol == "mesh":
            labels = rotated_mesh_labels(data.name, {r.name: r.matrix_array for r in rots if r.kind == "so3"},
                                         int(data.volumes[0]["label"].shape[-1]), test_index, verbose)
            mesh_vols = {n: [{"image": (lab > 0).float(), "label": lab} for lab in g] for n, g in labels.items()}
        trained: Dict[str, Tuple[nn.Module, float]] = {}
        for comp in comps:
            run += 1
            if comp.tta_of:
                raise ValueError(f"{comp.name!r}: test-time augmentation rows are classification only")
            if comp.frozen_of:
                model = trained[comp.frozen_of][0]
            else:
                model = build_network(comp, BuildContext("segment", c_in, k, "octa", reference, base_kwargs, seed,
                                                         class_swaps=data.class_swaps))
            if comp.canonicalize:
                model = _wrap_canonicalizer(model, comp, "segment", seed)
            opts = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "until_plateau": until_plateau,
                    "max_epochs": max_epochs, **comp.train}
            run_dir = out / f"{dataset}-{comp.name}-s{seed}".replace(" ", "_")
            last = run_dir / "checkpoints" / "last.ckpt"
            # a frozen row's checkpoint holds its frozen model too, which may have trained on: it starts afresh
            if resume and last.is_file() and not comp.frozen_of:
                opts["resume"] = str(last)
            cfg = TrainConfig(task="segment", dataset=dataset, downsample=downsample, patch_size=patch_size,
                              val_crop=val_crop, patches_per_epoch=patches_per_epoch, seed=seed,
                              augment=comp.augment, progress=progress, channels=tuple(channels),
                              strides=tuple(strides), **opts,
                              out_dir=str(run_dir), extra={"model_summary": False})
            if comp.fits:
                say(f"[{run}/{n_runs}] {comp.name}, seed {seed}: training {count_parameters(model)} parameters",
                    verbose)
                res = fit(cfg, model=model)
                model, steps, curve = res.model, res.global_step, res.curve
                seconds = res.seconds + (trained[comp.frozen_of][1] if comp.frozen_of else 0.0)
            else:  # a confidence canonicalizer: nothing to fit (calibrated: its head), the frozen model's cost
                (_, seconds, curve), steps = trained[comp.frozen_of], 0
                val_images = []
                if comp.scorer == "calibrated":
                    from ..training import build_datasets, resolve_data_settings

                    val_images = [item["image"] for item in build_datasets(resolve_data_settings(cfg)[0])[1]]
                seconds += _fit_head(model, comp, val_images, seed, f"[{run}/{n_runs}] {comp.name}, seed {seed}",
                                     verbose)
            trained[comp.name] = (model, seconds, curve)
            t = time.time()
            rep = _evaluate_with_meshes(evaluate_segmentation, model, data.volumes, rots, mesh_vols,
                                        num_classes=k, progress=progress, name=comp.name,
                                        class_names=data.class_names, check_equivariance=True,
                                        class_permutation=perm)
            upright = rep.rows[0]
            identity, equivalent = _pose_rates(model, [v["image"][None] for v in data.volumes])
            rec = make_record(dataset=data.name, task="segment", comp=comp, report=rep, seed=seed,
                              train_fraction=1.0, n_train=patches_per_epoch, params=count_parameters(model),
                              train_seconds=seconds, train_steps=steps, eval_seconds=time.time() - t,
                              head=comp.head, identity_rate=identity, equivalent_rate=equivalent, curve=curve,
                              plateau=plateaued(curve),
                              **{f"upright_{key}": v for key, v in upright.items() if key.startswith("dice_")})
            say(_scores_line(rec) + f", {steps} steps", verbose)
            records.append(rec)
            reports.append(rep)
            if keep_models:
                models[(comp.name, seed)] = model
    config = dict(task="segment", dataset=dataset, competitors=list(competitors), seeds=list(seeds),
                  downsample=downsample, patch_size=patch_size, val_crop=val_crop, test_crop=test_crop,
                  channels=list(channels), strides=list(strides), convs_per_level=convs_per_level, epochs=epochs,
                  until_plateau=until_plateau, max_epochs=max_epochs, resume=resume,
                  patches_per_epoch=patches_per_epoch, batch_size=batch_size, lr=lr, n_random=n_random,
                  rotation_group=rotation_group, so3_protocol=so3_protocol, max_test=max_test,
                  class_swaps=[list(p) for p in data.class_swaps],
                  n_test=len(data.volumes), dataset_files=_dataset_files(data.name), threads=torch.get_num_threads())
    caption = (f"{data.caption}, at {downsample}x the stored spacing: trained on random {patch_size}^3 patches of "
               f"the training volumes; Dice = mean over {k - 1} foreground classes")
    return {"records": records, "reports": reports, "config": config, "caption": caption, "models": models,
            "volume": data.volumes[0], "class_names": data.class_names}
