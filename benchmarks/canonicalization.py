"""Canonicalization benchmark: a plain model behind an exactly equivariant canonicalizer, against the plain model
and what users do otherwise, with paired verdicts on the targets of docs/canonicalization.md.

Runs the accuracy suite (furniture) and the segmentation suite (chest CT) through their one harness with the
canonicalized competitors (joint training, and a frozen trained model with only the canonicalizer fitted), then
compares models **paired** (same items, same seeds): the difference of each target with a 95 % bootstrap interval
over test items (segmentation: one validation crop, so the seeds are the resampled units and the interval is
only as wide as the seed spread; fewer than 3 units give "unresolved"), and a verdict "met" / "missed" only when the interval excludes the threshold,
otherwise "unresolved". Writes ``OUT/accuracy.json``, ``OUT/segmentation.json`` (records with per-item scores),
``OUT/verdicts.json``, ``OUT/verdicts.txt`` and ``OUT/canonicalization.png``.

    python benchmarks/canonicalization.py --out benchmarks/results/canonicalization          # ~20 min, 2 CPU cores
    python benchmarks/canonicalization.py --quick --out /tmp/canon                            # ~2 min smoke run
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from equivox.accuracy import format_records, run_suite, save_records
from equivox.segmentation_suite import run_segmentation_suite
from equivox.statistics import paired_difference, verdict

CLASSIFY = ["plain (matched params)", "plain + grid aug", "plain + canonicalizer",
            "plain (frozen) + fitted canonicalizer", "plain + PCA pose + canonicalizer"]
SEGMENT = ["plain (matched params)", "plain + grid aug", "MONAI UNet (matched params)", "plain + canonicalizer",
           "MONAI UNet (frozen) + fitted canonicalizer"]


def _matrix(records, model, kind):
    """Per-item scores ``[seed](N, R)`` of ``model`` for rotations of ``kind`` (``identity``, ``grid``, ``so3``)."""
    out = []
    for r in sorted((r for r in records if r["model"] == model), key=lambda r: r["seed"]):
        names = [n for n in r["per_item"] if n.split(":")[0] == kind]
        out.append(np.array([r["per_item"][n] for n in names], dtype=float).T)
    return out


def _seeds_as_items(ms):
    """One validation volume per seed: the seeds become the resampled units (the only spread there is)."""
    return [np.concatenate(ms, 0)]


def _target(name, a, b, statistic, threshold, scale=1.0):
    """Paired ``a - scale * b`` against ``threshold`` (met when the whole interval is >= threshold); fewer than 3
    resampled units give no interval worth the name: "unresolved"."""
    if scale != 1.0:
        b = [m * scale for m in b]
    diff, low, high = paired_difference(a, b, statistic=statistic, seed=0)
    units = int(a[0].shape[0])
    return {"target": name, "difference": diff, "ci": [low, high], "threshold": threshold,
            "verdict": verdict(low, high, threshold) if units >= 3 else "unresolved", "n_items": units,
            "n_seeds": len(a)}


def _verdicts(acc, seg):
    out = []
    if acc:
        have = {r["model"] for r in acc}
        canon, plain, aug = "plain + canonicalizer", "plain (matched params)", "plain + grid aug"
        frozen, pca = "plain (frozen) + fitted canonicalizer", "plain + PCA pose + canonicalizer"
        up = lambda m: _matrix(acc, m, "identity")  # noqa: E731
        grid = lambda m: _matrix(acc, m, "grid")  # noqa: E731
        for model in (canon, frozen):
            if {model, plain} <= have:
                out.append(_target(f"classify: {model} upright >= {plain} upright - 0.01", up(model), up(plain),
                                   "mean", -0.01))
        for other in (plain, aug):
            if {canon, other} <= have:
                out.append(_target(f"classify: {canon} worst cube >= {other} worst cube + 0.10", grid(canon),
                                   grid(other), "worst", 0.10))
        if pca in have:
            so3, upr = _matrix(acc, pca, "so3"), _matrix(acc, pca, "identity")
            out.append(_target(f"classify: {pca} SO(3) mean >= 0.95 x its upright",
                               [m.mean(1, keepdims=True) for m in so3], upr, "mean", 0.0, 0.95))
    if seg:
        have = {r["model"] for r in seg}
        canon, plain, frozen = "plain + canonicalizer", "plain (matched params)", "MONAI UNet (frozen) + fitted canonicalizer"
        monai = "MONAI UNet (matched params)"
        up = lambda m: _seeds_as_items(_matrix(seg, m, "identity"))  # noqa: E731
        grid = lambda m: _seeds_as_items(_matrix(seg, m, "grid"))  # noqa: E731
        if {canon, plain} <= have:
            out.append(_target(f"segment: {canon} upright Dice >= {plain} - 0.01", up(canon), up(plain), "mean",
                               -0.01))
            out.append(_target(f"segment: {canon} worst cube >= 0.95 x its upright", grid(canon), up(canon), "worst",
                               0.0, 0.95))
        if {frozen, monai} <= have:
            out.append(_target(f"segment: {frozen} upright Dice within 0.005 of the frozen {monai} (lower side)",
                               up(frozen), up(monai), "mean", -0.005))
    return out


def _plot(acc, seg, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from equivox.accuracy import summarize_records

    panels = [(acc, "furniture: accuracy", "accuracy"), (seg, "chest CT: Dice", "mean foreground Dice")]
    panels = [p for p in panels if p[0]]
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.8), squeeze=False)
    for ax, (recs, title, ylabel) in zip(axes[0], panels):
        rows = summarize_records(recs, keys=("upright", "worst_grid"))
        x = np.arange(len(rows))
        for j, (key, label) in enumerate((("upright", "upright"), ("worst_grid", "worst cube rotation"))):
            ax.bar(x + (j - 0.5) * 0.38, [r[key] for r in rows], 0.38, yerr=[r[key + "_std"] for r in rows],
                   capsize=3, label=label)
        ax.set_xticks(x)
        ax.set_xticklabels([r["model"] for r in rows], rotation=20, ha="right", fontsize=9)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"{ylabel} (mean +- std over seeds)")
        ax.set_title(title)
        ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2", help="classification seeds")
    p.add_argument("--seg-seeds", default="0,1", help="segmentation seeds")
    p.add_argument("--skip", choices=["classify", "segment"], default=None)
    p.add_argument("--models", default=None, help=f"';'-separated classification competitors (default: "
                                                  f"{'; '.join(CLASSIFY)})")
    p.add_argument("--seg-models", default=None, help=f"';'-separated segmentation competitors (default: "
                                                      f"{'; '.join(SEGMENT)})")
    p.add_argument("--quick", action="store_true", help="tiny models and one epoch (smoke run)")
    p.add_argument("--out", default="outputs/canonicalization")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in a.seeds.split(",")]
    seg_seeds = [int(s) for s in a.seg_seeds.split(",")]
    acc = seg = []
    if a.skip != "classify":
        kw = dict(input_size=8, channels=(2, 2), strides=(2,), hidden_features=(8,), epochs=1, max_test=16,
                  n_random=2) if a.quick else dict(epochs=25, n_random=8)
        res = run_suite("furniture", a.models.split(";") if a.models else CLASSIFY, (1.0,), seeds,
                        out=out / "runs", **kw)
        acc = res["records"]
        save_records(res, out, "accuracy")
        print(format_records(acc))
    if a.skip != "segment":
        kw = dict(downsample=4, patch_size=16, val_crop=16, channels=(1, 2), epochs=1, patches_per_epoch=8,
                  batch_size=4, n_random=2) if a.quick else dict(n_random=4)
        models = a.seg_models.split(";") if a.seg_models else SEGMENT
        res = run_segmentation_suite("chest_ct", models, seg_seeds, out=out / "runs", **kw)
        seg = res["records"]
        save_records(res, out, "segmentation")
        print(format_records(seg, "dice"))
    verdicts = _verdicts(acc, seg)
    lines = [f"{v['verdict']:>10s}  {v['difference']:+.3f} [{v['ci'][0]:+.3f}, {v['ci'][1]:+.3f}] vs "
             f"{v['threshold']:+.3f}  ({v['n_items']} units x {v['n_seeds']} seeds)  {v['target']}" for v in verdicts]
    print("\n".join(lines))
    (out / "verdicts.txt").write_text("\n".join(lines) + "\n")
    (out / "verdicts.json").write_text(json.dumps(verdicts, indent=2))
    print(f"plot: {_plot(acc, seg, out / 'canonicalization.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
