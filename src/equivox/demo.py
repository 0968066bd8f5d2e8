"""The main demo (``equivox demo``): an octa-equivariant model vs a parameter-matched plain CNN under rotations.

:func:`run_demo` trains both models on bundled real data, evaluates them upright, under the 24 cube rotations and
under random SO(3) rotations, measures their equivariance error, prints the comparison and saves reports and plots.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

__all__ = ["run_demo"]

#: classification demo: the accuracy suite's harness (:mod:`equivox.accuracy`) on the bundled furniture shapes
_DEMO_CLASSIFY = dict(
    full=dict(dataset="furniture", input_size=16, channels=(4, 8, 16), strides=(2, 2), convs_per_level=1,
              hidden_features=(64,), epochs=25, batch_size=16, lr=3e-3, seed=0),
    quick=dict(dataset="furniture", input_size=8, channels=(2, 2), strides=(2,), convs_per_level=1,
               hidden_features=(8,), epochs=1, batch_size=16, lr=3e-3, seed=0),
)
_DEMO_ROLES = ("equivariant (octa)", "plain (matched params)", "plain + grid aug")
_DEMO_SEGMENT = dict(
    full=dict(task="segment", dataset="chest_ct", downsample=2, patch_size=16, patches_per_epoch=48, val_crop=32,
              channels=(2, 4), strides=(2,), convs_per_level=1, epochs=5, batch_size=4, lr=3e-3, augment="none"),
    quick=dict(task="segment", dataset="chest_ct", downsample=4, patch_size=8, patches_per_epoch=4, val_crop=16,
               channels=(2, 2), strides=(2,), convs_per_level=1, epochs=1, batch_size=2, lr=3e-3, augment="none"),
)


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def _step(i: int, n: int, msg: str) -> None:
    _say(f"\n[{i}/{n}] {msg}")


def _demo_config(task: str, quick: bool, config: Optional[str], overrides: Mapping[str, Any], progress: bool):
    """The demo's :class:`~equivox.training.TrainConfig`: preset < YAML ``config`` < ``overrides`` (None = unset)."""
    from .training import TrainConfig, load_yaml_config

    d: Dict[str, Any] = dict(_DEMO_SEGMENT["quick" if quick else "full"])
    d["group"] = "octa"
    d["extra"] = {"model_summary": False}
    if config:
        d.update(load_yaml_config(config))
    d.update({k: v for k, v in overrides.items() if v is not None})
    if not progress:
        d["progress"] = False
    return TrainConfig.from_dict(d)


