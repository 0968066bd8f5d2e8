"""Segmentation suite: equivariant U-Nets against the plain U-Nets users would pick, on the bundled scans.

The segmentation side of :mod:`equivox.accuracy` (same record keys, tables and files): each *competitor* is
trained on random patches of a bundled volume with :func:`equivox.training.fit` (same seeds, same steps), then
scored with :func:`equivox.evaluation.evaluate_segmentation` on the validation crop upright, under every
grid-exact rotation of ``octa`` and under random SO(3) rotations, image and label rotated together (mean Dice
over foreground classes; per-class Dice and the validation learning curve are kept too).

The bundled sets are one volume each (chest CT, brain atlas): training patches and the validation crop come from
the same scan, so the suite measures how well and how fast each network *fits* a real anatomy and how it holds
up when that anatomy arrives rotated, not generalisation across patients (use a Decathlon folder for that).
"""
from __future__ import annotations

import csv
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

__all__ = ["SegCompetitor", "SEG_COMPETITORS", "build_seg_competitor", "learning_curve", "plot_learning_curves",
           "run_segmentation_suite"]


@dataclass(frozen=True)
class SegCompetitor:
    """One row kind of the segmentation suite.

    Attributes:
        name: row label.
        arch: ``"equivariant"`` (``EquivariantUNet`` of ``group`` with ``head``), ``"plain_params"`` (trivial-group
            twin at the reference's parameter count), ``"plain_compute"`` (trivial-group twin at the reference's
            tensor widths: same convolution FLOPs, ~|G| times the parameters), ``"monai_unet"`` (MONAI ``UNet``,
            parameters matched).
        group, head: of an ``"equivariant"`` competitor (``head`` as :class:`~equivox.nets.EquivariantUNet`); a
            group other than ``octa`` gets the fields per level that match the reference's parameter count.
        augment: training augmentation (``"none"``, ``"grid"``, ``"so3"``).
        channels: fields per level of an ``"equivariant"`` competitor instead of the reference's (e.g. more fields
            at full resolution, fewer below, at about the same parameter count).
        canonicalize: put the network behind an exactly equivariant canonicalizer over this group's grid elements
            (:func:`equivox.canonicalization.canonicalize`, trained jointly with the prior toward the identity).
        frozen_of: with ``canonicalize``: the trained model of that competitor, frozen, behind a canonicalizer
            fitted alone (its weights stay as they are).
    """

    name: str
    arch: str
    group: str = "octa"
    head: Optional[str] = None
    augment: str = "none"
    channels: Optional[Tuple[int, ...]] = None
    canonicalize: Optional[str] = None
    frozen_of: Optional[str] = None


#: registry of segmentation competitors (``--models`` names of ``benchmarks/segmentation.py``)
SEG_COMPETITORS: Dict[str, SegCompetitor] = {c.name: c for c in [
    SegCompetitor("equivariant (octa)", "equivariant"),
    SegCompetitor("equivariant (octa, stats head)", "equivariant", head="stats"),
    SegCompetitor("equivariant (octa, linear head)", "equivariant", head="linear"),
    SegCompetitor("equivariant (octa, stats head, fields 3-2)", "equivariant", head="stats", channels=(3, 2)),
    SegCompetitor("equivariant (octa) + orientation", "equivariant", head="oriented"),
    SegCompetitor("equivariant (d4_axial)", "equivariant", "d4_axial"),
    SegCompetitor("plain (matched params)", "plain_params"),
    SegCompetitor("plain (matched compute)", "plain_compute"),
    SegCompetitor("plain + grid aug", "plain_params", augment="grid"),
    SegCompetitor("plain + so3 aug", "plain_params", augment="so3"),
    SegCompetitor("MONAI UNet (matched params)", "monai_unet"),
    SegCompetitor("plain + canonicalizer", "plain_params", canonicalize="octa"),
    SegCompetitor("MONAI UNet + canonicalizer", "monai_unet", canonicalize="octa"),
    SegCompetitor("MONAI UNet (frozen) + fitted canonicalizer", "monai_unet", canonicalize="octa",
                  frozen_of="MONAI UNet (matched params)"),
    SegCompetitor("plain (frozen) + fitted canonicalizer", "plain_params", canonicalize="octa",
                  frozen_of="plain (matched params)"),
    SegCompetitor("equivariant (octa) + orientation + canonicalizer", "equivariant", head="oriented",
                  canonicalize="octa"),
]}

#: the canonicalizer of the canonicalized competitors (:class:`~equivox.canonicalization.GroupScorer`)
SEG_CANONICALIZER = dict(channels=(2, 4), strides=(2,), input_size=16)


