"""The main demo (``equivox demo``): an octa-equivariant model vs plain CNNs under rotations.

:func:`run_demo` trains four models (equivariant, plain at matched parameters, plain + rotation augmentation,
plain + canonicalizer) on bundled real data through the benchmark harness (:mod:`equivox.benchmark`), evaluates them
upright, under the 24 cube rotations and under random SO(3) rotations, prints the comparison and saves reports, plots
and ``summary.json``. Its presets (:data:`DEMO_PRESETS`) are :class:`~equivox.config.TrainConfig` sections plus what
``--quick`` changes; importing this module is cheap (``equivox demo --help`` reads them).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

from .config import ConfigError, DataConfig, NetworkConfig, TrainConfig, TrainerConfig
from .console import say as _say

__all__ = ["run_demo", "DemoPreset", "demo_preset", "DEMO_PRESETS", "DEMO_TARGETS", "SMOKE_TEST", "CHEST_CAPTION"]

#: the settings a demo preset holds besides TrainConfig fields: segmentation test data (side of the centre crop
#: scored, ``None``: whole volumes; test volumes scored, ``None``: all)
TEST_SETTINGS = ("test_crop", "max_test")


@dataclass(frozen=True)
class DemoPreset:
    """One preset of the demo: the full run's settings by config section (fields not given keep
    :class:`~equivox.config.TrainConfig`'s defaults) and what ``--quick`` changes.

    Attributes:
        label: what ``equivox demo --help`` calls it. task: ``"classify"`` or ``"segment"``.
        uses: the :class:`~equivox.config.TrainConfig` settings the demo's runs take (the harness's arguments; the
            four roles fix the rest: group, augmentation, ...).
        data, network, trainer: the full run's sections.
        test: segmentation test settings (:data:`TEST_SETTINGS`).
        quick: the settings ``--quick`` changes (TrainConfig fields or test settings).
    """

    label: str
    task: str
    uses: Tuple[str, ...]
    data: DataConfig
    network: NetworkConfig
    trainer: TrainerConfig
    test: Mapping[str, Any] = field(default_factory=dict)
    quick: Mapping[str, Any] = field(default_factory=dict)

    def settings(self, quick: bool = False) -> Dict[str, Any]:
        """``{setting: value}`` of a run: the :attr:`uses` TrainConfig settings, then the test settings."""
        values: Dict[str, Any] = {}
        for section in (self.data, self.network, self.trainer):
            values.update(vars(section))
        values.update(self.test)
        if quick:
            values.update(self.quick)
        return {k: values[k] for k in (*self.uses, *self.test)}

    def config(self, settings: Mapping[str, Any]) -> TrainConfig:
        """The validated :class:`~equivox.config.TrainConfig` of ``settings`` (raises
        :class:`~equivox.config.ConfigError` naming a bad value)."""
        return TrainConfig(data=self.data, network=self.network, trainer=self.trainer, task=self.task,
                           **{k: v for k, v in settings.items() if k not in TEST_SETTINGS})


_CLASSIFY_USES = ("dataset", "input_size", "channels", "strides", "convs_per_level", "hidden_features", "epochs",
                  "batch_size", "lr", "seed")
_SEGMENT_USES = ("dataset", "downsample", "patch_size", "val_crop", "channels", "strides", "convs_per_level",
                 "epochs", "patches_per_epoch", "batch_size", "lr", "seed")
#: classification demo: the harness's classification run (:func:`equivox.benchmark.run_classification`) on furniture
_DEMO_CLASSIFY = DemoPreset(
    "classify", "classify", _CLASSIFY_USES,
    data=DataConfig(dataset="furniture", input_size=16),
    network=NetworkConfig(channels=(4, 8, 16), strides=(2, 2), convs_per_level=1, hidden_features=(64,)),
    trainer=TrainerConfig(epochs=25),
    quick=dict(input_size=8, channels=(2, 2), strides=(2,), hidden_features=(8,), epochs=1))
_DEMO_ROLES = {"classify": ("equivariant (octa)", "plain (matched params)", "plain + grid aug",
                            "plain + canonicalizer"),
               "segment": ("equivariant (octa)", "plain (matched params)", "plain + grid aug",
                           "plain (frozen) + fitted canonicalizer")}
_ROLE_FILES = ("equivariant", "plain", "plain_aug", "canonical")
#: segmentation demo: the harness's segmentation run (:func:`equivox.benchmark.run_segmentation`) on the KiCad parts
#: (find the metal; whole 16^3 parts; 120 of the 880 test parts, never seen in training or validation)
_DEMO_SEGMENT = DemoPreset(
    "segment", "segment", _SEGMENT_USES,
    data=DataConfig(task="segment", dataset="kicad_part_segments", downsample=1, patch_size=16, val_crop=16,
                    patches_per_epoch=512),
    network=NetworkConfig(channels=(2, 4), strides=(2,), convs_per_level=2),
    trainer=TrainerConfig(epochs=8),
    test=dict(test_crop=None, max_test=120),
    quick=dict(channels=(1, 2), convs_per_level=1, epochs=1, patches_per_epoch=16, batch_size=4, max_test=32))
#: ``--dataset chest_ct``: one upright CT, scored on its central crop (which is also its validation crop)
_DEMO_SEGMENT_CHEST = DemoPreset(
    "segment on the chest CT", "segment", _SEGMENT_USES,
    data=DataConfig(task="segment", dataset="chest_ct", downsample=2, patch_size=24, val_crop=48,
                    patches_per_epoch=32),
    network=NetworkConfig(channels=(2, 4), strides=(2,), convs_per_level=2),
    trainer=TrainerConfig(epochs=20),
    test=dict(test_crop=48, max_test=None),
    quick=dict(downsample=4, patch_size=16, val_crop=16, test_crop=16, channels=(1, 2), convs_per_level=1, epochs=1,
               patches_per_epoch=8, batch_size=4))
#: every preset, in the order ``equivox demo --help`` lists them
DEMO_PRESETS = (_DEMO_CLASSIFY, _DEMO_SEGMENT, _DEMO_SEGMENT_CHEST)
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


def demo_preset(task: str, dataset: Optional[str] = None) -> DemoPreset:
    """The preset of the ``task`` demo (``"classify"`` / ``"segment"``; ``dataset="chest_ct"``: the chest CT one)."""
    if task not in ("classify", "segment"):
        raise ConfigError(f"task must be 'classify' or 'segment', got {task!r}")
    if task == "classify":
        return _DEMO_CLASSIFY
    return _DEMO_SEGMENT_CHEST if dataset == "chest_ct" else _DEMO_SEGMENT


def _demo_settings(preset: DemoPreset, quick: bool, config: Optional[str],
                   overrides: Mapping[str, Any]) -> Tuple[Dict[str, Any], list]:
    """``(settings, ignored)``: the preset's settings with the YAML file's and then ``overrides``' values applied
    (``None`` values ignored), and the valid settings given that the demo does not use."""
    from .config import load_yaml_config

    s = preset.settings(quick)
    given = dict(load_yaml_config(config)) if config else {}
    given.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(k for k in given if k not in TrainConfig.field_names() and k not in TEST_SETTINGS)
    if unknown:
        raise ConfigError(f"unknown demo settings {unknown}; the demo takes {', '.join(s)}")
    s.update({k: v for k, v in given.items() if k in s})
    return s, sorted(k for k in given if k not in s)


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
        config: YAML file overriding the preset (its settings: :meth:`DemoPreset.settings`; TrainConfig keys the
            demo does not use are reported and ignored, unknown keys are an error).
        n_random: random SO(3) rotations (default 2 quick, else 8 classify / 4 segment).
        max_test: classification test items to score (default 16 quick, else all).
        progress: show progress bars.
        overrides: settings overriding preset and ``config`` (``None`` values are ignored; TrainConfig keys the
            preset does not use are reported and ignored).

    Raises:
        ConfigError: an unknown setting, or a bad value (named).

    Returns:
        the output folder.
    """
    import torch

    from .benchmark import compare, format_records, format_verdicts, save_records
    from .evaluation import plot_rotation_scores

    overrides = overrides or {}
    preset = demo_preset(task, overrides.get("dataset"))
    s, ignored = _demo_settings(preset, quick, config, overrides)
    preset.config(s)  # a bad value ends here, with a ConfigError naming it, before anything is written
    t_start = time.time()
    out = Path(out or f"outputs/demo-{task}")
    out.mkdir(parents=True, exist_ok=True)
    if ignored:  # the four roles fix the group and the augmentation
        _say(f"note: not used by the {task} demo: {', '.join(ignored)} (settings: {', '.join(s)})")
    n_random = n_random if n_random is not None else (2 if quick else 8 if task == "classify" else 4)
    _say(f"equivox demo ({task}{', quick' if quick else ''}): does exact cube-rotation equivariance pay off when "
         f"data arrive in any orientation? {torch.get_num_threads()} CPU threads; output -> {out}")
    roles = _DEMO_ROLES[task]
    _say("  models: " + "; ".join(roles) + " (parameters matched to the equivariant model; the canonicalizer "
         "comes on top)")
    if task == "classify":
        res, stem, extra_files = _classify(s, preset, roles, n_random, max_test, quick, out, progress)
    else:
        res, stem, extra_files = _segment(s, preset, roles, n_random, out, progress)
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


