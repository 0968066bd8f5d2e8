"""Accuracy suite: what equivariance buys on real data, against what users would do otherwise.

One harness for ``benchmarks/accuracy.py`` and ``equivox demo``: train each *competitor* (an equivox model or a
plain CNN, with or without rotation augmentation) on upright data with :func:`equivox.training.fit`, then score it
with :func:`equivox.evaluation.evaluate_classification` upright, under every grid-exact rotation and under
Haar-random SO(3) rotations. Each (dataset, competitor, train fraction, seed) gives one record with
:data:`RECORD_KEYS`.

Rotation-safe protocol: data are kept at their stored resolution (e.g. 32^3); a model that works at a lower
``input_size`` sees the volume through :class:`PooledInput` (average pooling by an integer factor), so random
rotations (and ``augment="so3"`` during training) resample the full-resolution grid *before* any pooling.
``placement="sphere"`` zero-pads the stored grid by the factor ``3/2`` first, so the bounding sphere of a centred
object fits in the box and no rotation cuts anything off (content lost per rotation is reported either way).
Grid rotations commute with the pooling and padding, so they stay exact.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Competitor", "COMPETITORS", "RECORD_KEYS", "ClassificationData", "PooledInput",
           "load_classification_data", "nested_fractions", "build_competitor", "run_suite", "summarize_records",
           "format_records", "plot_records", "save_records", "so3_content_lost"]

#: keys every record has (more follow: metric, n_test, eval_cost, std_grid, content_lost_so3, ...)
RECORD_KEYS = ("dataset", "model", "augment", "train_fraction", "seed", "params", "train_seconds", "upright",
               "mean_grid", "worst_grid", "mean_so3", "worst_so3")


@dataclass(frozen=True)
class Competitor:
    """One row kind of the suite.

    Attributes:
        name: row label (e.g. ``"equivariant (octa)"``).
        arch: ``"equivariant"`` (``InvariantClassifier`` of ``group``), ``"plain_params"`` (trivial-group twin with
            the parameter count of the reference equivariant model), ``"plain_compute"`` (trivial-group twin with
            the reference's *tensor* widths: the same convolution FLOPs per step, ~|G| times more parameters),
            ``"monai_resnet"`` (MONAI ``ResNet`` with basic blocks ``[1, 1, 1, 1]``, widths matched to the
            reference's parameter count).
        group: group of an ``"equivariant"`` competitor. augment: ``"none"``, ``"grid"`` or ``"so3"`` (training).
        tta: score through :class:`~equivox.evaluation.GroupTTA` over the 24 cube rotations (reuses the model
            trained by the competitor ``tta_of``, at 24x inference cost).
        canonical: resample every input into its principal-axes frame first (:class:`~equivox.nn.CanonicalPose`,
            training and test): with an ``octa``-invariant model this makes the whole model invariant to any
            rotation up to resampling.
        field_scale: an ``"equivariant"`` competitor with this many times the reference's fields per level (cheap
            field types at a larger width).
        canonicalize: put the network behind an exactly equivariant canonicalizer over this group's grid
            elements (:func:`equivox.canonicalization.canonicalize`, trained jointly with the prior toward the
            identity); with ``canonical`` the principal-axes pose runs first, inside the wrapper.
        frozen_of: with ``canonicalize``: take the trained model of that competitor, frozen, and fit only the
            canonicalizer in front of it (:func:`equivox.training.fit_canonicalizer`'s path: its weights stay as
            they are).
    """

    name: str
    arch: str
    group: str = "trivial"
    augment: str = "none"
    tta: bool = False
    tta_of: Optional[str] = None
    canonical: bool = False
    field_scale: int = 1
    canonicalize: Optional[str] = None
    frozen_of: Optional[str] = None


#: registry of competitor kinds (``--models`` names)
COMPETITORS: Dict[str, Competitor] = {c.name: c for c in [
    Competitor("equivariant (octa)", "equivariant", "octa"),
    Competitor("equivariant (full_octa)", "equivariant", "full_octa"),
    Competitor("equivariant (so3)", "equivariant", "so3"),
    Competitor("equivariant (octa_faces)", "equivariant", "octa_faces"),
    Competitor("equivariant (octa_vertices)", "equivariant", "octa_vertices"),
    Competitor("equivariant (octa_vertices, 2x fields)", "equivariant", "octa_vertices", field_scale=2),
    Competitor("equivariant (octa) + so3 aug", "equivariant", "octa", "so3"),
    Competitor("equivariant (octa) + PCA pose", "equivariant", "octa", canonical=True),
    Competitor("plain (matched params)", "plain_params"),
    Competitor("plain (matched compute)", "plain_compute"),
    Competitor("plain + grid aug", "plain_params", augment="grid"),
    Competitor("plain + so3 aug", "plain_params", augment="so3"),
    Competitor("plain + grid aug + TTA24", "plain_params", augment="grid", tta=True, tta_of="plain + grid aug"),
    Competitor("plain + PCA pose + grid aug", "plain_params", augment="grid", canonical=True),
    Competitor("MONAI ResNet + grid aug", "monai_resnet", augment="grid"),
    Competitor("plain + canonicalizer", "plain_params", canonicalize="octa"),
    Competitor("plain + PCA pose + canonicalizer", "plain_params", canonical=True, canonicalize="octa"),
    Competitor("MONAI ResNet + canonicalizer", "monai_resnet", canonicalize="octa"),
    Competitor("plain (frozen) + fitted canonicalizer", "plain_params", canonicalize="octa",
               frozen_of="plain (matched params)"),
]}

#: the canonicalizer of the suite's canonicalized competitors (:class:`~equivox.canonicalization.GroupScorer`)
CANONICALIZER = dict(channels=(2, 4), strides=(2,), input_size=16)


@dataclass
class ClassificationData:
    """Splits of a classification dataset at stored resolution: images ``(N, 1, S, S, S)`` float32 in [0, 1],
    labels ``(N,)`` int64. ``val`` is for checkpoint selection only; scores are on ``test``."""

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


def _stratified_holdout(y: np.ndarray, fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hold = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        hold.extend(idx[: max(1, int(round(fraction * len(idx))))] if len(idx) > 2 else [])
    hold = np.sort(np.asarray(hold, dtype=int))
    keep = np.setdiff1d(np.arange(len(y)), hold)
    return keep, hold


def _registered(name: str) -> ClassificationData:
    """A classification dataset of the registry (:func:`equivox.data.get_dataset`): its train and test splits, and
    15 % of train (stratified, fixed seed) held out for checkpoint selection, the same rule for every dataset."""
    from .data import get_dataset

    spec = get_dataset(name, "classification")
    tr, te = spec.load_split("train"), spec.load_split("test")

    def grids(a) -> torch.Tensor:
        x = torch.from_numpy(np.asarray(a, dtype=np.float32))
        return x[:, None] if x.dim() == 4 else x

    y_tr, y_te = np.asarray(tr["labels"]).astype(np.int64), np.asarray(te["labels"]).astype(np.int64)
    keep, hold = _stratified_holdout(y_tr, 0.15, seed=1234)
    x = grids(tr["images"])
    k = int(max(y_tr.max(), y_te.max())) + 1
    names = list(tr.get("class_names") or [str(i) for i in range(k)])
    metric = "auroc" if k == 2 else "accuracy"
    about = spec.metadata()["description"].rstrip(".")
    caption = f"{about} (val = 15 % of train, held out; scores on the test split)"
    return ClassificationData(spec.name, x[keep], y_tr[keep], x[hold], y_tr[hold], grids(te["images"]), y_te,
                              names, metric, caption)


def _medmnist(path: str) -> ClassificationData:
    from .data import load_medmnist3d

    sp = {s: load_medmnist3d(path, s) for s in ("train", "val", "test")}
    t = {s: torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape(len(x), 1, *np.asarray(x).shape[-3:])
         for s, (x, _) in sp.items()}
    y = {s: np.asarray(v[1]).reshape(-1).astype(np.int64) for s, v in sp.items()}
    scale = 255.0 if float(t["train"].max()) > 1.5 else 1.0  # one decision for all splits (uint8 images)
    k = int(max(v.max() for v in y.values())) + 1
    return ClassificationData(Path(path).stem, t["train"] / scale, y["train"], t["val"] / scale, y["val"],
                              t["test"] / scale, y["test"], [str(i) for i in range(k)], "accuracy",
                              f"MedMNIST-3D {Path(path).name} (official train/val/test splits)")


def load_classification_data(name: str) -> ClassificationData:
    """Load a suite dataset: a registered classification dataset (:func:`equivox.data.dataset_names`, e.g.
    ``"furniture"``, ``"lidc"``, or one registered from user code) or a MedMNIST-3D ``.npz`` path (official
    train/val/test splits)."""
    if str(name).endswith(".npz"):
        return _medmnist(name)
    return _registered(name)


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
        from .nn.canonical import CanonicalPose

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


def build_competitor(comp: Competitor, reference: nn.Module, in_channels: int, num_classes: int,
                     base_kwargs: Dict, seed: int) -> nn.Module:
    """Build the network of ``comp``; ``reference`` is the equivariant model whose parameters (or tensor widths)
    the plain competitors match. ``base_kwargs`` are the ``InvariantClassifier`` arguments of the suite."""
    from .baselines import build_from_spec, count_parameters, match_channels, matched_baseline

    torch.manual_seed(seed)
    if comp.arch == "equivariant":
        channels = [c * comp.field_scale for c in base_kwargs["channels"]]
        return build_from_spec({"cls": "InvariantClassifier", "kwargs": {**base_kwargs, "group": comp.group,
                                                                         "channels": channels}})
    if comp.arch == "plain_params":
        return matched_baseline(reference)
    if comp.arch == "plain_compute":
        return build_from_spec({"cls": "InvariantClassifier", "kwargs": {
            **base_kwargs, "group": "trivial", "channels": list(reference.tensor_channels)}})
    if comp.arch == "monai_resnet":
        from monai.networks.nets import ResNet

        def build(ch):
            return ResNet("basic", [1, 1, 1, 1], list(ch), spatial_dims=3, n_input_channels=in_channels,
                          num_classes=num_classes, conv1_t_size=3, conv1_t_stride=1, no_max_pool=True)

        return build(match_channels(count_parameters(reference), [1, 2, 4, 8], build))
    raise ValueError(f"unknown competitor arch {comp.arch!r}")


def so3_content_lost(x: torch.Tensor, rotations) -> List[float]:
    """Mean fraction of occupancy mass lost per random rotation (``1 - sum(R x) / sum(x)``, items ``(N, 1, ...)``):
    what rotating the box cut off (0 when everything lies inside the inscribed sphere)."""
    total = x.sum(dim=(1, 2, 3, 4)).clamp_min(1e-12)
    out = []
    for r in rotations:
        if r.kind == "so3":
            out.append(float((1 - r.apply_image(x).sum(dim=(1, 2, 3, 4)) / total).clamp_min(0).mean()))
    return out


def _say(msg: str, verbose: bool) -> None:
    if verbose:
        print(msg, flush=True)


def run_suite(dataset="furniture", competitors: Sequence[str] = ("equivariant (octa)", "plain (matched params)",
                                                                 "plain + grid aug"),
              fractions: Sequence[float] = (1.0,), seeds: Sequence[int] = (0,), *, input_size: int = 16,
              placement: str = "box", channels: Sequence[int] = (4, 8, 16), strides: Sequence[int] = (2, 2),
              convs_per_level: int = 1, hidden_features: Sequence[int] = (64,), epochs: int = 30,
              batch_size: int = 16, lr: float = 3e-3, n_random: int = 8, max_test: Optional[int] = None,
              out: Optional[Path] = None, progress: bool = False, verbose: bool = True,
              keep_models: bool = False) -> Dict:
    """Train and score every competitor on every (train fraction, seed); return ``{"records", "reports", ...}``.

    Args:
        dataset: registered classification dataset name, a MedMNIST-3D ``.npz`` path, or a
            :class:`ClassificationData` (:func:`load_classification_data`).
        competitors: names in :data:`COMPETITORS`. The equivariant ``InvariantClassifier(channels, strides,
            group="octa", ...)`` is the *reference* that plain competitors are matched to (built whether or not
            it is listed).
        fractions: training-set fractions (nested, stratified: :func:`nested_fractions`). seeds: one run each.
        input_size: cube side the models see; placement: ``"box"`` or ``"sphere"`` (see module docstring).
        channels, strides, convs_per_level, hidden_features: the reference classifier (``channels`` are fields).
        epochs, batch_size, lr: training (AdamW, best checkpoint by validation loss on the held-out val split).
        n_random: random SO(3) rotations (seeded by the run's seed); max_test: subsample the test split.
        out: folder for run outputs (checkpoints, logs); default a temporary folder.
        keep_models: return the trained models in ``result["models"][(name, fraction, seed)]``.

    Returns:
        dict with ``records`` (list of dicts with :data:`RECORD_KEYS` and more), ``reports``
        (:class:`~equivox.evaluation.RotationReport` per record), ``config``, ``caption``.
    """
    import tempfile

    from .baselines import build_from_spec, count_parameters
    from .statistics import record_intervals
    from .evaluation import GroupTTA, evaluate_classification, rotation_set
    from .training import ArrayClassificationDataset, DataInfo, TrainConfig, augmentation_transform, fit
    from .training.data import subsample_indices

    import logging

    for name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric"):  # no per-run "GPU available" chatter
        logging.getLogger(name).setLevel(logging.WARNING)
    data = dataset if isinstance(dataset, ClassificationData) else load_classification_data(dataset)
    unknown = [c for c in competitors if c not in COMPETITORS]
    if unknown:
        raise ValueError(f"unknown competitors {unknown}; known: {list(COMPETITORS)}")
    comps = [COMPETITORS[c] for c in competitors]
    for c in comps:
        for of in (c.tta_of if c.tta else None, c.frozen_of):
            if of is not None and of not in competitors[:competitors.index(c.name)]:
                raise ValueError(f"{c.name!r} reuses the model of {of!r}: list that competitor before it")
    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="equivox-accuracy-"))
    stored = int(data.x_train.shape[-1])
    pad, factor = _geometry(stored, input_size, placement)
    k = len(data.class_names)
    base_kwargs = dict(spatial_dims=3, in_channels=1, out_channels=k, channels=list(channels),
                       strides=list(strides), convs_per_level=convs_per_level, hidden_features=list(hidden_features))
    reference = build_from_spec({"cls": "InvariantClassifier", "kwargs": {**base_kwargs, "group": "octa"}})
    def padded(x):  # rotations (evaluation and augmentation) act on the padded stored grid: nothing is cut
        return F.pad(x, (pad,) * 6) if pad else x

    x_train, x_test, y_test = padded(data.x_train), padded(data.x_test), data.y_test
    if max_test is not None and max_test < len(y_test):
        idx = subsample_indices(y_test, max_test, 2)
        x_test, y_test = x_test[idx], y_test[idx]
    val = ArrayClassificationDataset(padded(data.x_val), data.y_val, None, data.class_names)
    records, reports, models = [], [], {}
    n_runs = len(comps) * len(fractions) * len(seeds)
    run = 0
    for seed in seeds:
        rots = rotation_set("standard", group="octa", n_random=n_random, seed=seed)
        lost = so3_content_lost(x_test, rots)
        subsets = nested_fractions(data.y_train, fractions, seed)
        for frac in fractions:
            idx = subsets[frac]
            trained: Dict[str, Tuple[nn.Module, float, int]] = {}
            for comp in comps:
                run += 1
                tag = f"[{run}/{n_runs}] {comp.name}, fraction {frac:g}, seed {seed}"
                if comp.tta:
                    model, secs, steps = trained[comp.tta_of]
                    model = GroupTTA(model, "octa")  # around the trained PooledInput: rotations at stored size
                    _say(f"{tag}: test-time augmentation of {comp.tta_of!r} (24 forward passes per item)", verbose)
                else:
                    if comp.frozen_of:
                        model = trained[comp.frozen_of][0]
                    else:
                        net = build_competitor(comp, reference, 1, k, base_kwargs, seed)
                        model = PooledInput(net, factor, 0, comp.canonical and not comp.canonicalize)
                    if comp.canonicalize:
                        from .canonicalization import canonicalize

                        torch.manual_seed(seed + 1)
                        model = canonicalize(model, comp.canonicalize, "classify", canonical_pose=comp.canonical,
                                             freeze_model=comp.frozen_of is not None, **CANONICALIZER)
                    aug = augmentation_transform(comp.augment, ["image"], "octa", seed)  # at stored resolution
                    train = ArrayClassificationDataset(x_train[idx], data.y_train[idx], aug, data.class_names)
                    info = DataInfo(1, k, data.class_names, len(train), len(val), (input_size,) * 3)
                    cfg = TrainConfig(task="classify", dataset=data.name, input_size=input_size, epochs=epochs,
                                      batch_size=batch_size, lr=lr, seed=seed, progress=progress,
                                      out_dir=str(out / f"{comp.name}-f{frac:g}-s{seed}".replace(" ", "_")),
                                      extra={"model_summary": False})
                    _say(f"{tag}: training {count_parameters(model)} parameters on {len(train)} items", verbose)
                    res = fit(cfg, model=model, train_data=train, val_data=val, info=info)
                    model, secs, steps = res.model, res.seconds, res.global_step
                    if comp.frozen_of:  # its cost: the frozen model's training and the canonicalizer's fitting
                        secs += trained[comp.frozen_of][1]
                    trained[comp.name] = (model, secs, steps)
                t = time.time()
                rep = evaluate_classification(model, (x_test, torch.as_tensor(y_test)), rots, batch_size=64,
                                              num_classes=k, progress=progress, name=comp.name, metric=data.metric,
                                              check_equivariance=True)
                eval_s = time.time() - t
                s = rep.summary()
                identity = model.identity_rate(x_test) if hasattr(model, "identity_rate") else None
                rec = {"dataset": data.name, "model": comp.name, "augment": comp.augment, "train_fraction": frac,
                       "seed": seed, "params": count_parameters(model), "train_seconds": round(secs, 2),
                       **{key: s[key] for key in ("upright", "mean_grid", "worst_grid", "mean_so3", "worst_so3")},
                       "std_grid": s["std_grid"], "metric": data.metric, "n_train": int(len(idx)),
                       "n_test": int(len(y_test)), "train_steps": steps, "eval_seconds": round(eval_s, 2),
                       "eval_cost": 24 if comp.tta else 1, "arch": comp.arch, "group": comp.group,
                       "canonical_pose": comp.canonical, "equivariance_error": rep.equivariance_error,
                       "canonicalizer": comp.canonicalize, "identity_rate": identity,
                       "input_size": input_size, "placement": placement,
                       "content_lost_so3": float(np.mean(lost)) if lost else None,
                       **(record_intervals(rep, seed=seed) if data.metric == "accuracy" else
                          dict.fromkeys(("upright_ci", "worst_grid_ci", "mean_so3_ci"))),
                       "per_item": rep.per_item}
                _say(f"    upright {_f(rec['upright'])}  cube mean {_f(rec['mean_grid'])} worst "
                     f"{_f(rec['worst_grid'])}  so3 mean {_f(rec['mean_so3'])} worst {_f(rec['worst_so3'])}  "
                     f"({rec['train_seconds']:.0f} s train)"
                     + (f"; identity picked for {identity:.0%} of upright test items" if identity is not None else ""),
                     verbose)
                records.append(rec)
                reports.append(rep)
                if keep_models:
                    models[(comp.name, frac, seed)] = model
    config = dict(dataset=data.name, competitors=list(competitors), fractions=list(fractions), seeds=list(seeds),
                  input_size=input_size, placement=placement, channels=list(channels), strides=list(strides),
                  convs_per_level=convs_per_level, hidden_features=list(hidden_features), epochs=epochs,
                  batch_size=batch_size, lr=lr, n_random=n_random, max_test=max_test, threads=torch.get_num_threads())
    return {"records": records, "reports": reports, "config": config, "caption": data.caption, "models": models}


def _f(v) -> str:
    return "   -  " if v is None else f"{v:.3f}"


def summarize_records(records: Sequence[Dict], keys: Sequence[str] = ("upright", "mean_grid", "worst_grid",
                                                                       "mean_so3", "worst_so3", "train_seconds")
                      ) -> List[Dict]:
    """Mean and std over seeds per (dataset, model, train_fraction): rows ``{..., key: mean, key_std: std, n}``."""
    groups: Dict[Tuple, List[Dict]] = {}
    for r in records:
        groups.setdefault((r["dataset"], r["model"], r["train_fraction"]), []).append(r)
    rows = []
    for (ds, model, frac), rs in groups.items():
        row = {"dataset": ds, "model": model, "train_fraction": frac, "n_seeds": len(rs), "params": rs[0]["params"],
               "eval_cost": rs[0].get("eval_cost", 1)}
        for key in keys:
            vals = [r[key] for r in rs if r.get(key) is not None]
            row[key] = float(np.mean(vals)) if vals else None
            row[f"{key}_std"] = float(np.std(vals)) if len(vals) > 1 else 0.0 if vals else None
        rows.append(row)
    return rows


def format_records(records: Sequence[Dict], metric: str = "accuracy") -> str:
    """A text table of :func:`summarize_records` (mean +- std over seeds)."""
    rows = summarize_records(records)
    head = (f"{'model':32s} {'frac':>5s} {'params':>7s} {'train s':>8s} {'upright':>13s} {'cube mean':>13s} "
            f"{'cube worst':>13s} {'so3 mean':>13s} {'so3 worst':>13s}")
    lines = [f"metric: {metric} (mean +- std over seeds)", head, "-" * len(head)]

    def ms(r, k):
        if r[k] is None:
            return f"{'-':>13s}"
        return f"{r[k]:.3f}+-{r[k + '_std']:.3f}".rjust(13)

    for r in rows:
        name = r["model"] + (f" [{r['eval_cost']}x inference]" if r["eval_cost"] != 1 else "")
        lines.append(f"{name[:32]:32s} {r['train_fraction']:5.2f} {r['params']:7d} {r['train_seconds']:8.1f} "
                     + " ".join(ms(r, k) for k in ("upright", "mean_grid", "worst_grid", "mean_so3", "worst_so3")))
    return "\n".join(lines)


def save_records(result: Dict, out: Path, stem: str = "accuracy") -> List[Path]:
    """Write ``<stem>.json`` (records + config + machine), ``<stem>.csv`` and ``<stem>_table.txt``."""
    import csv
    import platform

    out.mkdir(parents=True, exist_ok=True)
    records = result["records"]
    metric = records[0]["metric"] if records else "accuracy"
    table = format_records(records, metric)
    doc = {"config": result["config"], "caption": result.get("caption", ""), "records": records,
           "summary": summarize_records(records),
           "machine": {"platform": platform.platform(), "processor": platform.processor(),
                       "cpus": torch.get_num_threads(), "torch": torch.__version__,
                       "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}}
    paths = [out / f"{stem}.json", out / f"{stem}.csv", out / f"{stem}_table.txt"]
    paths[0].write_text(json.dumps(doc, indent=2, default=str))
    keys = [k for k in dict.fromkeys(k for r in records for k in r) if k not in ("per_item", "curve")]
    with paths[1].open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(records)
    paths[2].write_text(table + "\n")
    return paths


def plot_records(records: Sequence[Dict], out: Path,
                 x_keys: Sequence[str] = ("train_fraction", "train_seconds"), prefix: str = "") -> List[Path]:
    """Plots of suite records of one dataset (mean +- std over seeds): ``<prefix>rotation_scores.png`` (score per
    model and rotation kind) and, per ``x_keys`` entry, ``<prefix>data_efficiency.png`` (score vs training
    fraction) / ``<prefix>score_vs_train_time.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summarize_records(records)
    models = list(dict.fromkeys(r["model"] for r in rows))
    top = max(r["train_fraction"] for r in rows)
    paths = []
    fig, ax = plt.subplots(figsize=(10, 4.5))
    kinds = [("upright", "upright"), ("mean_grid", "cube mean"), ("worst_grid", "cube worst"),
             ("mean_so3", "SO(3) mean"), ("worst_so3", "SO(3) worst")]
    width = 0.8 / len(kinds)
    full = [next(r for r in rows if r["model"] == m and r["train_fraction"] == top) for m in models]
    for j, (key, label) in enumerate(kinds):
        ax.bar([i + j * width for i in range(len(models))], [r[key] or 0 for r in full], width,
               yerr=[r[key + "_std"] or 0 for r in full], label=label)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(models))])
    ax.set_xticklabels(models, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel(records[0]["metric"])
    ax.set_title(f"{records[0]['dataset']}: score by rotation kind (train fraction {top:g})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out / f"{prefix}rotation_scores.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    axes_kinds = {"train_fraction": ("data_efficiency.png", "training fraction"),
                  "train_seconds": ("score_vs_train_time.png", "training seconds")}
    for key in x_keys:
        fname, xlabel = axes_kinds[key]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for ax, score, title in ((axes[0], "worst_grid", "worst cube rotation"), (axes[1], "mean_so3",
                                                                                    "random SO(3) mean")):
            for m in models:
                rs = sorted((r for r in rows if r["model"] == m), key=lambda r: r[key])
                ax.errorbar([r[key] for r in rs], [r[score] or 0 for r in rs], yerr=[r[score + "_std"] or 0 for r in rs],
                            marker="o", label=m, capsize=2)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(records[0]["metric"])
            ax.set_title(title)
            if key == "train_seconds":
                ax.set_xscale("log")
        axes[1].legend(fontsize=7)
        fig.tight_layout()
        paths.append(out / f"{prefix}{fname}")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths
