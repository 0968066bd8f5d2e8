"""Reporting for the benchmark harness: tables with 95 % intervals, paired verdicts, JSON/CSV files and plots.

Every interval is a percentile bootstrap over the scored items (:mod:`equivox.statistics`), with the seeds of a row
averaged and the items resampled jointly across seeds (the same items were scored for every seed). A row whose
records each score fewer than 3 items (one or two segmentation volumes) has too little spread over items: there
the (seed, item) pairs are the resampled units, and fewer than 3 of them give no interval (``None``, verdicts
"unresolved").

A comparison (:func:`compare`) is always paired: the same items and the same seeds for both models (seeds only
one of them has are left out), the difference of the statistic with its interval, and a verdict from
:func:`equivox.statistics.verdict`: "met" / "missed" only when the interval excludes the threshold, else
"unresolved" with the rough number of items (:func:`equivox.statistics.items_needed`) that would resolve it.
"""
from __future__ import annotations

import csv
import json
import os
import platform
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .records import SCORE_KEYS

__all__ = ["score_units", "summarize_records", "format_records", "compare", "format_verdicts", "machine_info",
           "save_records", "plot_records", "plot_learning_curves", "data_efficiency", "MIN_UNITS",
           "MIN_VERDICT_ITEMS", "TOO_FEW"]

#: fewest resampled units (items, or seeds for one-item rows) that give an interval
MIN_UNITS = 3
#: per score key: (rotation kind of its per-item columns, statistic over them)
_KINDS = {"upright": ("upright", "mean"), "mean_grid": ("grid", "mean"), "worst_grid": ("grid", "worst"),
          "worst_grid_split": ("grid", "split"), "mean_so3": ("so3", "mean"), "worst_so3": ("so3", "worst")}
_LABELS = {"upright": "upright", "mean_grid": "cube mean", "worst_grid": "cube worst (min)",
           "worst_grid_split": "cube worst (split)", "mean_so3": "SO(3) mean", "worst_so3": "SO(3) worst"}
#: fewest independent items (test shapes, patients, parts) behind a met / missed verdict; below it the verdict says
#: "too few items to decide" with the number (tiles of one scan are one item, not many)
MIN_VERDICT_ITEMS = 30
#: the verdict of a comparison over fewer than :data:`MIN_VERDICT_ITEMS` independent items
TOO_FEW = "too few items"


def _matrix(per_item: Dict[str, list], kind: str) -> np.ndarray:
    """``(N items, R rotations)`` of one record's per-item scores for rotations of ``kind`` (``upright``: the
    ``identity`` column, else the grid identity element)."""
    if kind == "upright":
        names = [n for n in per_item if n == "identity" or n.startswith("identity:")][:1] or \
                [n for n in per_item if n == "grid:[d,h,w]"]
    else:
        names = [n for n in per_item if n.split(":")[0] == kind]
    cols = [[np.nan if v is None else float(v) for v in per_item[n]] for n in names]
    n = len(next(iter(per_item.values()))) if per_item else 0
    return np.asarray(cols, dtype=np.float64).T if cols else np.zeros((n, 0))


def score_units(records: Sequence[Dict], key: str) -> Optional[List[np.ndarray]]:
    """Per-seed matrices ``[(N, R), ...]`` (records sorted by seed) behind ``key`` of :data:`SCORE_KEYS`; one
    ``(S * N, R)`` matrix with the (seed, item) pairs as units when every record scores fewer than
    :data:`MIN_UNITS` items (one or two test volumes). ``None`` when a record has no
    per-item scores, the metric is AUROC (not a mean over items), or there are fewer than :data:`MIN_UNITS`
    units."""
    kind = _KINDS[key][0]
    recs = sorted(records, key=lambda r: r["seed"])
    if not recs or any(not r.get("per_item") or r.get("metric") == "auroc" for r in recs):
        return None
    mats = [_matrix(r["per_item"], kind) for r in recs]
    if any(m.shape[1] == 0 for m in mats) or len({m.shape for m in mats}) > 1:
        return None
    if _KINDS[key][1] == "split":
        from .records import split_worst

        mats = [split_worst(m)[:, None] for m in mats]
    if mats[0].shape[0] < MIN_UNITS:
        mats = [np.concatenate(mats, 0)]
    return mats if mats[0].shape[0] >= MIN_UNITS else None


def _interval(records: Sequence[Dict], key: str, n_boot: int = 2000) -> Optional[List[float]]:
    from ..statistics import bootstrap_ci, worst_case_ci

    units = score_units(records, key)
    if units is None:
        return None
    fn = worst_case_ci if _KINDS[key][1] == "worst" else bootstrap_ci
    _, lo, hi = fn(units, n_boot=n_boot, seed=0)
    return [lo, hi]


def _groups(records: Sequence[Dict]) -> Dict[Tuple, List[Dict]]:
    groups: Dict[Tuple, List[Dict]] = {}
    for r in records:
        groups.setdefault((r["dataset"], r["model"], r["train_fraction"]), []).append(r)
    return groups


def summarize_records(records: Sequence[Dict], keys: Sequence[str] = SCORE_KEYS) -> List[Dict]:
    """One row per (dataset, model, train_fraction): for each score key the mean over seeds (``key``), the std
    over seeds (``key_std``) and the 95 % bootstrap interval (``key_ci``, see the module docstring), plus
    ``n_seeds``, ``n_test``, ``params``, ``train_seconds`` (mean), ``eval_cost``, ``metric``."""
    rows = []
    for (ds, model, frac), rs in _groups(records).items():
        row = {"dataset": ds, "model": model, "train_fraction": frac, "n_seeds": len(rs),
               "n_test": rs[0].get("n_test"), "params": rs[0]["params"], "eval_cost": rs[0].get("eval_cost", 1),
               "metric": rs[0].get("metric", "accuracy"),
               "train_seconds": float(np.mean([r["train_seconds"] for r in rs]))}
        for key in keys:
            vals = [v for v in (_value(r, key) for r in rs) if v is not None]
            row[key] = float(np.mean(vals)) if vals else None
            row[f"{key}_std"] = float(np.std(vals)) if vals else None
            row[f"{key}_ci"] = _interval(rs, key) if vals else None
        rows.append(row)
    return rows


def _value(record: Dict, key: str):
    """``record[key]``, or for a record stored before ``key`` existed, the value from its per-item scores."""
    if key in record or not record.get("per_item") or record.get("metric") == "auroc":
        return record.get(key)
    from .records import scores_from_items

    return scores_from_items(record["per_item"]).get(key)


def _cell(v, ci) -> str:
    if v is None:
        return "-"
    return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{v:.3f} [no CI]"


def format_records(records: Sequence[Dict], metric: Optional[str] = None) -> str:
    """A text table of :func:`summarize_records`: every score with its 95 % interval."""
    rows = summarize_records(records)
    metric = metric or (records[0].get("metric", "accuracy") if records else "accuracy")
    names = [r["model"] + (f" [{r['eval_cost']}x inference]" if r["eval_cost"] != 1 else "") for r in rows]
    w = max([len("model")] + [len(n) for n in names]) + 1
    cw = 22
    head = (f"{'model':{w}s} {'frac':>5s} {'seeds':>5s} {'n_test':>6s} {'params':>8s} {'train s':>8s} "
            + " ".join(f"{_LABELS[k]:>{cw}s}" for k in SCORE_KEYS))
    lines = [f"metric: {metric}; mean over seeds [95 % bootstrap interval over test items, seeds pooled]", head,
             "-" * len(head)]
    several = len({r["dataset"] for r in rows}) > 1
    for i, (name, r) in enumerate(zip(names, rows)):
        if several and (i == 0 or rows[i - 1]["dataset"] != r["dataset"]):
            lines.append(f"[{r['dataset']}]")
        lines.append(f"{name:{w}s} {r['train_fraction']:5.2f} {r['n_seeds']:5d} {r['n_test'] or 0:6d} "
                     f"{r['params']:8d} {r['train_seconds']:8.1f} "
                     + " ".join(f"{_cell(r[k], r[k + '_ci']):>{cw}s}" for k in SCORE_KEYS))
    return "\n".join(lines)