def _harness_kwargs(s: Dict[str, Any], preset: DemoPreset) -> Dict[str, Any]:
    """The harness's keyword arguments: the settings the preset uses (dataset and seed go positionally)."""
    return {k: s[k] for k in (*preset.uses, *preset.test) if k not in ("dataset", "seed")}


def _classify(s: Dict[str, Any], preset: DemoPreset, roles, n_random: int, max_test: Optional[int], quick: bool,
              out: Path, progress: bool):
    """The classification demo's runs: :func:`equivox.benchmark.run_classification` with the four roles."""
    from .benchmark import run_classification

    max_test = max_test if max_test is not None else (16 if quick else None)
    _say(f"  data: {s['dataset']} (trained upright; tested upright, under all 24 cube rotations and under "
         f"{n_random} random SO(3) rotations, resampled at the stored 32^3 before pooling to {s['input_size']}^3)\n")
    res = run_classification(s["dataset"], roles, (1.0,), (int(s["seed"]),), n_random=n_random, max_test=max_test,
                             out=out / "runs", progress=progress, **_harness_kwargs(s, preset))
    return res, "accuracy", []


def _segment(s: Dict[str, Any], preset: DemoPreset, roles, n_random: int, out: Path, progress: bool):
    """The segmentation demo's runs (:func:`equivox.benchmark.run_segmentation`) and the slices
    plot: each model's prediction upright and under one random rotation, mapped back."""
    from .benchmark import run_segmentation
    from .evaluation import plot_segmentation_slices, predict_rotated, rotation_set

    if s["dataset"] == "chest_ct":
        _say(f"  data: bundled chest CT at {s['downsample']}x its spacing; trained on random {s['patch_size']}^3 "
             f"patches upright, scored on the central {s['test_crop']}^3 crop (also the validation crop) upright, "
             f"under all 24 cube rotations and under {n_random} random SO(3) rotations\n  {CHEST_CAPTION}\n")
    else:
        _say(f"  data: {s['dataset']}: find the metal (pins, leads) in whole {s['patch_size']}^3 parts; trained on "
             f"the training parts upright ({s['epochs']} epochs of {s['patches_per_epoch']} parts), checkpoint chosen "
             f"on the validation parts, scored on {s['max_test']} test parts never seen in either, upright, under all "
             f"24 cube rotations and under {n_random} random SO(3) rotations (image and label together)\n")
    res = run_segmentation(s["dataset"], roles, (int(s["seed"]),), n_random=n_random, out=out / "runs",
                           progress=progress, keep_models=True, **_harness_kwargs(s, preset))
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