def run_demo(task: str = "classify", quick: bool = False, out=None, config: Optional[str] = None,
             n_random: Optional[int] = None, max_test: Optional[int] = None, progress: bool = True,
             overrides: Optional[Mapping[str, Any]] = None) -> Path:
    """Show what exact rotation equivariance buys: an octa-equivariant model vs plain CNNs, under rotations.

    What it trains (three roles, parameters matched to the equivariant model):
    ``task="classify"`` (default): on the bundled furniture shapes (9 classes; ``dataset="lidc"`` for the LIDC
    nodules) an ``InvariantClassifier(group="octa")``, its trivial-group twin, and the twin trained with random
    cube rotations (``"equivariant (octa)"``, ``"plain (matched params)"``, ``"plain + grid aug"``), through the
    accuracy suite's harness (:func:`equivox.accuracy.run_suite`); ``task="segment"``: an
    ``EquivariantUNet(group="octa")``, its twin and the twin + grid augmentation on the bundled chest CT organs.
    All are trained upright and tested upright, under every cube rotation and under ``n_random`` random SO(3)
    rotations. ``quick=True`` uses tiny data and models (seconds); the full run takes about 5-10 min on 2 cores.

    What it prints: the data and models, per-model training and scores, the comparison table (mean over seeds of
    upright / cube mean, worst / SO(3) mean, worst) and the files written.

    Where outputs go: ``out`` (default ``outputs/demo-<task>``): ``comparison.txt``, ``summary.json``
    (``summaries: {model name: {upright, mean_grid, worst_grid, mean_so3, worst_so3, ...}}``), per-model
    ``report_*.{json,csv}``, ``rotation_scores.png``; classify: ``accuracy.{json,csv}`` and checkpoints under
    ``runs/``; segment: ``equivariance_errors.png``, ``segmentation_slices.png`` and checkpoints per model.

    Args:
        config: YAML file overriding the preset (classify: the keys of ``_DEMO_CLASSIFY``; segment:
            :class:`~equivox.training.TrainConfig` keys).
        n_random: random SO(3) rotations (default 2 quick, else 8 classify / 4 segment).
        max_test: classification test items to score (default 16 quick, else all).
        progress: show progress bars.
        overrides: settings overriding preset and ``config`` (``None`` values are ignored).

    Returns:
        the output folder.
    """
    if task == "classify":
        return _run_classify_demo(quick, out, config, n_random, max_test, progress, overrides or {})
    import torch

    from .baselines import count_parameters, matched_baseline
    from .evaluation import compare_reports, plot_equivariance_errors, plot_rotation_scores, rotation_set
    from .testing import equivariance_errors, format_error_table
    from .training import build_datasets, build_model, fit

    t_start = time.time()
    out = Path(out or f"outputs/demo-{task}")
    out.mkdir(parents=True, exist_ok=True)
    cfg = _demo_config(task, quick, config, overrides or {}, progress)
    n_random = n_random if n_random is not None else (2 if quick else 4)
    n_steps = 6
    _say(f"equivox demo ({task}{', quick' if quick else ''}): octa-equivariant model vs parameter-matched plain "
         f"CNN; {torch.get_num_threads()} CPU threads; output -> {out}")

    _step(1, n_steps, f"loading data ({cfg.dataset})")
    t = time.time()
    train_ds, val_ds, info = build_datasets(cfg)
    _say(f"  train {info.n_train} items, val {info.n_val} items, classes {info.class_names} "
         f"({time.time() - t:.1f} s)")

    _step(2, n_steps, "building models (a group's kernel bases take 15-60 s on a cold cache, then load from disk)")
    t = time.time()
    eq = build_model(cfg, info.in_channels, info.num_classes)
    t_eq = time.time() - t
    t = time.time()
    torch.manual_seed(cfg.seed)
    bl = matched_baseline(eq)
    t_bl = time.time() - t
    torch.manual_seed(cfg.seed)
    bl_aug = matched_baseline(eq)
    models = {"equivariant (octa)": eq, "plain CNN (trivial)": bl, "plain CNN + grid aug": bl_aug}
    params = {k: count_parameters(m) for k, m in models.items()}
    _say(f"  equivariant: {type(eq).__name__}(group=octa, channels={list(eq.channels)} fields = "
         f"{list(eq.tensor_channels)} tensor channels), {params['equivariant (octa)']} parameters, built in {t_eq:.1f} s")
    _say(f"  baseline:    {type(bl).__name__}(group=trivial, channels={list(bl.channels)}), "
         f"{params['plain CNN (trivial)']} parameters (matched), built in {t_bl:.1f} s; trained twice: upright "
         "data, and with random cube rotations (grid augmentation)")

    _step(3, n_steps, f"training the three models ({cfg.epochs} epochs each, seed {cfg.seed})")
    fits, train_s = {}, {}
    aug_train_ds = build_datasets(cfg.merged({"augment": "grid"}))[0]
    for (label, model), sub in zip(models.items(), ("equivariant", "baseline", "baseline_aug")):
        _say(f"  -- {label}")
        aug = sub == "baseline_aug"
        c = cfg.merged({"out_dir": str(out / sub), "augment": "grid" if aug else cfg.augment})
        res = fit(c, model=model, train_data=aug_train_ds if aug else train_ds, val_data=val_ds, info=info)
        fits[label], train_s[label] = res, res.seconds
        _say(f"     {res.global_step} steps in {res.seconds:.1f} s; " + ", ".join(
            f"{k}={v:.3f}" for k, v in sorted(res.metrics.items()) if k.startswith("val_")))

    _step(4, n_steps, "evaluating upright, under the 24 cube rotations and under "
                      f"{n_random} random SO(3) rotations")
    rots = rotation_set("standard", group="octa", n_random=n_random, seed=cfg.seed)
    t = time.time()
    reports, extra = _demo_eval_segment(cfg, fits, rots, info, out, progress)
    eval_s = time.time() - t

    _step(5, n_steps, "equivariance error of the models (relative, per cube rotation, on real inputs)")
    x_chk = extra["check_input"]
    errs = {label: equivariance_errors(r.model, x_chk, "octa") for label, r in fits.items()}
    for label, e in errs.items():
        _say(format_error_table(e, title=f"  {label}") if not quick else
             f"  {label}: max relative error {max(v.relative for v in e):.2e}")
    summary_err = {label: max(v.relative for v in e) for label, e in errs.items()}

    _step(6, n_steps, "results")
    table = compare_reports(reports)
    _say(table)
    files = []
    for rep, sub in zip(reports, ("equivariant", "baseline", "baseline_aug")):
        files += [rep.to_json(out / f"report_{sub}.json"), rep.to_csv(out / f"report_{sub}.csv")]
    files.append(plot_rotation_scores(reports, out / "rotation_scores.png",
                                      title=f"{task}: score per rotation (upright, 24 cube rotations, SO(3))"))
    files.append(plot_equivariance_errors(errs, out / "equivariance_errors.png",
                                          title="relative equivariance error per cube rotation"))
    files += extra.get("files", [])
    (out / "comparison.txt").write_text(table + "\n")
    total = time.time() - t_start
    summary = {
        "task": task, "quick": bool(quick), "config": cfg.to_dict(), "n_random_so3": n_random,
        "parameters": params, "build_seconds": {"equivariant (octa)": t_eq, "plain CNN (trivial)": t_bl,
                                                "plain CNN + grid aug": t_bl},
        "train_seconds": train_s, "eval_seconds": eval_s, "total_seconds": total,
        "max_equivariance_error": summary_err,
        "summaries": {r.name: r.summary() for r in reports},
        "final_val_metrics": {k: v.metrics for k, v in fits.items()},
        "checkpoints": {k: str(v.best_checkpoint) for k, v in fits.items()},
        "threads": torch.get_num_threads(),
    }
    sj = out / "summary.json"
    sj.write_text(json.dumps(summary, indent=2, default=str))
    files += [out / "comparison.txt", sj]
    _say(f"\nfinished in {total:.0f} s. Results in {out}/:")
    for f in files:
        _say(f"  {f}")
    for k, v in fits.items():
        _say(f"  {k}: checkpoints in {v.out_dir / 'checkpoints'}, metrics {v.metrics_csv}")
    return out


