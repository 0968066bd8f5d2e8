"""Segmentation suite: equivariant U-Nets vs plain U-Nets on registered volumes, upright and rotated.

The evidence run is ``kicad_part_segments`` (KiCad parts, a material class per voxel: find the metal in any pose;
300 test parts, mesh-level SO(3) protocol, 3 seeds, curves stored and checked for a plateau). The medical tiles
(``chest_ct_heldout``, ``brain_atlas_heldout``: 5-8 tiles of one scan, one item each) are smoke tests: fewer than
30 independent items, so their comparisons say "too few items to decide".

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
    python benchmarks/segmentation.py --datasets kicad_part_segments --out benchmarks/results/part_segmentation
    python benchmarks/segmentation.py --out benchmarks/results/segmentation  # medical tiles (smoke tests)
"""
from __future__ import annotations

import argparse
import importlib
import json
import shlex
import sys
from pathlib import Path

from equivox.benchmark import (compare, competitor_names, format_records, format_verdicts, get_competitor,
                               plot_learning_curves, plot_records, run_segmentation, save_records)

FULL = ["equivariant (octa, stats head)", "equivariant (octa, linear head)",
        "equivariant (octa, stats head, fields 3-2)", "equivariant (octa) + orientation", "equivariant (d4_axial)",
        "plain (matched params)", "plain (matched compute)", "plain + grid aug", "plain + so3 aug",
        "MONAI UNet (matched params)"]
QUICK = ["equivariant (octa)", "plain (matched params)", "plain + grid aug", "MONAI UNet (matched params)"]
#: the part-segmentation rows: the equivariant U-Net, the plain U-Net of equal parameters and of equal compute, the
#: plain U-Net with grid and with SO(3) augmentation, and the trained plain U-Net behind a canonicalizer fitted
#: afterwards (the recipe that keeps the plain model's upright accuracy when the scorer finds "up")
PARTS = ["equivariant (octa)", "plain (matched params)", "plain (matched compute)", "plain + grid aug",
         "plain + so3 aug", "plain (frozen) + fitted canonicalizer"]
#: per dataset: run settings that differ from the medical defaults below (reported in the JSON's config). Parts:
#: whole 16^3 parts (patch = volume), 512 parts per epoch of the 1,713 training parts, validation on the 301 val
#: parts, 300 of the 880 test parts scored (evenly spaced over the family-sorted store), SO(3) by the mesh protocol;
#: every row trains at least 20 epochs, then on until its validation Dice curve has reached its plateau (at most 60)
SETTINGS = {"kicad_part_segments": dict(downsample=1, val_crop=16, test_crop=None, patch_size=16,
                                        patches_per_epoch=512, epochs=20, channels=[2, 4], n_random=4,
                                        until_plateau=True, max_epochs=60, so3_protocol="mesh", max_test=300,
                                        models=PARTS)}
#: targets written before the part-segmentation run (issue "Segmentation evidence"): the equivariant U-Net's
#: bias-free worst cube Dice >= every plain row's + 0.05; its upright Dice >= every plain row's - 0.01; its SO(3)
#: mean (mesh protocol) >= plain + so3 aug's; a row's upright Dice >= 0.5
PART_TARGETS = {"worst_grid_split": 0.05, "upright": -0.01, "mean_so3": 0.0, "upright_level": 0.5,
                #: issue "Canonicalization that knows which way is up": a canonicalized plain U-Net's upright Dice
                #: >= the plain U-Net's - 0.01 (its exactness is its worst cube rotation = upright, in the table)
                "canonical_upright": -0.01}
#: per dataset: (downsample, validation crop, test crop) so that a crop fits the downsampled volume; test crop None:
#: the held-out tiles are scored whole
GEOMETRY = {"chest_ct": (2, 48, 48), "brain_atlas": (2, 40, 40), "brain_atlas_lr": (2, 40, 40),
            "chest_ct_heldout": (1, 28, None), "brain_atlas_heldout": (1, 20, None),
            "brain_atlas_lr_heldout": (1, 20, None)}