def build_seg_competitor(comp: SegCompetitor, reference: nn.Module, base_kwargs: Dict, seed: int,
                         trained: Optional[Dict[str, nn.Module]] = None) -> nn.Module:
    """The network of ``comp``; ``reference`` is the default ``octa`` U-Net the plain competitors are matched to
    (the canonicalizer, when there is one, comes on top of the matched parameters); ``trained``: the models
    trained so far in this seed, by competitor name (for ``frozen_of``)."""
    if comp.frozen_of:
        if not trained or comp.frozen_of not in trained:
            raise ValueError(f"{comp.name!r} reuses the model of {comp.frozen_of!r}: list that competitor before it")
        net = trained[comp.frozen_of]
    else:
        net = _build_network(comp, reference, base_kwargs, seed)
    if comp.canonicalize:
        from .canonicalization import canonicalize

        torch.manual_seed(seed + 1)
        net = canonicalize(net, comp.canonicalize, "segment", freeze_model=comp.frozen_of is not None,
                           **SEG_CANONICALIZER)
    return net


def _build_network(comp: SegCompetitor, reference: nn.Module, base_kwargs: Dict, seed: int) -> nn.Module:
    from .baselines import build_from_spec, count_parameters, match_channels, matched_baseline, matched_monai_unet

    torch.manual_seed(seed)
    if comp.arch == "equivariant":
        kwargs = {**base_kwargs, "group": comp.group, **({"head": comp.head} if comp.head else {}),
                  **({"channels": list(comp.channels)} if comp.channels else {})}
        if comp.group != reference.group:
            def build(ch):
                return build_from_spec({"cls": "EquivariantUNet", "kwargs": {**kwargs, "channels": list(ch)}})

            kwargs["channels"] = list(match_channels(count_parameters(reference), base_kwargs["channels"], build))
            torch.manual_seed(seed)
        return build_from_spec({"cls": "EquivariantUNet", "kwargs": kwargs})
    if comp.arch == "plain_params":
        return matched_baseline(reference)
    if comp.arch == "plain_compute":
        return build_from_spec({"cls": "EquivariantUNet", "kwargs": {
            **base_kwargs, "group": "trivial", "channels": list(reference.tensor_channels)}})
    if comp.arch == "monai_unet":
        return matched_monai_unet(base_kwargs["in_channels"], base_kwargs["out_channels"],
                                  count_parameters(reference), levels=len(base_kwargs["channels"]) + 1)
    raise ValueError(f"unknown segmentation competitor arch {comp.arch!r}")