def _demo_eval_segment(cfg, fits, rots, info, out: Path, progress: bool):
    from .evaluation import evaluate_segmentation, plot_segmentation_slices, predict_rotated
    from .training import bundled_volume, center_crop

    img, lab, names = bundled_volume(cfg.dataset, cfg.downsample)
    size = cfg.val_crop or 32
    img_c, lab_c = center_crop(img, (size,) * 3), center_crop(lab, (size,) * 3)
    data = [{"image": img_c, "label": lab_c}]
    _say(f"  evaluation volume: centre crop {size}^3 of the chest CT at {3 * cfg.downsample} mm, image and label "
         f"rotated together; {len(rots)} rotations")
    reports = []
    for label, res in fits.items():
        rep = evaluate_segmentation(res.model, data, rots, num_classes=info.num_classes, progress=progress,
                                    name=label, class_names=info.class_names, check_equivariance=True)
        reports.append(rep)
    rot = next((r for r in rots if r.kind == "so3"), rots[-1])
    preds = {}
    for label, res in fits.items():
        preds[f"{label} upright"] = predict_rotated(res.model, img_c[None], rots[0])[0]
        preds[f"{label} {rot.name} (mapped back)"] = predict_rotated(res.model, img_c[None], rot)[0]
    plot = plot_segmentation_slices(img_c, lab_c, preds, out / "segmentation_slices.png", rotation_name=rot.name,
                                    num_classes=info.num_classes)
    return reports, {"check_input": img_c[None], "files": [plot]}