def part_targets(recs) -> list:
    """:data:`PART_TARGETS` as paired verdicts on one dataset's records."""
    have = list(dict.fromkeys(r["model"] for r in recs))
    out = []
    eq = "equivariant (octa)"
    plain = [m for m in have if m.startswith(("plain", "MONAI")) and "canonicalizer" not in m]
    if eq in have:
        for other in plain:
            out.append(compare(recs, eq, other, "worst_grid_split", PART_TARGETS["worst_grid_split"]))
            out.append(compare(recs, eq, other, "upright", PART_TARGETS["upright"]))
        if "plain + so3 aug" in have:
            out.append(compare(recs, eq, "plain + so3 aug", "mean_so3", PART_TARGETS["mean_so3"]))
    for canon in (m for m in have if "canonicaliz" in m):
        if "plain (matched params)" in have:
            out.append(compare(recs, canon, "plain (matched params)", "upright", PART_TARGETS["canonical_upright"]))
    for m in have:
        level = PART_TARGETS["upright_level"]
        out.append(compare(recs, m, m, "upright", level, key_b="upright", scale=0.0,
                           target=f"{m} upright >= {level:g}"))
    return out


def targets(records) -> list:
    """Paired verdicts per dataset: :func:`part_targets` for the part data; elsewhere the first equivariant row's
    worst cube rotation (bias-free) against each plain row's (>= +0.10) and its upright Dice against the
    parameter-matched plain model's (>= -0.03)."""
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in records):
        recs = [r for r in records if r["dataset"] == ds]
        if ds in SETTINGS:
            out += part_targets(recs)
            continue
        have = list(dict.fromkeys(r["model"] for r in recs))
        eq = next((m for m in have if m.startswith("equivariant") and "orientation" not in m), None)
        if eq is None:
            continue
        for other in (m for m in have if m.startswith(("plain", "MONAI")) and "canonicalizer" not in m):
            out.append(compare(recs, eq, other, "worst_grid_split", 0.10))
        if "plain (matched params)" in have:
            out.append(compare(recs, eq, "plain (matched params)", "upright", -0.03))
    return out


