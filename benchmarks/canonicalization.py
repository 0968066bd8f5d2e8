"""Canonicalization benchmark: a plain model behind an exactly equivariant canonicalizer, against the plain model
and what users do otherwise, with paired verdicts on the targets of docs/canonicalization.md.

Runs the accuracy suite (furniture) and the segmentation suite (held-out tiles of the chest CT,
``chest_ct_heldout``: each tile one scored item) through their one harness with the canonicalized competitors
(joint training, and a frozen trained model with only the canonicalizer fitted), then compares models **paired**
(same items, same seeds): the difference of each target with a 95 % bootstrap interval over (seed, item) pairs,
and a verdict "met" / "missed" only when the
interval excludes the threshold, otherwise "unresolved" (``equivox.benchmark.compare``). Writes
``OUT/accuracy.json``, ``OUT/segmentation.json`` (records with per-item scores and the verdicts),
``OUT/verdicts.json``, ``OUT/verdicts.txt`` and ``OUT/{classify,segment}_rotation_scores.png`` (95 % intervals).

    python benchmarks/canonicalization.py --out benchmarks/results/canonicalization          # ~20 min, 2 CPU cores
    python benchmarks/canonicalization.py --quick --out /tmp/canon                            # ~2 min smoke run
    python benchmarks/canonicalization.py --skip classify \
        --seg-records benchmarks/results/segmentation/segmentation.json --out ...   # segment targets, no training
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from equivox.benchmark import (compare, format_records, format_verdicts, plot_records, run_classification,
                               run_segmentation, save_records)
from segmentation import GEOMETRY

CLASSIFY = ["plain (matched params)", "plain + grid aug", "plain + canonicalizer",
            "plain (frozen) + fitted canonicalizer", "plain + PCA pose + canonicalizer"]
SEGMENT = ["plain (matched params)", "plain + grid aug", "MONAI UNet (matched params)", "plain + canonicalizer",
           "MONAI UNet (frozen) + fitted canonicalizer"]


def _verdicts(acc, seg):
    """The targets of docs/canonicalization.md as paired comparisons (:func:`equivox.benchmark.compare`)."""
    out = []
    if acc:
        have = {r["model"] for r in acc}
        canon, plain, aug = "plain + canonicalizer", "plain (matched params)", "plain + grid aug"
        frozen, pca = "plain (frozen) + fitted canonicalizer", "plain + PCA pose + canonicalizer"
        for model in (canon, frozen):
            if {model, plain} <= have:
                out.append(compare(acc, model, plain, "upright", -0.01,
                                   target=f"classify: {model} upright >= {plain} upright - 0.01"))
        for other in (plain, aug):
            if {canon, other} <= have:
                out.append(compare(acc, canon, other, "worst_grid_split", 0.10,
                                   target=f"classify: {canon} worst cube >= {other} worst cube + 0.10"))
        if pca in have:
            out.append(compare(acc, pca, pca, "mean_so3", 0.0, key_b="upright", scale=0.95,
                               target=f"classify: {pca} SO(3) mean >= 0.95 x its upright"))
    if seg:
        have = {r["model"] for r in seg}
        canon, plain = "plain + canonicalizer", "plain (matched params)"
        frozen, monai = "MONAI UNet (frozen) + fitted canonicalizer", "MONAI UNet (matched params)"
        if {canon, plain} <= have:
            out.append(compare(seg, canon, plain, "upright", -0.01,
                               target=f"segment: {canon} upright Dice >= {plain} - 0.01"))
            out.append(compare(seg, canon, canon, "worst_grid_split", 0.0, key_b="upright", scale=0.95,
                               target=f"segment: {canon} worst cube >= 0.95 x its upright"))
        if {frozen, monai} <= have:
            out.append(compare(seg, frozen, monai, "upright", -0.005,
                               target=f"segment: {frozen} upright Dice within 0.005 of the frozen {monai} "
                                      "(lower side)"))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2", help="classification seeds")
    p.add_argument("--seg-seeds", default="0,1,2", help="segmentation seeds")
    p.add_argument("--seg-dataset", default="chest_ct_heldout", help="registered segmentation dataset")
    p.add_argument("--seg-records", default=None, metavar="JSON",
                   help="score the segmentation targets on the records of a segmentation suite run "
                        "(benchmarks/segmentation.py output holding these competitors) instead of training again")
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
    command = shlex.join(["python", "benchmarks/canonicalization.py", *(argv if argv is not None else sys.argv[1:])])
    acc = seg = []
    if a.skip != "classify":
        kw = dict(input_size=8, channels=(2, 2), strides=(2,), hidden_features=(8,), epochs=1, max_test=16,
                  n_random=2) if a.quick else dict(epochs=25, n_random=8)
        res = run_classification("furniture", a.models.split(";") if a.models else CLASSIFY, (1.0,), seeds,
                                 out=out / "runs", **kw)
        acc = res["records"]
        save_records(res, out, "accuracy", command=command, verdicts=_verdicts(acc, []))
        print(format_records(acc))
        plot_records(acc, out, ("train_seconds",), "classify_")
    if a.skip != "segment":
        models = a.seg_models.split(";") if a.seg_models else SEGMENT
        if a.seg_records:
            res = json.loads(Path(a.seg_records).read_text())
            res["records"] = [r for r in res["records"] if r["model"] in models and r["dataset"] == a.seg_dataset
                              and r["seed"] in seg_seeds]
            if not res["records"]:
                raise SystemExit(f"{a.seg_records}: no records of {a.seg_dataset!r} for {models}")
        else:
            down, val_crop, test_crop = GEOMETRY.get(a.seg_dataset, (2, 48, 48))
            kw = dict(downsample=4, patch_size=16, val_crop=16, test_crop=test_crop and 16, channels=(1, 2),
                      epochs=1, patches_per_epoch=8, batch_size=4, n_random=2) if a.quick else dict(
                downsample=down, val_crop=val_crop, test_crop=test_crop, n_random=4)
            res = run_segmentation(a.seg_dataset, models, seg_seeds, out=out / "runs", **kw)
        seg = res["records"]
        save_records(res, out, "segmentation", command=command, verdicts=_verdicts([], seg))
        print(format_records(seg, "dice"))
        plot_records(seg, out, ("train_seconds",), "segment_")
    verdicts = _verdicts(acc, seg)
    text = format_verdicts(verdicts)
    print(text)
    (out / "verdicts.txt").write_text(text + "\n")
    (out / "verdicts.json").write_text(json.dumps(verdicts, indent=2))
    print(f"plots: {out}/{{classify,segment}}_rotation_scores.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