def _run_classify_demo(quick: bool, out, config: Optional[str], n_random: Optional[int], max_test: Optional[int],
                       progress: bool, overrides: Mapping[str, Any]) -> Path:
    """The classification demo: :func:`equivox.accuracy.run_suite` with the three roles of :data:`_DEMO_ROLES`."""
    import torch

    from .accuracy import format_records, run_suite, save_records
    from .evaluation import plot_rotation_scores
    from .training import load_yaml_config

    t_start = time.time()
    out = Path(out or "outputs/demo-classify")
    out.mkdir(parents=True, exist_ok=True)
    s: Dict[str, Any] = dict(_DEMO_CLASSIFY["quick" if quick else "full"])
    if config:
        s.update(load_yaml_config(config))
    s.update({k: v for k, v in overrides.items() if v is not None and k in s})
    ignored = sorted(k for k, v in overrides.items() if v is not None and k not in s)
    if ignored:  # the three roles fix the group and the augmentation; segmentation options do not apply
        _say(f"note: not used by the classification demo: {', '.join(ignored)} (settings: {', '.join(s)})")
    n_random = n_random if n_random is not None else (2 if quick else 8)
    max_test = max_test if max_test is not None else (16 if quick else None)
    _say(f"equivox demo (classify{', quick' if quick else ''}): does exact cube-rotation invariance pay off when "
         f"objects arrive in any orientation? {torch.get_num_threads()} CPU threads; output -> {out}")
    _say(f"  data: {s['dataset']} (trained upright; tested upright, under all 24 cube rotations and under "
         f"{n_random} random SO(3) rotations, resampled at the stored 32^3 before pooling to {s['input_size']}^3)")
    _say("  models: " + "; ".join(_DEMO_ROLES) + " (parameters matched to the equivariant model)\n")
    res = run_suite(s["dataset"], _DEMO_ROLES, (1.0,), (int(s["seed"]),), input_size=s["input_size"],
                    channels=s["channels"], strides=s["strides"], convs_per_level=s["convs_per_level"],
                    hidden_features=s["hidden_features"], epochs=s["epochs"], batch_size=s["batch_size"],
                    lr=s["lr"], n_random=n_random, max_test=max_test, out=out / "runs", progress=progress)
    records, reports = res["records"], res["reports"]
    table = format_records(records, records[0]["metric"])
    _say("\n" + res["caption"])
    _say(table)
    files = save_records(res, out)
    for rep, role in zip(reports, ("equivariant", "plain", "plain_aug")):
        files += [rep.to_json(out / f"report_{role}.json"), rep.to_csv(out / f"report_{role}.csv")]
    files.append(plot_rotation_scores(reports, out / "rotation_scores.png",
                                      title=f"{s['dataset']}: {records[0]['metric']} per rotation (upright, 24 cube "
                                            "rotations, random SO(3))"))
    (out / "comparison.txt").write_text(res["caption"] + "\n" + table + "\n")
    total = time.time() - t_start
    summary = {
        "task": "classify", "quick": bool(quick), "settings": s, "n_random_so3": n_random, "caption": res["caption"],
        "summaries": {r["model"]: {k: r[k] for k in ("upright", "mean_grid", "worst_grid", "mean_so3", "worst_so3",
                                                     "std_grid", "params", "train_seconds", "equivariance_error",
                                                     "content_lost_so3")} for r in records},
        "max_equivariance_error": {r["model"]: r["equivariance_error"] for r in records},
        "total_seconds": total, "threads": torch.get_num_threads(),
    }
    sj = out / "summary.json"
    sj.write_text(json.dumps(summary, indent=2, default=str))
    files += [out / "comparison.txt", sj]
    eq, best_plain = records[0], max(records[1:], key=lambda r: r["worst_grid"] or 0)
    _say(f"\nworst cube rotation: equivariant {eq['worst_grid']:.3f} vs best plain {best_plain['worst_grid']:.3f} "
         f"({best_plain['model']}); upright {eq['upright']:.3f} vs {max(r['upright'] for r in records[1:]):.3f}")
    _say(f"finished in {total:.0f} s. Results in {out}/:")
    for f in files:
        _say(f"  {f}")
    return out
