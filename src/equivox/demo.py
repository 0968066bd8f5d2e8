"""The main demo (``equivox demo``): an octa-equivariant model vs plain CNNs under rotations.

:func:`run_demo` trains four models (equivariant, plain at matched parameters, plain + rotation augmentation,
plain + canonicalizer) on bundled real data through the benchmark harness (:mod:`equivox.benchmark`), evaluates them upright,
under the 24 cube rotations and under random SO(3) rotations, prints the comparison and saves reports, plots and
``summary.json``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from .benchmark import compare, format_records, format_verdicts, save_records
from .benchmark import say as _say
from .evaluation import plot_rotation_scores

__all__ = ["run_demo"]

#: classification demo: the harness's classification run (:func:`equivox.benchmark.run_classification`) on furniture
_DEMO_CLASSIFY = dict(
    full=dict(dataset="furniture", input_size=16, channels=(4, 8, 16), strides=(2, 2), convs_per_level=1,
              hidden_features=(64,), epochs=25, batch_size=16, lr=3e-3, seed=0),
    quick=dict(dataset="furniture", input_size=8, channels=(2, 2), strides=(2,), convs_per_level=1,
               hidden_features=(8,), epochs=1, batch_size=16, lr=3e-3, seed=0),
)
_DEMO_ROLES = {"classify": ("equivariant (octa)", "plain (matched params)", "plain + grid aug",
                            "plain + canonicalizer"),
               "segment": ("equivariant (octa)", "plain (matched params)", "plain + grid aug",
                           "plain (frozen) + fitted canonicalizer")}
_ROLE_FILES = ("equivariant", "plain", "plain_aug", "canonical")
#: segmentation demo: the harness's segmentation run (:func:`equivox.benchmark.run_segmentation`) on the KiCad parts
#: (find the metal; whole 16^3 parts; 120 of the 880 test parts, never seen in training or validation)
_DEMO_SEGMENT = dict(
    full=dict(dataset="kicad_part_segments", downsample=1, patch_size=16, val_crop=16, test_crop=None, max_test=120,
              channels=(2, 4), strides=(2,), convs_per_level=2, epochs=8, patches_per_epoch=512, batch_size=16,
              lr=3e-3, seed=0),
    quick=dict(dataset="kicad_part_segments", downsample=1, patch_size=16, val_crop=16, test_crop=None, max_test=32,
               channels=(1, 2), strides=(2,), convs_per_level=1, epochs=1, patches_per_epoch=16, batch_size=4,
               lr=3e-3, seed=0),
)
#: ``--dataset chest_ct``: one upright CT, scored on its central crop (which is also its validation crop)
_DEMO_SEGMENT_CHEST = dict(
    full=dict(dataset="chest_ct", downsample=2, patch_size=24, val_crop=48, test_crop=48, max_test=None,
              channels=(2, 4), strides=(2,), convs_per_level=2, epochs=20, patches_per_epoch=32, batch_size=16,
              lr=3e-3, seed=0),
    quick=dict(dataset="chest_ct", downsample=4, patch_size=16, val_crop=16, test_crop=16, max_test=None,
               channels=(1, 2), strides=(2,), convs_per_level=1, epochs=1, patches_per_epoch=8, batch_size=4,
               lr=3e-3, seed=0),
)
#: what a ``--quick`` run says beside its numbers
SMOKE_TEST = "smoke test (--quick): tiny models and data, numbers are not results"
#: the demo's paired targets, written before its runs: the equivariant and the canonicalized rows' bias-free worst
#: cube rotation >= the best plain row's (by that statistic), and their upright score within 0.02 of the best plain
#: row's upright
DEMO_TARGETS = {"worst": 0.0, "upright": -0.02}
#: the caption of the chest CT demo: what its numbers can and cannot say
CHEST_CAPTION = ("In upright scans orientation is information (organs sit where they sit in RAS): an invariant model "
                 "cannot use it; use head='oriented' or canonicalization. One scan, scored on its central crop, "
                 "which is also the validation crop: a smoke test, not evidence.")


def run_demo(task: str = "classify", quick: bool = False, out=None, config: Optional[str] = None,
             n_random: Optional[int] = None, max_test: Optional[int] = None, progress: bool = True,
             overrides: Optional[Mapping[str, Any]] = None) -> Path:
    """Show what exact rotation equivariance buys: an octa-equivariant model vs plain CNNs, under rotations.

    What it trains (four roles, parameters matched to the equivariant model, same seed and steps):
    ``"equivariant (octa)"``, ``"plain (matched params)"`` (its trivial-group twin), ``"plain + grid aug"``
    (the twin trained with random cube rotations) and ``"plain + canonicalizer"`` (the twin behind an exactly
    equivariant canonicalizer, :func:`equivox.canonicalization.canonicalize`, trained with it upright).
    ``task="classify"`` (default): ``InvariantClassifier`` s on the
    bundled furniture shapes (9 classes; ``dataset="lidc"`` for the LIDC nodules) through
    :func:`equivox.benchmark.run_classification`; ``task="segment"``: ``EquivariantUNet`` s finding the metal (pins,
    leads) in KiCad parts (``kicad_part_segments``; the canonicalizer role is the trained plain U-Net behind a
    canonicalizer fitted afterwards) through :func:`equivox.benchmark.run_segmentation`; ``dataset="chest_ct"``:
    the bundled chest CT organs (:data:`CHEST_CAPTION`). All are trained upright and tested upright, under every
    cube rotation and under ``n_random`` random SO(3) rotations. ``quick=True`` uses tiny data and models (seconds:
    a smoke test, its numbers are not results); the full runs take about 10 minutes on 2 CPU cores.

    What it prints: the data and models, per-model training and scores, the comparison table (upright / cube
    mean, worst / SO(3) mean, worst, each with its 95 % bootstrap interval over test items) and the files
    written.

    Where outputs go: ``out`` (default ``outputs/demo-<task>``): ``comparison.txt``, ``summary.json``
    (``summaries: {model name: {upright, mean_grid, worst_grid, mean_so3, worst_so3, ...}}``), per-role
    ``report_{equivariant,plain,plain_aug,canonical}.{json,csv}``, ``rotation_scores.png``, ``accuracy.*`` /
    ``segmentation.*`` (records), checkpoints under ``runs/``; segment: ``segmentation_slices.png`` too.

    Args:
        config: YAML file overriding the preset (the keys of ``_DEMO_CLASSIFY`` / ``_DEMO_SEGMENT``).
        n_random: random SO(3) rotations (default 2 quick, else 8 classify / 4 segment).
        max_test: classification test items to score (default 16 quick, else all).
        progress: show progress bars.
        overrides: settings overriding preset and ``config`` (``None`` values are ignored; keys the preset does
            not have are reported and ignored).

    Returns:
        the output folder.
    """
    import torch

    from .training import load_yaml_config

    if task not in ("classify", "segment"):
        raise ValueError(f"task must be 'classify' or 'segment', got {task!r}")
    t_start = time.time()
    out = Path(out or f"outputs/demo-{task}")
    out.mkdir(parents=True, exist_ok=True)
    overrides = overrides or {}
    presets = _DEMO_CLASSIFY if task == "classify" else (
        _DEMO_SEGMENT_CHEST if overrides.get("dataset") == "chest_ct" else _DEMO_SEGMENT)
    s: Dict[str, Any] = dict(presets["quick" if quick else "full"])
    if config:
        s.update(load_yaml_config(config))
    s.update({k: v for k, v in overrides.items() if v is not None and k in s})
    ignored = sorted(k for k, v in overrides.items() if v is not None and k not in s)
    if ignored:  # the four roles fix the group and the augmentation
        _say(f"note: not used by the {task} demo: {', '.join(ignored)} (settings: {', '.join(s)})")
    n_random = n_random if n_random is not None else (2 if quick else 8 if task == "classify" else 4)
    _say(f"equivox demo ({task}{', quick' if quick else ''}): does exact cube-rotation equivariance pay off when "
         f"data arrive in any orientation? {torch.get_num_threads()} CPU threads; output -> {out}")
    roles = _DEMO_ROLES[task]
    _say("  models: " + "; ".join(roles) + " (parameters matched to the equivariant model; the canonicalizer "
         "comes on top)")
    if task == "classify":
        res, stem, extra_files = _classify(s, roles, n_random, max_test, quick, out, progress)
    else:
        res, stem, extra_files = _segment(s, roles, n_random, out, progress)
    records, reports = res["records"], res["reports"]
    metric = records[0]["metric"]
    table = format_records(records, metric)
    _say("\n" + res["caption"])
    _say((f"{SMOKE_TEST}\n" if quick else "") + table)
    files = save_records(res, out, stem)
    for rep, role in zip(reports, _ROLE_FILES):
        files += [rep.to_json(out / f"report_{role}.json"), rep.to_csv(out / f"report_{role}.csv")]
    files.append(plot_rotation_scores(reports, out / "rotation_scores.png",
                                      title=f"{s['dataset']}: {metric} per rotation (upright, 24 cube rotations, "
                                            "random SO(3))"))
    files += extra_files
    if quick:
        table = f"{SMOKE_TEST}\n{table}"
    (out / "comparison.txt").write_text(res["caption"] + "\n" + table + "\n")
    summary = {
        "task": task, "quick": bool(quick), "settings": s, "n_random_so3": n_random, "caption": res["caption"],
        "smoke_test": bool(quick),
        "summaries": {r["model"]: {k: r.get(k) for k in ("upright", "mean_grid", "worst_grid", "worst_grid_split",
                                                         "mean_so3",
                                                         "worst_so3", "std_grid", "params", "train_seconds",
                                                         "train_steps", "equivariance_error", "content_lost_so3",
                                                         "identity_rate", "equivalent_rate", "upright_ci",
                                                         "worst_grid_ci")}
                      for r in records},
        "max_equivariance_error": {r["model"]: r["equivariance_error"] for r in records},
        "total_seconds": time.time() - t_start, "threads": torch.get_num_threads(),
    }
    sj = out / "summary.json"
    sj.write_text(json.dumps(summary, indent=2, default=str))
    files += [out / "comparison.txt", sj]
    eq, canon, plains = records[0], records[3], records[1:3]
    best_plain = max(plains, key=lambda r: r["worst_grid_split"] or 0)
    best_upright = max(plains, key=lambda r: r["upright"])
    identity = "n/a" if canon.get("identity_rate") is None else (
        f"{canon['identity_rate']:.0%} (an equivalent pose for {canon['equivalent_rate']:.0%})")
    _say(f"\nworst cube rotation (chosen on half the items, scored on the other half): equivariant "
         f"{eq['worst_grid_split']:.3f} vs best plain {best_plain['worst_grid_split']:.3f} ({best_plain['model']}); "
         f"upright {eq['upright']:.3f} vs best plain {best_upright['upright']:.3f}")
    _say(f"{canon['model']}: upright {canon['upright']:.3f}, worst cube rotation {canon['worst_grid_split']:.3f} "
         f"(exact: = its upright), identity picked for {identity} of upright items")
    if quick:
        _say(f"\n{SMOKE_TEST}: no verdicts drawn")
        summary["paired"] = []
    else:  # targets as written before the runs: DEMO_TARGETS
        paired = [compare(records, m["model"], best_plain["model"], "worst_grid_split", DEMO_TARGETS["worst"])
                  for m in (eq, canon)]
        paired += [compare(records, m["model"], best_upright["model"], "upright", DEMO_TARGETS["upright"])
                   for m in (eq, canon)]
        _say("paired on the same test items (difference [95 % interval] vs threshold; met / missed only when the "
             "interval excludes it):\n" + format_verdicts(paired))
        summary["paired"] = paired
    sj.write_text(json.dumps(summary, indent=2, default=str))
    _say(f"finished in {summary['total_seconds']:.0f} s. Results in {out}/:")
    for f in files:
        _say(f"  {f}")
    return out


def _classify(s: Dict[str, Any], roles, n_random: int, max_test: Optional[int], quick: bool, out: Path,
              progress: bool):
    """The classification demo's runs: :func:`equivox.benchmark.run_classification` with the four roles."""
    from .benchmark import run_classification

    max_test = max_test if max_test is not None else (16 if quick else None)
    _say(f"  data: {s['dataset']} (trained upright; tested upright, under all 24 cube rotations and under "
         f"{n_random} random SO(3) rotations, resampled at the stored 32^3 before pooling to {s['input_size']}^3)\n")
    res = run_classification(s["dataset"], roles, (1.0,), (int(s["seed"]),), input_size=s["input_size"],
                             channels=s["channels"], strides=s["strides"], convs_per_level=s["convs_per_level"],
                             hidden_features=s["hidden_features"], epochs=s["epochs"], batch_size=s["batch_size"],
                             lr=s["lr"], n_random=n_random, max_test=max_test, out=out / "runs", progress=progress)
    return res, "accuracy", []


