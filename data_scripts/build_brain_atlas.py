#!/usr/bin/env python
"""Build ``brain_atlas_2mm_{image,label}.nii.gz`` and ``brain_atlas_lr_2mm_label.nii.gz``: Colin27 T1 + coarse
AAL regions, without and with the hemisphere.

Source: Debian package ``mricron-data`` (``/usr/share/mricron/templates``):

* ``ch2.nii.gz``  Colin27 ("ch2") single-subject T1 MRI, whole head, 181x217x181,
  1 mm, MNI space, uint8,
* ``aal.nii.gz``  AAL atlas (116 regions) on exactly the same grid, with the
  region names/codes in ``aal.nii.txt``.

The 116 AAL regions are grouped by the leading digit of their AAL code into
7 coarse classes (see ``GROUPS``), and image + labels are resampled to an
isotropic ``--spacing`` grid (default 2 mm, 90x108x90) covering the same field
of view (anti-aliased trilinear for the T1, soft-majority vote for labels).

The left/right variant (``brain_atlas_lr_2mm``, same image) splits every coarse class by the hemisphere of
its AAL regions (region names ending ``_L`` / ``_R``): class ``2 g - 1`` = group ``g`` left, ``2 g`` = group
``g`` right (g = 1..7), and class 15 = the cerebellar vermis (AAL ``Vermis_*``, midline, no side). Left and
right never share a class; the pairs ``(2 g - 1, 2 g)`` are recorded as ``class_swaps`` (the classes a
reflection through the mid-sagittal plane exchanges) for the label-permuting models.

Usage::

    python data_scripts/build_brain_atlas.py [--out DIR] [--spacing 2.0]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

NAME = "brain_atlas_2mm"
NAME_LR = "brain_atlas_lr_2mm"
DEFAULT_SOURCE = Path("/usr/share/mricron/templates")
# class -> (name, AAL code predicate description, code prefixes)
GROUPS = {
    1: ("frontal", "AAL codes 2xxx (precentral, frontal, SMA, olfactory, rectus)", ("2",)),
    2: ("limbic_insula", "AAL codes 3xxx-4xxx (insula, cingulum, hippocampus, parahippocampal, amygdala)", ("3", "4")),
    3: ("occipital", "AAL codes 5xxx (calcarine, cuneus, lingual, occipital, fusiform)", ("5",)),
    4: ("parietal", "AAL codes 6xxx (postcentral, parietal, supramarginal, angular, precuneus, paracentral)", ("6",)),
    5: ("deep_grey", "AAL codes 7xxx (caudate, putamen, pallidum, thalamus)", ("7",)),
    6: ("temporal", "AAL codes 8xxx (Heschl, temporal, temporal pole)", ("8",)),
    7: ("cerebellum", "AAL codes 9xxx (cerebellum, vermis)", ("9",)),
}
LICENCE = (
    "Files from Debian mricron-data (debian/copyright: MRIcron, BSD-3-clause, (c) Chris Rorden). "
    "Colin27: (c) McConnell Brain Imaging Centre, MNI, free use with attribution. "
    "AAL: Tzourio-Mazoyer et al. (GIN, Bordeaux), free for research with citation"
)
CITATION = (
    "Holmes CJ, Hoge R, Collins L, Woods R, Toga AW, Evans AC. Enhancement of MR images using "
    "registration for signal averaging. J Comput Assist Tomogr 22(2):324-333, 1998. "
    "Tzourio-Mazoyer N, Landeau B, Papathanassiou D, et al. Automated anatomical labeling of "
    "activations in SPM using a macroscopic anatomical parcellation of the MNI MRI single-subject "
    "brain. NeuroImage 15(1):273-289, 2002. Rorden C, Brett M. Stereotaxic display of brain "
    "lesions. Behav Neurol 12(4):191-200, 2000 (MRIcron)."
)


def read_aal_table(txt: Path) -> list[tuple[int, str, int]]:
    """``aal.nii.txt`` rows: (label value, region name, AAL code)."""
    rows = []
    for line in Path(txt).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            rows.append((int(parts[0]), parts[1], int(parts[2])))
    return rows


def group_regions(rows) -> dict[int, list[int]]:
    groups = {c: [] for c in GROUPS}
    for value, _name, code in rows:
        for c, (_n, _d, prefixes) in GROUPS.items():
            if str(code).startswith(prefixes):
                groups[c].append(value)
                break
        else:
            raise ValueError(f"AAL code {code} not covered by GROUPS")
    return groups


def hemisphere_of(region: str) -> str | None:
    """``"L"`` / ``"R"`` for an AAL region name ending ``_L`` / ``_R``, None for midline regions (vermis)."""
    return region[-1] if region.endswith(("_L", "_R")) else None


def lr_class_names() -> dict[int, str]:
    """Label values of the left/right task: 0 background, ``2 g - 1`` / ``2 g`` = group ``g`` left / right,
    ``2 len(GROUPS) + 1`` = vermis."""
    names = {0: "background"}
    for g, (name, _d, _p) in GROUPS.items():
        names[2 * g - 1], names[2 * g] = f"{name}_L", f"{name}_R"
    names[2 * len(GROUPS) + 1] = "vermis"
    return names


def group_regions_lr(rows) -> dict[int, list[int]]:
    """AAL label values of each left/right class (see :func:`lr_class_names`); raises on a region that is
    neither lateral nor vermis."""
    coarse = group_regions(rows)
    group_of = {v: g for g, values in coarse.items() for v in values}
    out = {c: [] for c in lr_class_names() if c}
    for value, name, _code in rows:
        side = hemisphere_of(name)
        if side is None:
            if not name.startswith("Vermis"):
                raise ValueError(f"AAL region {name!r} has no hemisphere suffix and is not vermis")
            out[2 * len(GROUPS) + 1].append(value)
        else:
            g = group_of[value]
            out[2 * g - 1 if side == "L" else 2 * g].append(value)
    return out


def lr_class_swaps() -> list[list[int]]:
    """The class pairs a mid-sagittal reflection exchanges: ``[[1, 2], [3, 4], ...]``."""
    return [[2 * g - 1, 2 * g] for g in GROUPS]


def main(argv=None):
    ap = _common.script_parser(__doc__)
    ap.add_argument("--out", type=Path, default=_common.DEFAULT_OUT, help="output directory")
    ap.add_argument("--spacing", type=float, default=2.0, help="isotropic output spacing in mm")
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                    help="directory with ch2.nii.gz, aal.nii.gz, aal.nii.txt")
    args = ap.parse_args(argv)
    import nibabel as nib
    from tqdm import tqdm

    t0 = time.time()
    files = {k: args.source / k for k in ("ch2.nii.gz", "aal.nii.gz", "aal.nii.txt")}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise SystemExit(f"missing source files {missing}: install the Debian package "
                         "'mricron-data' (apt-get install mricron-data) or pass --source")
    t1 = nib.load(str(files["ch2.nii.gz"]))
    aal = nib.load(str(files["aal.nii.gz"]))
    if t1.shape != aal.shape or not np.allclose(t1.affine, aal.affine):
        raise ValueError("ch2 and aal are not on the same grid")
    rows = read_aal_table(files["aal.nii.txt"])
    groups = group_regions(rows)
    zooms = np.array(t1.header.get_zooms()[:3], dtype=float)
    factors = args.spacing / zooms
    out_shape = tuple(int(np.floor(n / f)) for n, f in zip(t1.shape, factors))

    groups_lr = group_regions_lr(rows)
    bar = tqdm(total=1 + len(groups) + len(groups_lr), desc="brain atlas resample")
    img = _common.downsample_linear(np.asarray(t1.dataobj).astype(np.float32), factors, out_shape)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    bar.update()
    lab = _common.downsample_labels(np.asarray(aal.dataobj), groups, factors, out_shape, progress=bar)
    lab_lr = _common.downsample_labels(np.asarray(aal.dataobj), groups_lr, factors, out_shape, progress=bar)
    bar.close()
    aff = _common.resample_affine(t1.affine, factors)

    args.out.mkdir(parents=True, exist_ok=True)
    name = NAME if args.spacing == 2.0 else f"brain_atlas_{args.spacing:g}mm"
    name_lr = NAME_LR if args.spacing == 2.0 else f"brain_atlas_lr_{args.spacing:g}mm"
    img_p, lab_p = args.out / f"{name}_image.nii.gz", args.out / f"{name}_label.nii.gz"
    lab_lr_p = args.out / f"{name_lr}_label.nii.gz"
    for arr, p in ((img, img_p), (lab, lab_p), (lab_lr, lab_lr_p)):
        ni = nib.Nifti1Image(arr, aff)
        ni.set_qform(aff, code=4)  # MNI152 space
        ni.set_sform(aff, code=4)
        ni.header.set_xyzt_units("mm")
        _common.atomic_nifti_save(ni, p)

    names = {"0": "background", **{str(c): g[0] for c, g in GROUPS.items()}}
    value_to_name = {v: n for v, n, _ in rows}
    counts = {names[str(c)]: int((lab == c).sum()) for c in range(len(names))}
    source_fields = dict(
        task="segmentation",
        source="/usr/share/mricron/templates/{ch2.nii.gz, aal.nii.gz, aal.nii.txt}",
        source_package=f"mricron-data {_common.debian_package_version('mricron-data')} (Debian)",
        licence=LICENCE, citation=CITATION, url="https://www.nitrc.org/projects/mricron",
    )
    _common.write_provenance(
        args.out, name, [img_p, lab_p],
        description=(f"Colin27 T1 (whole head) with AAL regions grouped into {len(GROUPS)} coarse "
                     f"classes, resampled to {args.spacing:g} mm isotropic, MNI space."),
        **source_fields,
        labels=names,
        classes={names[str(c)]: {"index": c, "rule": GROUPS[c][1],
                                 "aal_regions": [value_to_name[v] for v in groups[c]]}
                 for c in GROUPS},
        shape=list(lab.shape), spacing_mm=[args.spacing] * 3, affine=np.round(aff, 6).tolist(),
        axcodes="".join(nib.aff2axcodes(aff)), axis_order="NIfTI voxel order (i, j, k)",
        intensity="T1 uint8 as in ch2.nii.gz (0-255, arbitrary units)",
        voxel_counts=counts, build_seconds=round(time.time() - t0, 1),
    )
    names_lr = {str(c): n for c, n in lr_class_names().items()}
    counts_lr = {n: int((lab_lr == int(c)).sum()) for c, n in names_lr.items()}
    _common.write_provenance(
        args.out, name_lr, [img_p, lab_lr_p],
        description=(f"Colin27 T1 (whole head) with AAL regions grouped into {len(GROUPS)} coarse classes per "
                     f"hemisphere (left and right separate) + vermis, {args.spacing:g} mm isotropic, MNI space; "
                     f"the image is {img_p.name}, shared with {name}."),
        **source_fields,
        labels=names_lr,
        class_swaps=lr_class_swaps(),
        classes={names_lr[str(c)]: {"index": c, "aal_regions": [value_to_name[v] for v in groups_lr[c]]}
                 for c in groups_lr},
        hemisphere_rule="AAL region name suffix _L / _R; Vermis_* (no suffix) -> vermis",
        shape=list(lab_lr.shape), spacing_mm=[args.spacing] * 3, affine=np.round(aff, 6).tolist(),
        axcodes="".join(nib.aff2axcodes(aff)), axis_order="NIfTI voxel order (i, j, k)",
        intensity="T1 uint8 as in ch2.nii.gz (0-255, arbitrary units)",
        voxel_counts=counts_lr, build_seconds=round(time.time() - t0, 1),
    )
    print(f"wrote {img_p} ({_common.human_size(img_p.stat().st_size)}) and {lab_p} "
          f"({_common.human_size(lab_p.stat().st_size)})")
    print(f"  shape {lab.shape}, spacing {args.spacing} mm, axcodes {''.join(nib.aff2axcodes(aff))}")
    for k, v in counts.items():
        print(f"  {k}: {v} voxels")
    return counts


if __name__ == "__main__":
    main()
