"""Segmentation suite: equivariant U-Nets vs plain U-Nets on registered scans, upright and rotated.

A thin caller of the harness (``equivox.benchmark.run_segmentation``): trains every competitor for the same steps
and seeds on random patches of each dataset's training volumes, scores it on the test volumes (the held-out tiles
of ``chest_ct_heldout`` / ``brain_atlas_heldout`` whole, one item each; single-volume sets by a centre crop)
upright / under the 24 cube rotations / under random SO(3) rotations (image and label together), and writes
``OUT/segmentation.json`` (command, machine, config, records with the accuracy suite's schema: ``n_test`` volumes,
scores with 95 % intervals over the scored volumes (tiles), ``per_item`` Dice, per-class
Dice, the learning curve; paired verdicts), ``segmentation.csv``, ``segmentation_table.txt`` and plots
(``<dataset>_rotation_scores.png``, ``<dataset>_score_vs_train_time.png``, ``learning_curves.png``). Results are
saved after every dataset and seed.

    python benchmarks/segmentation.py --quick --out /tmp/seg             # about a minute (smoke run)
    python benchmarks/segmentation.py --out benchmarks/results/segmentation  # the CPU run of docs/segmentation.md
"""
from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from pathlib import Path

from equivox.benchmark import (compare, competitor_names, format_records, format_verdicts, plot_learning_curves,
                               plot_records, run_segmentation, save_records)

FULL = ["equivariant (octa, stats head)", "equivariant (octa, linear head)",
        "equivariant (octa, stats head, fields 3-2)", "equivariant (octa) + orientation", "equivariant (d4_axial)",
        "plain (matched params)", "plain (matched compute)", "plain + grid aug", "plain + so3 aug",
        "MONAI UNet (matched params)"]
QUICK = ["equivariant (octa)", "plain (matched params)", "plain + grid aug", "MONAI UNet (matched params)"]
#: per dataset: (downsample, validation crop, test crop) so that a crop fits the downsampled volume; test crop None:
#: the held-out tiles are scored whole
GEOMETRY = {"chest_ct": (2, 48, 48), "brain_atlas": (2, 40, 40), "brain_atlas_lr": (2, 40, 40),
            "chest_ct_heldout": (1, 28, None), "brain_atlas_heldout": (1, 20, None),
            "brain_atlas_lr_heldout": (1, 20, None)}


def targets(records) -> list:
    """Paired verdicts per dataset: the first equivariant row's worst cube rotation against each plain row's
    (>= +0.10) and its upright Dice against the parameter-matched plain model's (>= -0.03)."""
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in records):
        recs = [r for r in records if r["dataset"] == ds]
        have = list(dict.fromkeys(r["model"] for r in recs))
        eq = next((m for m in have if m.startswith("equivariant") and "orientation" not in m), None)
        if eq is None:
            continue
        for other in (m for m in have if m.startswith(("plain", "MONAI")) and "canonicalizer" not in m):
            out.append(compare(recs, eq, other, "worst_grid", 0.10))
        if "plain (matched params)" in have:
            out.append(compare(recs, eq, "plain (matched params)", "upright", -0.03))
    return out


def _ints(s: str):
    return [int(v) for v in s.split(",")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="chest_ct_heldout,brain_atlas_heldout",
                   help="comma-separated registered datasets")
    p.add_argument("--models", default=None,
                   help=f"';'-separated competitors (known: {'; '.join(competitor_names('segment'))})")
    p.add_argument("--seeds", type=_ints, default=None, help="seeds, e.g. 0,1,2")
    p.add_argument("--channels", type=_ints, default=None, help="fields per level of the reference U-Net")
    p.add_argument("--epochs", type=int, default=None, help="epochs of 2 steps (32 patches, batch 16)")
    p.add_argument("--downsample", type=int, default=None, help="downsampling factor (default per dataset)")
    p.add_argument("--val-crop", type=int, default=None, help="centre crop of the validation volumes")
    p.add_argument("--test-crop", type=int, default=None,
                   help="centre crop of the test volumes (0: whole volumes; default per dataset)")
    p.add_argument("--patch-size", type=int, default=None, help="training patch side (default 24, quick 16)")
    p.add_argument("--n-random", type=int, default=None, help="random SO(3) rotations")
    p.add_argument("--rotation-group", default="octa", help="grid-exact elements scored: octa (24 rotations) or "
                                                            "full_octa (48, reflections swap left/right labels)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it may register competitors or datasets); repeatable")
    p.add_argument("--quick", action="store_true", help="tiny models, 1 epoch, 16^3 patches")
    p.add_argument("--out", default="outputs/segmentation")
    a = p.parse_args(argv)
    for module in a.imports:
        importlib.import_module(module)
    q = a.quick
    models = a.models.split(";") if a.models else (QUICK if q else FULL)
    seeds = a.seeds or ([0] if q else [0, 1, 2])
    out = Path(a.out)
    command = shlex.join(["python", "benchmarks/segmentation.py", *(argv if argv is not None else sys.argv[1:])])
    records, result = [], None
    for ds in a.datasets.split(","):
        down, val_crop, test_crop = GEOMETRY.get(ds, (2, 48, 48))
        if a.test_crop is not None:
            test_crop = a.test_crop or None
        elif q and test_crop:
            test_crop = 16
        quick_down = 4 if test_crop else 2  # whole held-out tiles keep 8 voxels per axis at 2x, not at 4x
        kw = dict(downsample=a.downsample or (quick_down if q else down), patch_size=a.patch_size or (16 if q else 24),
                  val_crop=a.val_crop or (16 if q else val_crop), test_crop=test_crop,
                  channels=a.channels or ([1, 2] if q else [2, 4]),
                  strides=[2], epochs=a.epochs or (1 if q else 20), patches_per_epoch=8 if q else 32,
                  batch_size=4 if q else 16, n_random=a.n_random if a.n_random is not None else (1 if q else 4),
                  rotation_group=a.rotation_group)
        for seed in seeds:
            result = run_segmentation(ds, models, [seed], out=out / "runs", **kw)
            records += result["records"]
            result["records"], result["config"]["seeds"] = records, seeds
            result["config"]["datasets"] = a.datasets.split(",")
            verdicts = targets(records)
            save_records(result, out, "segmentation", command=command, verdicts=verdicts)
            print(format_records(records, "dice"), flush=True)
            print("paired verdicts:\n" + format_verdicts(verdicts), flush=True)
    files = [plot_learning_curves(records, out / "learning_curves.png")]
    for ds in dict.fromkeys(r["dataset"] for r in records):
        files += plot_records([r for r in records if r["dataset"] == ds], out, ("train_seconds",), f"{ds}_")
    print("wrote", out / "segmentation.json", *files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