def settings(ds: str, a) -> tuple:
    """``(run_segmentation keywords, competitors)`` of dataset ``ds``: :data:`SETTINGS` or the medical defaults,
    then the command line's options; ``--quick``: tiny models, one epoch."""
    q = a.quick
    own = dict(SETTINGS.get(ds, {}))
    models = own.pop("models", QUICK if q else FULL)
    down, val_crop, test_crop = GEOMETRY.get(ds, (2, 48, 48))
    if "test_crop" in own:
        test_crop = own.pop("test_crop")
    if a.test_crop is not None:
        test_crop = a.test_crop or None
    elif q and test_crop:
        test_crop = 16
    quick_down = 4 if test_crop else 2  # whole held-out tiles keep 8 voxels per axis at 2x, not at 4x
    kw = dict(downsample=quick_down if q else down, patch_size=16 if q else 24, val_crop=16 if q else val_crop,
              channels=[1, 2] if q else [2, 4], strides=[2], epochs=1 if q else 20, patches_per_epoch=8 if q else 32,
              batch_size=4 if q else 16, n_random=1 if q else 4, rotation_group=a.rotation_group)
    if ds in SETTINGS:
        kw.update({k: v for k, v in own.items() if not (q and k in ("epochs", "patches_per_epoch", "channels",
                                                                    "n_random"))})
        if q:
            kw.update(downsample=1, patches_per_epoch=16, max_test=own.get("max_test") and 32)
    kw["test_crop"] = test_crop
    for opt in ("downsample", "patch_size", "val_crop", "channels", "epochs", "n_random", "max_test", "so3_protocol",
                "until_plateau", "max_epochs"):
        if getattr(a, opt, None) is not None:
            kw[opt] = getattr(a, opt)
    return kw, models


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
    p.add_argument("--epochs", type=int, default=None, help="epochs (default per dataset; with --until-plateau the "
                                                            "minimum)")
    p.add_argument("--until-plateau", action="store_const", const=True, default=None,
                   help="after --epochs, train every row on until its validation curve has reached its plateau "
                        "(default per dataset: on for kicad_part_segments)")
    p.add_argument("--max-epochs", type=int, default=None, help="at most this many epochs with --until-plateau "
                                                                "(default per dataset, else 3 x epochs)")
    p.add_argument("--downsample", type=int, default=None, help="downsampling factor (default per dataset)")
    p.add_argument("--val-crop", type=int, default=None, help="centre crop of the validation volumes")
    p.add_argument("--test-crop", type=int, default=None,
                   help="centre crop of the test volumes (0: whole volumes; default per dataset)")
    p.add_argument("--patch-size", type=int, default=None, help="training patch side (default 24, quick 16)")
    p.add_argument("--n-random", type=int, default=None, help="random SO(3) rotations")
    p.add_argument("--max-test", type=int, default=None, help="score this many test volumes (default per dataset)")
    p.add_argument("--so3-protocol", choices=("grid", "mesh"), default=None,
                   help="random rotations: resample the grid, or rotate the mesh and label it again (default per "
                        "dataset: mesh for kicad_part_segments, grid elsewhere)")
    p.add_argument("--rotation-group", default="octa", help="grid-exact elements scored: octa (24 rotations) or "
                                                            "full_octa (48, reflections swap left/right labels)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it may register competitors or datasets); repeatable")
    p.add_argument("--quick", action="store_true", help="tiny models, 1 epoch, 16^3 patches")
    p.add_argument("--out", default="outputs/segmentation")
    p.add_argument("--rescore", action="store_true",
                   help="train nothing: recompute the paired verdicts of OUT/segmentation.json from its records "
                        "(after targets were added to this script) and rewrite its JSON, CSV and table")
    p.add_argument("--append", action="store_true",
                   help="keep the records of OUT/segmentation.json and add this run's (seeds already there for a "
                        "dataset and model are run again only if missing; with --until-plateau also those whose "
                        "curve is not at its plateau: continued from their last checkpoint, and the rows on their "
                        "frozen model fitted again)")
    a = p.parse_args(argv)
    for module in a.imports:
        importlib.import_module(module)
    q = a.quick
    seeds = a.seeds or ([0] if q else [0, 1, 2])
    out = Path(a.out)
    command = shlex.join(["python", "benchmarks/segmentation.py", *(argv if argv is not None else sys.argv[1:])])
    records, result = [], None
    if a.rescore:
        stored = json.loads((out / "segmentation.json").read_text())
        verdicts = targets(stored["records"])
        save_records(stored, out, "segmentation", command=stored["command"], verdicts=verdicts)
        print(format_records(stored["records"], "dice") + "\npaired verdicts:\n" + format_verdicts(verdicts))
        return 0
    if a.append and (out / "segmentation.json").is_file():
        stored = json.loads((out / "segmentation.json").read_text())
        records, command = stored["records"], f"{stored['command']} && {command}"
        print(f"appending to {len(records)} records of {out / 'segmentation.json'}", flush=True)
    for ds in a.datasets.split(","):
        kw, models = settings(ds, a)
        models = a.models.split(";") if a.models else models
        for seed in seeds:
            done = {r["model"] for r in records if r["dataset"] == ds and r["seed"] == seed
                    and (r.get("plateau") is True or not kw.get("until_plateau"))}
            todo = [m for m in models if m not in done]
            # a row on a frozen model is fitted again when that model trains on
            todo = [m for m in models if m in todo or get_competitor(m, "segment").reuses in todo]
            if not todo:
                continue
            # a reused model (frozen_of) is trained again when its own record exists but this row's does not
            todo = [m for m in models if m in todo or any(get_competitor(t, "segment").reuses == m for t in todo)]
            result = run_segmentation(ds, todo, [seed], out=out / "runs", resume=a.append, **kw)
            new = {(r["model"], r["seed"]) for r in result["records"]}
            before = {(r["model"], r["seed"]): r for r in records if r["dataset"] == ds}
            for r in result["records"]:  # a run continued from its checkpoint: its training time is the sum
                old = before.get((r["model"], r["seed"]))
                # the same run continued: more steps, the same first validation (a resumed run may re-log the
                # epochs after its checkpoint, so later points may differ)
                if old is not None and r["train_steps"] > old["train_steps"] and r["curve"] and old["curve"] \
                        and list(r["curve"][0]) == list(old["curve"][0]):
                    r["train_seconds"] += old["train_seconds"]
            records = [r for r in records if (r["dataset"], r["model"], r["seed"]) not in
                       {(ds, m, sd) for m, sd in new}] + result["records"]
            result["records"], result["config"]["seeds"] = records, sorted({r["seed"] for r in records})
            result["config"]["competitors"] = list(dict.fromkeys(r["model"] for r in records))
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