def compare(records: Sequence[Dict], a: str, b: str, key: str = "upright", threshold: float = 0.0, *,
            direction: str = ">=", key_b: Optional[str] = None, scale: float = 1.0, dataset: Optional[str] = None,
            train_fraction: Optional[float] = None, target: Optional[str] = None, n_boot: int = 2000) -> Dict:
    """Paired comparison ``key(a) - scale * key_b(b)`` against ``threshold``.

    Args:
        records: suite records (with ``per_item``).
        a, b: competitor names (``a == b`` compares two scores of one model, e.g. its SO(3) mean against
            ``0.95 x`` its upright with ``key_b="upright", scale=0.95``).
        key, key_b: score keys of :data:`SCORE_KEYS` (``key_b`` default ``key``). When either is a worst case the
            statistic is the worst over rotations (a mean key is reduced to each item's mean over its rotations
            first); otherwise the mean.
        threshold, direction: the claim ``difference <direction> threshold``.
        dataset, train_fraction: select the records (default: the only dataset, the largest fraction).

    Returns:
        ``{"target", "a", "b", "key", "key_b", "scale", "dataset", "train_fraction", "difference", "ci": [low, high],
        "threshold", "direction", "verdict", "n_items", "n_seeds", "needs"}``; ``verdict`` is ``"met"``,
        ``"missed"``, ``"unresolved"`` or ``"too few items"`` (fewer than :data:`MIN_VERDICT_ITEMS` independent
        items: the difference and interval are shown, no verdict is drawn); ``n_items`` the independent items
        (scored test items per seed); ``needs`` (unresolved only) the rough number of items (or seeds, for
        one-item rows) at which the interval would exclude the threshold, ``None`` when it cannot be estimated.
    """
    from ..statistics import items_needed, paired_difference, verdict

    key_b = key_b or key
    datasets = sorted({r["dataset"] for r in records})
    dataset = dataset or (datasets[0] if len(datasets) == 1 else None)
    if dataset is None:
        raise ValueError(f"compare: records hold several datasets {datasets}; pass dataset=")
    recs = [r for r in records if r["dataset"] == dataset]
    frac = train_fraction if train_fraction is not None else max(r["train_fraction"] for r in recs)
    pick = {m: {r["seed"]: r for r in recs if r["model"] == m and r["train_fraction"] == frac} for m in (a, b)}
    for m in (a, b):
        if not pick[m]:
            raise ValueError(f"compare: no records of {m!r} for {dataset} at train fraction {frac:g}")
    seeds = sorted(set(pick[a]) & set(pick[b]))
    text = target or (f"{a} {_LABELS[key]} - {scale:g} x {b} {_LABELS[key_b]} {direction} {threshold:+g}"
                      if scale != 1 else f"{a} {_LABELS[key]} - {b} {_LABELS[key_b]} {direction} {threshold:+g}")
    out = {"target": text, "a": a, "b": b, "key": key, "key_b": key_b, "scale": scale, "dataset": dataset,
           "train_fraction": frac, "threshold": threshold, "direction": direction, "n_seeds": len(seeds)}
    ua = score_units([pick[a][s] for s in seeds], key) if seeds else None
    ub = score_units([pick[b][s] for s in seeds], key_b) if seeds else None
    if ua is None or ub is None:
        mean = lambda m, k: float(np.mean([_value(pick[m][s], k) for s in seeds])) if seeds else None  # noqa: E731
        diff = None if not seeds or mean(a, key) is None or mean(b, key_b) is None else \
            mean(a, key) - scale * mean(b, key_b)
        return {**out, "difference": diff, "ci": None, "verdict": "unresolved", "n_items": None,
                "needs": f">= {MIN_UNITS} items or seeds with per-item scores"}
    worst = "worst" in (_KINDS[key][1], _KINDS[key_b][1])

    def prepare(units, k, factor):
        if worst and _KINDS[k][1] == "mean":
            units = [np.nanmean(m, axis=1, keepdims=True) for m in units]
        return [m * factor for m in units]

    diff, lo, hi = paired_difference(prepare(ua, key, 1.0), prepare(ub, key_b, scale), n_boot=n_boot, seed=0,
                                     statistic="worst" if worst else "mean")
    n_units = int(ua[0].shape[0])
    n_items = min(len(next(iter(pick[m][s]["per_item"].values()))) for m in (a, b) for s in seeds)
    v = verdict(lo, hi, threshold, direction)
    needs = None
    if n_items < MIN_VERDICT_ITEMS:
        v, needs = TOO_FEW, MIN_VERDICT_ITEMS
    elif v == "unresolved" and hi > lo:
        n = items_needed(diff, lo, hi, threshold, n_units)
        needs = None if n < 0 else n
    return {**out, "difference": diff, "ci": [lo, hi], "verdict": v, "n_items": n_items, "needs": needs}


