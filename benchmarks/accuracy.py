"""Accuracy suite: equivox models vs what users would do otherwise, on real data, under rotations.

Trains every competitor (see ``equivox.accuracy.COMPETITORS``) on upright data for each train fraction and seed,
scores it upright / under the 24 cube rotations / under random SO(3) rotations, and writes
``OUT/accuracy.json`` (records with dataset, model, augment, train_fraction, seed, params, train_seconds, upright,
mean_grid, worst_grid, mean_so3, worst_so3, ...), ``accuracy.csv``, ``accuracy_table.txt`` and plots
(``rotation_scores.png``, ``data_efficiency.png``, ``score_vs_train_time.png``). Results are saved after every
seed, so an interrupted run keeps what it finished.

    python benchmarks/accuracy.py --quick --out /tmp/acc          # minutes on 2 CPU cores (smoke run)
    python benchmarks/accuracy.py --out benchmarks/results/accuracy  # the CPU run of docs/accuracy.md
    python benchmarks/accuracy.py --dataset $EQUIVOX_DATA_DIR/organmnist3d.npz --input-size 28 ...  # MedMNIST-3D
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from equivox.accuracy import COMPETITORS, format_records, plot_records, run_suite, save_records

FULL = ["equivariant (octa)", "equivariant (octa) + PCA pose", "plain (matched params)", "plain (matched compute)",
        "plain + grid aug", "plain + so3 aug", "plain + grid aug + TTA24", "plain + PCA pose + grid aug",
        "MONAI ResNet + grid aug"]
QUICK = ["equivariant (octa)", "plain (matched params)", "plain + grid aug", "plain + grid aug + TTA24"]
#: published MedMNIST v2 test ACC (Yang et al. 2023, Table 4) for the same official test splits
MEDMNIST_PUBLISHED = {"organmnist3d": {"ResNet-18+3D": 0.907, "ResNet-50+3D": 0.883},
                      "nodulemnist3d": {"ResNet-18+3D": 0.844, "ResNet-50+3D": 0.847},
                      "fracturemnist3d": {"ResNet-18+3D": 0.508, "ResNet-50+3D": 0.494},
                      "adrenalmnist3d": {"ResNet-18+3D": 0.721, "ResNet-50+3D": 0.745},
                      "vesselmnist3d": {"ResNet-18+3D": 0.877, "ResNet-50+3D": 0.918},
                      "synapsemnist3d": {"ResNet-18+3D": 0.694, "ResNet-50+3D": 0.795}}


def _ints(s: str):
    return [int(v) for v in s.split(",")]


def _floats(s: str):
    return [float(v) for v in s.split(",")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="furniture", help="furniture, lidc or a MedMNIST-3D .npz path")
    p.add_argument("--models", default=None, help=f"';'-separated competitors (known: {'; '.join(COMPETITORS)})")
    p.add_argument("--fractions", type=_floats, default=None, help="training fractions, e.g. 0.1,1")
    p.add_argument("--seeds", type=_ints, default=None, help="seeds, e.g. 0,1,2")
    p.add_argument("--input-size", type=int, default=None)
    p.add_argument("--placement", default="box", choices=["box", "sphere"])
    p.add_argument("--channels", type=_ints, default=None, help="fields per level of the reference model")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--n-random", type=int, default=None, help="random SO(3) rotations")
    p.add_argument("--max-test", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="reduced grid: 4 competitors, 2 fractions, tiny models")
    p.add_argument("--out", default="outputs/accuracy")
    a = p.parse_args(argv)
    q = a.quick
    models = a.models.split(";") if a.models else (QUICK if q else FULL)
    fractions = a.fractions or ([0.5, 1.0] if q else [0.1, 1.0])
    seeds = a.seeds or ([0] if q else [0, 1, 2])
    kw = dict(input_size=a.input_size or (8 if q else 16), placement=a.placement,
              channels=a.channels or ([2, 2] if q else [4, 8, 16]), strides=[2] if q else [2, 2],
              hidden_features=[8] if q else [64], epochs=a.epochs or (1 if q else 20),
              n_random=a.n_random if a.n_random is not None else (2 if q else 8),
              max_test=a.max_test if a.max_test is not None else (16 if q else None))
    out = Path(a.out)
    records, result = [], None
    for seed in seeds:
        result = run_suite(a.dataset, models, fractions, [seed], out=out / "runs", **kw)
        records += result["records"]
        result["records"], result["config"]["seeds"] = records, seeds
        save_records(result, out)
        print(format_records(records, records[0]["metric"]), flush=True)
    files = plot_records(records, out)
    stem = Path(a.dataset).stem.lower()
    if stem in MEDMNIST_PUBLISHED:
        print(f"published MedMNIST v2 test ACC ({stem}): {MEDMNIST_PUBLISHED[stem]}")
    print("wrote", out / "accuracy.json", *files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