def learning_curve(metrics_csv: Optional[Path], key: str = "val_dice") -> List[Tuple[int, float]]:
    """``[(global step, value)]`` of ``key`` from a Lightning ``metrics.csv`` (one point per validation)."""
    if metrics_csv is None or not Path(metrics_csv).is_file():
        return []
    out = []
    with open(metrics_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get(key):
                out.append((int(float(row.get("step") or 0)) + 1, float(row[key])))
    return out


def _say(msg: str, verbose: bool) -> None:
    if verbose:
        print(msg, flush=True)


def run_segmentation_suite(dataset: str = "chest_ct",
                           competitors: Sequence[str] = ("equivariant (octa)", "plain (matched params)",
                                                         "plain + grid aug"),
                           seeds: Sequence[int] = (0,), *, downsample: int = 2, patch_size: int = 24,
                           val_crop: int = 48, channels: Sequence[int] = (2, 4), strides: Sequence[int] = (2,),
                           convs_per_level: int = 2, epochs: int = 20, patches_per_epoch: int = 32,
                           batch_size: int = 16, lr: float = 3e-3, n_random: int = 4, out: Optional[Path] = None,
                           progress: bool = False, verbose: bool = True, keep_models: bool = False) -> Dict:
    """Train and score every segmentation competitor for every seed; return ``{"records", "reports", ...}``.

    Args:
        dataset: bundled segmentation dataset (``"chest_ct"``, ``"brain_atlas"``), downsampled by ``downsample``.
        competitors: names in :data:`SEG_COMPETITORS`; the ``octa`` ``EquivariantUNet(channels, strides)`` with the
            default head is the reference the plain competitors are matched to.
        seeds: one run per seed and competitor (same seed: same initial patches and rotations for all).
        patch_size, val_crop, epochs, patches_per_epoch, batch_size, lr: training (:class:`TrainConfig`; steps =
            ``epochs * patches_per_epoch / batch_size``), best checkpoint by validation loss.
        n_random: random SO(3) rotations of the validation crop (seeded by the run's seed).
        out: folder for run outputs; default a temporary folder. keep_models: return ``result["models"]``.

    Returns:
        dict with ``records`` (the :data:`equivox.accuracy.RECORD_KEYS` plus ``dice_<class>`` upright,
        ``curve`` = ``[(step, val Dice)]``, ``train_steps``, ``equivariance_error``, ...), ``reports``, ``config``,
        ``caption`` and (``keep_models``) ``models[(name, seed)]`` and the evaluation ``volume``.
    """
    import logging

    from .baselines import build_from_spec, count_parameters
    from .evaluation import evaluate_segmentation, rotation_set
    from .statistics import record_intervals
    from .training import TrainConfig, bundled_volume, center_crop, fit

    for name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    unknown = [c for c in competitors if c not in SEG_COMPETITORS]
    if unknown:
        raise ValueError(f"unknown segmentation competitors {unknown}; known: {list(SEG_COMPETITORS)}")
    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="equivox-segmentation-"))
    img, lab, names = bundled_volume(dataset, downsample)
    k = max(names) + 1
    class_names = [names.get(i, str(i)) for i in range(k)]
    crop = (val_crop,) * 3
    volume = {"image": center_crop(img, crop), "label": center_crop(lab, crop)}
    base_kwargs = dict(spatial_dims=3, in_channels=1, out_channels=k, channels=list(channels),
                       strides=list(strides), convs_per_level=convs_per_level)
    reference = build_from_spec({"cls": "EquivariantUNet", "kwargs": {**base_kwargs, "group": "octa"}})
    records, reports, models = [], [], {}
    n_runs, run = len(competitors) * len(seeds), 0
    for seed in seeds:
        rots = rotation_set("standard", group="octa", n_random=n_random, seed=seed)
        trained: Dict[str, nn.Module] = {}
        train_seconds: Dict[str, float] = {}  # a frozen model's fitting counts its own training too
        for comp in (SEG_COMPETITORS[c] for c in competitors):
            run += 1
            model = build_seg_competitor(comp, reference, base_kwargs, seed, trained)
            cfg = TrainConfig(task="segment", dataset=dataset, downsample=downsample, patch_size=patch_size,
                              val_crop=val_crop, epochs=epochs, patches_per_epoch=patches_per_epoch,
                              batch_size=batch_size, lr=lr, seed=seed, augment=comp.augment, progress=progress,
                              channels=tuple(channels), strides=tuple(strides),
                              out_dir=str(out / f"{dataset}-{comp.name}-s{seed}".replace(" ", "_")),
                              extra={"model_summary": False})
            _say(f"[{run}/{n_runs}] {comp.name}, seed {seed}: training {count_parameters(model)} parameters", verbose)
            res = fit(cfg, model=model)
            trained[comp.name] = res.model
            seconds = res.seconds + (train_seconds[comp.frozen_of] if comp.frozen_of else 0.0)
            train_seconds[comp.name] = seconds
            t = time.time()
            rep = evaluate_segmentation(res.model, [volume], rots, num_classes=k, progress=progress, name=comp.name,
                                        class_names=class_names, check_equivariance=True)
            s = rep.summary()
            upright = rep.rows[0]
            rec = {"dataset": dataset, "model": comp.name, "augment": comp.augment, "train_fraction": 1.0,
                   "seed": seed, "params": count_parameters(res.model), "train_seconds": round(seconds, 2),
                   **{key: s[key] for key in ("upright", "mean_grid", "worst_grid", "mean_so3", "worst_so3")},
                   "std_grid": s["std_grid"], "metric": "dice", "train_steps": res.global_step,
                   "eval_seconds": round(time.time() - t, 2), "eval_cost": 1, "arch": comp.arch,
                   "group": comp.group if comp.arch == "equivariant" else "trivial", "head": comp.head,
                   "equivariance_error": rep.equivariance_error, "curve": learning_curve(res.metrics_csv),
                   "canonicalizer": comp.canonicalize,
                   "identity_rate": res.model.identity_rate(volume["image"][None])
                   if hasattr(res.model, "identity_rate") else None,
                   **record_intervals(rep, seed=seed), "per_item": rep.per_item,
                   **{f"upright_{key}": v for key, v in upright.items() if key.startswith("dice_")}}
            _say(f"    Dice upright {rec['upright']:.3f}  cube mean {rec['mean_grid']:.3f} worst "
                 f"{rec['worst_grid']:.3f}  so3 mean {rec['mean_so3']:.3f}  ({rec['train_seconds']:.0f} s, "
                 f"{res.global_step} steps)", verbose)
            records.append(rec)
            reports.append(rep)
            if keep_models:
                models[(comp.name, seed)] = res.model
    config = dict(dataset=dataset, competitors=list(competitors), seeds=list(seeds), downsample=downsample,
                  patch_size=patch_size, val_crop=val_crop, channels=list(channels), strides=list(strides),
                  convs_per_level=convs_per_level, epochs=epochs, patches_per_epoch=patches_per_epoch,
                  batch_size=batch_size, lr=lr, n_random=n_random, threads=torch.get_num_threads())
    caption = (f"{dataset} at {downsample}x the bundled spacing: trained on random {patch_size}^3 patches, scored on "
               f"the central {val_crop}^3 crop of the same scan (fit, not generalisation); Dice = mean over "
               f"{k - 1} foreground classes")
    return {"records": records, "reports": reports, "config": config, "caption": caption, "models": models,
            "volume": volume, "class_names": class_names}


def plot_learning_curves(records: Sequence[Dict], path: Path) -> Path:
    """Validation Dice vs training step per competitor (mean over seeds, one panel per dataset)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        for model in dict.fromkeys(r["model"] for r in records if r["dataset"] == ds):
            curves = [dict(r["curve"]) for r in records if r["dataset"] == ds and r["model"] == model and r["curve"]]
            steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
            if steps:
                ax.plot(steps, [np.mean([c[s] for c in curves]) for s in steps], marker=".", label=model)
        ax.set_xlabel("training step")
        ax.set_ylabel("validation Dice (upright)")
        ax.set_title(f"{ds}: learning curves (mean over seeds)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