def format_verdicts(verdicts: Sequence[Dict]) -> str:
    """One line per :func:`compare` result: verdict, difference [interval] vs threshold, units, target."""
    lines = []
    for v in verdicts:
        if v["ci"] is None:
            diff = "n/a" if v["difference"] is None else f"{v['difference']:+.3f}"
            lines.append(f"{'unresolved':>10s}  {diff} [no interval] vs {v['threshold']:+.3f}; needs "
                         f"{v['needs']}  {v['target']}")
            continue
        needs = ""
        if v["verdict"] == TOO_FEW:
            needs = f"; too few items to decide: {v['n_items']} < {MIN_VERDICT_ITEMS}"
        elif v["verdict"] == "unresolved":
            needs = (f"; unresolved, needs ~{v['needs']} items (now {v['n_items']})" if (v["needs"] or 0) > 0 else
                     "; unresolved: the difference equals the threshold" if v["needs"] == -1 else "; unresolved")
        lines.append(f"{v['verdict']:>10s}  {v['difference']:+.3f} [{v['ci'][0]:+.3f}, {v['ci'][1]:+.3f}] vs "
                     f"{v['threshold']:+.3f}  ({v['dataset']}: {v['n_items']} items x {v['n_seeds']} seeds{needs})  "
                     f"{v['target']}")
    return "\n".join(lines)


def data_efficiency(records: Sequence[Dict], key: str = "upright") -> Dict[str, List[Dict]]:
    """The data-efficiency curve: per model, ``[{"train_fraction", "n_train", "value", "ci", "n_seeds"}]`` sorted
    by fraction (``value``: mean over seeds of ``key``; ``ci``: as :func:`summarize_records`)."""
    out: Dict[str, List[Dict]] = {}
    for row in summarize_records(records, (key,)):
        n_train = [r["n_train"] for r in records if r["model"] == row["model"]
                   and r["train_fraction"] == row["train_fraction"] and r["dataset"] == row["dataset"]]
        out.setdefault(row["model"], []).append({"train_fraction": row["train_fraction"],
                                                 "n_train": int(np.mean(n_train)), "value": row[key],
                                                 "ci": row[f"{key}_ci"], "n_seeds": row["n_seeds"]})
    return {m: sorted(v, key=lambda p: p["train_fraction"]) for m, v in out.items()}


def machine_info() -> Dict:
    """Platform, CPU count and threads, torch version, GPU, load average and UTC time of the run."""
    import torch

    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        info["load_average_1_5_15"] = list(os.getloadavg())
    except OSError:
        pass
    return info


def save_records(result: Dict, out: Path, stem: str = "accuracy", command: Optional[str] = None,
                 verdicts: Optional[Sequence[Dict]] = None) -> List[Path]:
    """Write ``<stem>.json`` (``{"command", "machine", "config", "caption", "records", "summary", "verdicts"}``),
    ``<stem>.csv`` (records without per-item scores and curves) and ``<stem>_table.txt`` (the table and the
    verdicts)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = result["records"]
    table = format_records(records)
    doc = {"command": command, "machine": machine_info(), "config": result["config"],
           "caption": result.get("caption", ""), "records": records, "summary": summarize_records(records),
           "verdicts": list(verdicts or [])}
    paths = [out / f"{stem}.json", out / f"{stem}.csv", out / f"{stem}_table.txt"]
    paths[0].write_text(json.dumps(doc, indent=1, default=str))
    keys = [k for k in dict.fromkeys(k for r in records for k in r) if k not in ("per_item", "curve")]
    with paths[1].open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(records)
    text = (result.get("caption", "") + "\n" + table + "\n"
            + ("\npaired verdicts:\n" + format_verdicts(verdicts) + "\n" if verdicts else ""))
    paths[2].write_text(text)
    return paths


def _err(rows: Sequence[Dict], key: str) -> np.ndarray:
    """Asymmetric error bars ``(2, n)`` from the rows' intervals (0 where a row has none)."""
    lo = [r[key] - r[key + "_ci"][0] if r[key + "_ci"] and r[key] is not None else 0.0 for r in rows]
    hi = [r[key + "_ci"][1] - r[key] if r[key + "_ci"] and r[key] is not None else 0.0 for r in rows]
    return np.clip(np.array([lo, hi]), 0, None)


