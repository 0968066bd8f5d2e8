#!/usr/bin/env python
"""Build ``kicad_part_segments_16.npz``: KiCad 3D library parts with a per-voxel material class (part segmentation).

Source: Debian package ``kicad-packages3d`` (VRML 2.0 models under ``/usr/share/kicad/3dmodels``, CC BY-SA 4.0;
see ``build_kicad_parts.py``). The parts, families, licence filter, cap and train/val/test split are those of
``kicad_parts`` (the same selection and sha1 split rule, imported from ``build_kicad_parts.py``).

* **Classes** (:data:`equivox.data.PART_CLASSES`): 0 background, 1 body, 2 metal. Every ``Shape`` of a model names
  its material (``DEF PIN-01`` / ``USE PIN-01``); :func:`equivox.data.material_class` maps ``PIN-*`` and ``MET-*``
  (pins, leads, pads, tabs, shields) to metal and every other material (epoxy, plastic, ceramic, glass, boards,
  labels, LEDs) to body. The materials found and their counts are written to the JSON (``materials``).
* **Voxels**: :func:`equivox.data.voxelize_labelled_shapes` (``size``^3, bounding box centred, longest extent
  ``size - 2`` voxels, designed orientation: board plane = first two axes, up = last axis; metal wins where it
  overlaps the body). The image is the occupancy of the part (label > 0); the task is to find the metal from the
  shape alone, in any pose: the industrial-CT situation.

Output (``--out``, default ``src/equivox/data/bundled``): ``kicad_part_segments_<size>.npz`` (``labels`` uint8
(N, size, size, size), ``part_class`` int64 (N,) = the part's family index, ``class_names`` (families),
``label_names`` (voxel classes), ``split``, ``model_path`` (relative to ``--source``, for the mesh-level SO(3)
protocol), ``licence``, ``copyright``) and ``kicad_part_segments_<size>.json`` (provenance, voxel counts per class
and split, materials).

Usage::

    python data_scripts/build_kicad_part_segments.py [--out DIR] [--source DIR] [--size 16] [--workers 2]
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import build_kicad_parts as kp  # noqa: E402

NAME = "kicad_part_segments"


def labelled_parts(path: Path):
    """``(shapes [(class, vertices, triangles)], Counter of material names by shape)`` of one VRML model."""
    from equivox.data import material_class, parse_vrml_shapes

    shapes = parse_vrml_shapes(Path(path).read_text(errors="replace"), where=str(path))
    return [(material_class(m), v, f) for m, v, f in shapes], Counter(m for m, _, _ in shapes)


def label_file(path: Path, size: int = 16) -> tuple[np.ndarray, Counter]:
    """Label map ``(size,)*3`` uint8 of one model file and its material counts."""
    from equivox.data import voxelize_labelled_shapes

    shapes, materials = labelled_parts(path)
    return voxelize_labelled_shapes(shapes, size=size, margin=1), materials


def _label_chunk(args):
    source, paths, size = args
    import warnings

    warnings.filterwarnings("ignore")
    out = []
    for p in paths:
        try:
            lab, mats = label_file(Path(source) / p, size)
            out.append((p, lab, mats, None))
        except Exception as err:  # noqa: BLE001 - recorded per model, the build goes on
            out.append((p, None, None, f"{type(err).__name__}: {err}"))
    return out


def main(argv=None):
    from equivox.data import METAL_MATERIALS, PART_CLASSES

    args = kp.parse_args(__doc__, 16, argv)
    t0 = time.time()
    stanzas = kp.parse_dep5(args.copyright.read_text(errors="replace"))
    models = kp.scan_models(args.source)
    if not models:
        raise SystemExit(f"no <Family>.3dshapes/*.wrl models under {args.source}")
    for m in models:
        m["licence"], m["copyright"] = kp.licence_of(m["path"], stanzas)
    usable = [m for m in models if m["licence"] in args.licences]
    families, chosen = kp.select_models(usable, args.min_per_class, args.cap)
    paths = [m["path"] for m in chosen]
    tasks = [(str(args.source), paths[i:i + 32], args.size) for i in range(0, len(paths), 32)]
    results = []
    print(f"labelling {len(paths)} KiCad models ({len(families)} families) at {args.size}^3 ...", flush=True)
    if args.workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as ex:
            for res in ex.map(_label_chunk, tasks):
                results += res
                print(f"  {len(results)}/{len(paths)}", flush=True)
    else:
        for t in tasks:
            results += _label_chunk(t)
            print(f"  {len(results)}/{len(paths)}", flush=True)
    labels = {p: lab for p, lab, _, err in results if lab is not None}
    materials = Counter()
    for _, _, mats, _ in results:
        materials.update(mats or {})
    failures = [f"{p}: {err}" for p, lab, _, err in results if lab is None]
    kept = [m for m in chosen if m["path"] in labels]
    part_class = np.array([families.index(m["family"]) for m in kept], dtype=np.int64)
    kept_paths = [m["path"] for m in kept]
    split = kp.split_by_hash(kept_paths, part_class, args.test_fraction, args.val_fraction)
    stack = np.stack([labels[p] for p in kept_paths]) if kept else np.zeros((0,) + (args.size,) * 3, np.uint8)

    args.out.mkdir(parents=True, exist_ok=True)
    npz = args.out / f"{NAME}_{args.size}.npz"
    _common.atomic_savez(
        npz, labels=stack, part_class=part_class, class_names=np.array(families), label_names=np.array(PART_CLASSES),
        split=split, model_path=np.array(kept_paths), licence=np.array([m["licence"] for m in kept]),
        copyright=np.array([m["copyright"] for m in kept]))
    voxels = {s: {c: int((stack[split == s] == i).sum()) for i, c in enumerate(PART_CLASSES)}
              for s in ("train", "val", "test")}
    with_metal = {s: int((stack[split == s] == 2).any(axis=(1, 2, 3)).sum()) for s in ("train", "val", "test")}
    summary = {"models_in_package": len(models), "usable_licence": len(usable), "families": len(families),
               "selected": len(chosen), "labelled": len(kept), "failed": len(failures),
               "per_split": {s: int((split == s).sum()) for s in ("train", "val", "test")},
               "parts_with_metal": with_metal, "voxels_per_class": voxels}
    _common.write_provenance(
        args.out, npz.stem, [npz],
        description=(f"{len(kept)} electronic part models of the KiCad 3D library ({len(families)} package families, "
                     f"the kicad_parts selection and split) voxelised to {args.size}^3 with a class per voxel from "
                     "the material of its shape: background / body / metal (pins, leads, pads, tabs); designed "
                     "orientation, up = last axis."),
        task="segmentation",
        source=f"{args.source}/<Family>.3dshapes/*.wrl, licences from {args.copyright}",
        source_package=f"kicad-packages3d {_common.debian_package_version('kicad-packages3d')} (Debian)",
        licence=kp.LICENCE.replace("occupancy grids", "per-voxel material class grids"), citation=kp.CITATION,
        url="https://kicad.github.io/packages3d/", model_licences_used=list(args.licences),
        label_names=list(PART_CLASSES), family_names=families,
        material_rule=(f"metal: material names matching {METAL_MATERIALS.pattern!r} (case-insensitive); body: "
                       "every other material; metal wins where it overlaps the body"),
        materials={m or "(none)": n for m, n in materials.most_common()},
        shape=[args.size] * 3, axis_order="(x, y, z) of the model: board plane (x, y), z up out of the board",
        voxelizer=f"equivox.data.voxelize_labelled_shapes(size={args.size}, margin=1, placement='box')",
        mesh_root=str(args.source), min_per_class=args.min_per_class, cap=args.cap,
        test_fraction=args.test_fraction, val_fraction=args.val_fraction, counts=summary,
        failures=failures[:50], build_seconds=round(time.time() - t0, 1))
    print(f"wrote {npz} ({npz.stat().st_size / 1e6:.1f} MB) in {time.time() - t0:.0f} s: {summary['per_split']}, "
          f"{len(failures)} failed; voxels per class {voxels}")
    return summary


if __name__ == "__main__":
    main()
