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

_DEMO_CLASSIFY = dict(
    full=dict(task="classify", dataset="lidc", input_size=16, resize="pool", max_train=480, max_val=120,
              channels=(2, 4), strides=(2,), convs_per_level=1, hidden_features=(32,), epochs=5, batch_size=16,
              lr=3e-3, augment="none"),
    quick=dict(task="classify", dataset="lidc", input_size=8, resize="pool", max_train=32, max_val=16,
               channels=(2, 2), strides=(2,), convs_per_level=1, hidden_features=(8,), epochs=1, batch_size=16,
               lr=3e-3, augment="none"),
)
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

    d: Dict[str, Any] = dict((_DEMO_CLASSIFY if task == "classify" else _DEMO_SEGMENT)["quick" if quick else "full"])
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
    """Train an octa-equivariant model and a parameter-matched plain CNN and compare them under rotations.

    What it trains: ``task="classify"``: an ``InvariantClassifier(group="octa")`` and its matched trivial-group
    twin on the bundled LIDC nodules (benign vs malignant); ``task="segment"``: an ``EquivariantUNet(group="octa")``
    and its twin on the bundled chest CT organs. ``quick=True`` uses tiny data and models (seconds).

    What it prints: six numbered steps (data, model sizes, training, evaluation upright / under the 24 cube
    rotations / under ``n_random`` random SO(3) rotations, per-rotation equivariance errors, the comparison
    table) and the list of files written.

    Where outputs go: ``out`` (default ``outputs/demo-<task>``): ``comparison.txt``, ``summary.json``,
    ``report_{equivariant,baseline}.{json,csv}``, ``rotation_scores.png``, ``equivariance_errors.png``
    (segment: also ``segmentation_slices.png``) and each model's checkpoints and metrics in ``equivariant/``
    and ``baseline/``.

    Args:
        config: YAML file of :class:`~equivox.training.TrainConfig` keys overriding the demo's preset.
        n_random: random SO(3) rotations (default 2 quick, else 8 classify / 4 segment).
        max_test: classification test nodules to score (default 16 quick, else 150).
        progress: show progress bars.
        overrides: TrainConfig fields overriding preset and ``config`` (``None`` values are ignored).

    Returns:
        the output folder.
    """
    import torch

    from .baselines import count_parameters, matched_baseline
    from .evaluation import compare_reports, plot_equivariance_errors, plot_rotation_scores, rotation_set
    from .testing import equivariance_errors, format_error_table
    from .training import build_datasets, build_model, fit

    t_start = time.time()
    out = Path(out or f"outputs/demo-{task}")
    out.mkdir(parents=True, exist_ok=True)
    cfg = _demo_config(task, quick, config, overrides or {}, progress)
    n_random = n_random if n_random is not None else (2 if quick else (8 if task == "classify" else 4))
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
    models = {"equivariant (octa)": eq, "plain CNN (trivial)": bl}
    params = {k: count_parameters(m) for k, m in models.items()}
    _say(f"  equivariant: {type(eq).__name__}(group=octa, channels={list(eq.channels)} fields = "
         f"{list(eq.tensor_channels)} tensor channels), {params['equivariant (octa)']} parameters, built in {t_eq:.1f} s")
    _say(f"  baseline:    {type(bl).__name__}(group=trivial, channels={list(bl.channels)}), "
         f"{params['plain CNN (trivial)']} parameters (matched), built in {t_bl:.1f} s")

    _step(3, n_steps, f"training both models ({cfg.epochs} epochs each, seed {cfg.seed})")
    fits, train_s = {}, {}
    for (label, model), sub in zip(models.items(), ("equivariant", "baseline")):
        _say(f"  -- {label}")
        c = cfg.merged({"out_dir": str(out / sub)})
        res = fit(c, model=model, train_data=train_ds, val_data=val_ds, info=info)
        fits[label], train_s[label] = res, res.seconds
        _say(f"     {res.global_step} steps in {res.seconds:.1f} s; " + ", ".join(
            f"{k}={v:.3f}" for k, v in sorted(res.metrics.items()) if k.startswith("val_")))

    _step(4, n_steps, "evaluating upright, under the 24 cube rotations and under "
                      f"{n_random} random SO(3) rotations")
    rots = rotation_set("standard", group="octa", n_random=n_random, seed=cfg.seed)
    t = time.time()
    if task == "classify":
        reports, extra = _demo_eval_classify(cfg, fits, rots, quick, max_test, progress)
    else:
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
    for rep, sub in zip(reports, ("equivariant", "baseline")):
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
        "parameters": params, "build_seconds": {"equivariant (octa)": t_eq, "plain CNN (trivial)": t_bl},
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


def _demo_eval_classify(cfg, fits, rots, quick: bool, max_test: Optional[int], progress: bool):
    import torch

    from .evaluation import evaluate_classification
    from .training import classification_arrays, subsample_indices

    x, y, _ = classification_arrays(cfg, "test")
    max_test = max_test if max_test is not None else (16 if quick else 150)
    idx = subsample_indices(y, max_test, cfg.seed + 2)
    x, y = x[idx], torch.as_tensor(y[idx])
    _say(f"  test set: {len(y)} nodules ({int((y == 1).sum())} malignant), {len(rots)} rotations each")
    reports = []
    for label, res in fits.items():
        rep = evaluate_classification(res.model, (x, y), rots, batch_size=64, num_classes=res.info.num_classes,
                                      progress=progress, name=label, metric="auroc", check_equivariance=True)
        rep.meta.update(n_test=int(len(y)), dataset="LIDC-IDRI nodules (test split)")
        reports.append(rep)
    return reports, {"check_input": x[:4]}


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