def _segment(s: Dict[str, Any], roles, n_random: int, out: Path, progress: bool):
    """The segmentation demo's runs (:func:`equivox.benchmark.run_segmentation`) and the slices
    plot: each model's prediction upright and under one random rotation, mapped back."""
    from .evaluation import plot_segmentation_slices, predict_rotated, rotation_set
    from .benchmark import run_segmentation

    if s["dataset"] == "chest_ct":
        _say(f"  data: bundled chest CT at {s['downsample']}x its spacing; trained on random {s['patch_size']}^3 "
             f"patches upright, scored on the central {s['test_crop']}^3 crop (also the validation crop) upright, "
             f"under all 24 cube rotations and under {n_random} random SO(3) rotations\n  {CHEST_CAPTION}\n")
    else:
        _say(f"  data: {s['dataset']}: find the metal (pins, leads) in whole {s['patch_size']}^3 parts; trained on "
             f"the training parts upright ({s['epochs']} epochs of {s['patches_per_epoch']} parts), checkpoint chosen "
             f"on the validation parts, scored on {s['max_test']} test parts never seen in either, upright, under all "
             f"24 cube rotations and under {n_random} random SO(3) rotations (image and label together)\n")
    res = run_segmentation(s["dataset"], roles, (int(s["seed"]),), downsample=s["downsample"],
                           patch_size=s["patch_size"], val_crop=s["val_crop"], test_crop=s["test_crop"],
                           max_test=s["max_test"], channels=s["channels"],
                           strides=s["strides"], convs_per_level=s["convs_per_level"], epochs=s["epochs"],
                           patches_per_epoch=s["patches_per_epoch"], batch_size=s["batch_size"], lr=s["lr"],
                           n_random=n_random, out=out / "runs", progress=progress, keep_models=True)
    rot = rotation_set("so3", n_random=1, seed=int(s["seed"]))[-1]
    img, lab = res["volume"]["image"], res["volume"]["label"]
    preds = {}
    for (name, _), model in res["models"].items():  # rows: models; columns: upright, rotated and mapped back
        preds[name] = {"upright": predict_rotated(model, img[None], rotation_set("identity")[0])[0],
                       f"rotated {rot.name},\nmapped back": predict_rotated(model, img[None], rot)[0]}
    plot = plot_segmentation_slices(img, lab, preds, out / "segmentation_slices.png", rotation_name=rot.name,
                                    num_classes=len(res["class_names"]), class_names=res["class_names"],
                                    title=f"{s['dataset']}: predictions upright and under a random rotation")
    return res, "segmentation", [plot]