def plot_records(records: Sequence[Dict], out: Path, x_keys: Sequence[str] = ("train_fraction", "train_seconds"),
                 prefix: str = "", floor: float = 0.0) -> List[Path]:
    """Plots of one dataset's records, scores on a ``[floor, 1]`` axis with 95 % interval bars:
    ``<prefix>rotation_scores.png`` (score per model and rotation kind, largest train fraction) and, per
    ``x_keys`` entry with more than one value, ``<prefix>data_efficiency.png`` (upright and worst cube rotation
    vs training fraction, log axis) / ``<prefix>score_vs_train_time.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = summarize_records(records)
    metric, dataset = records[0].get("metric", "accuracy"), records[0]["dataset"]
    models = list(dict.fromkeys(r["model"] for r in rows))
    top = max(r["train_fraction"] for r in rows)
    full = [next(r for r in rows if r["model"] == m and r["train_fraction"] == top) for m in models]
    n_seeds = max(r["n_seeds"] for r in full)
    paths = []
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(models) + 3), 4.8))
    width = 0.8 / len(SCORE_KEYS)
    for j, key in enumerate(SCORE_KEYS):
        ax.bar([i + j * width for i in range(len(models))], [r[key] or 0 for r in full], width,
               yerr=_err(full, key), capsize=2, label=_LABELS[key])
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(models))])
    ax.set_xticklabels(models, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(floor, 1)
    ax.set_ylabel(f"{metric} (axis from {floor:g})")
    ax.set_title(f"{dataset}: {metric} by rotation kind (train fraction {top:g}, n_test {full[0]['n_test']}, "
                 f"{n_seeds} seed(s); bars: 95 % bootstrap CI)", fontsize=9)
    ax.legend(fontsize=8, ncol=5, loc="upper right")
    fig.tight_layout()
    paths.append(out / f"{prefix}rotation_scores.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    kinds = {"train_fraction": ("data_efficiency.png", "training fraction (log axis)"),
             "train_seconds": ("score_vs_train_time.png", "training seconds (log axis; one machine, one run)")}
    for key in x_keys:
        if key == "train_fraction" and len({r["train_fraction"] for r in rows}) < 2:
            continue
        fname, xlabel = kinds[key]
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for ax, score in zip(axes, ("upright", "worst_grid")):
            for m in models:
                rs = sorted((r for r in rows if r["model"] == m), key=lambda r: r[key])
                ax.errorbar([r[key] for r in rs], [r[score] or 0 for r in rs], yerr=_err(rs, score), marker="o",
                            label=m, capsize=3)
            ax.set_xscale("log")
            if key == "train_fraction":
                fracs = sorted({r[key] for r in rows})
                ax.set_xticks(fracs, [f"{f:g}" for f in fracs])
                ax.minorticks_off()
            ax.set_xlabel(xlabel)
            ax.set_ylim(floor, 1)
            ax.set_ylabel(f"{metric} (axis from {floor:g})")
            ax.set_title(f"{dataset}: {_LABELS[score]} (mean over seeds, 95 % CI)", fontsize=9)
        axes[1].legend(fontsize=7)
        fig.tight_layout()
        paths.append(out / f"{prefix}{fname}")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths


def plot_learning_curves(records: Sequence[Dict], path: Path) -> Path:
    """Validation Dice vs training step per competitor (mean over seeds, one panel per dataset, axis 0-1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        for model in dict.fromkeys(r["model"] for r in records if r["dataset"] == ds):
            curves = [dict(map(tuple, r["curve"])) for r in records
                      if r["dataset"] == ds and r["model"] == model and r.get("curve")]
            steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
            if steps:
                ax.plot(steps, [np.mean([c[s] for c in curves]) for s in steps], marker=".", label=model)
        ax.set_xlabel("training step")
        ax.set_ylim(0, 1)
        ax.set_ylabel("validation Dice (upright; axis from 0)")
        ax.set_title(f"{ds}: learning curves (mean over seeds)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
