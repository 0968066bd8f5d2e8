#!/usr/bin/env python
"""Build ``kicad_parts_32.npz``: electronic part models of the KiCad 3D library, voxelised, by package family.

Source: Debian package ``kicad-packages3d`` (``/usr/share/kicad/3dmodels/<Family>.3dshapes/*.wrl``, VRML 2.0
as exported by kicad StepUp / FreeCAD: flat ``Shape`` / ``IndexedFaceSet`` scenes, units of 2.54 mm, ``z`` out
of the board) and its DEP-5 copyright file (``/usr/share/doc/kicad-packages3d/copyright``), which gives every
file its licence.

* **Class** = package family = folder name without ``.3dshapes``, with the pitch variants of one family merged
  (``Connector_PinHeader_2.54mm`` -> ``Connector_PinHeader``: after scaling to the grid the pitch is gone) and
  the Phoenix connector series merged (``Connector_Phoenix_MC`` / ``_MSTB`` / ... -> ``Connector_Phoenix``).
  Only models whose licence (last matching ``Files:`` stanza) is in ``--licences`` are used (default: the
  library's ``CC-BY-SA-4.0-with-exception``; 603 files are ``GPL-3+`` and left out), then families with
  fewer than ``--min-per-class`` models are dropped and each family is capped at ``--cap`` models (the first
  ones by sha1 of the relative path: a fixed pseudo-random choice).
* **Voxels**: :func:`equivox.data.load_mesh` (VRML read by :func:`equivox.data.parse_vrml`) and
  :func:`equivox.data.voxelize_mesh` with ``method="fill"`` (surface voxels + hole filling; the models are
  unions of overlapping closed parts, which an inside/outside parity test would hollow out), ``size``^3 grid,
  bounding box centred, longest extent ``size - 2`` voxels. The models keep their designed orientation
  (board plane = first two axes, up = out of the board = last axis ``w``): orientation is information.
* **Split** per class by sha1 of the relative path: the first ``ceil(test * n)`` to ``test``, the next
  ``ceil(val * n)`` to ``val``, the rest ``train``. Models of one family that differ only in size or pin count
  (``PinHeader_1x05`` / ``1x06``) can fall on both sides, as in ModelNet.

Output (``--out``, default ``src/equivox/data/bundled``): ``kicad_parts_32.npz`` (``voxels_packed`` uint8
(N, size^3 / 8) = ``np.packbits`` of the flattened grid, ``shape``, ``label``, ``class_names``, ``split``,
``model_path`` (relative to ``--source``, to re-voxelise the mesh, e.g. rotated), ``licence``, ``copyright``)
and ``kicad_parts_32.json`` (provenance).

Usage::

    python data_scripts/build_kicad_parts.py [--out DIR] [--source DIR] [--cap 150] [--workers 2]
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import math
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

NAME = "kicad_parts_32"
DEFAULT_SOURCE = Path("/usr/share/kicad/3dmodels")
DEFAULT_COPYRIGHT = Path("/usr/share/doc/kicad-packages3d/copyright")
DEFAULT_LICENCES = ("CC-BY-SA-4.0-with-exception",)
_PITCH = re.compile(r"_\d+(\.\d+)?mm$")
#: families merged into one class: (folder-name prefix, class)
MERGE_PREFIXES = (("Connector_Phoenix_", "Connector_Phoenix"),)
LICENCE = (
    "CC BY-SA 4.0 (Creative Commons Attribution-ShareAlike 4.0 International, "
    "https://creativecommons.org/licenses/by-sa/4.0/legalcode): an adapted collection of the KiCad 3D model "
    "library (every model used is 'CC-BY-SA-4.0-with-exception' in the package's debian/copyright; the "
    "library's exception covers electronic designs using the models and does not apply to redistributing "
    "the library or parts of it as a collection, so this file is plain CC BY-SA 4.0). Changes: meshes "
    "voxelised to occupancy grids, scaled and centred. Attribute the KiCad library contributors (per model "
    "in the npz 'copyright' array); provided without warranty (licence section 5)."
)
CITATION = ("KiCad 3D model library (kicad-packages3D), KiCad Community and kicad StepUp contributors, "
            "https://gitlab.com/kicad/libraries/kicad-packages3D, Debian package kicad-packages3d")


# --------------------------------------------------------------------------- classes and licences
def family_of(folder: str) -> str:
    """Class name of a ``<Family>.3dshapes`` folder: pitch suffix removed, merged series renamed."""
    name = folder[: -len(".3dshapes")] if folder.endswith(".3dshapes") else folder
    name = _PITCH.sub("", name)
    for prefix, merged in MERGE_PREFIXES:
        if name.startswith(prefix):
            return merged
    return name


def parse_dep5(text: str) -> list[tuple[list[str], str, str]]:
    """``Files:`` stanzas of a machine-readable (DEP-5) copyright file: ``[(patterns, copyright, licence)]`` in
    file order (first line of ``Copyright`` and the short name of ``License``)."""
    stanzas, cur, key = [], {}, None
    for line in text.splitlines() + [""]:
        if not line.strip():
            if cur:
                stanzas.append(cur)
            cur, key = {}, None
        elif line[0] in " \t":
            if key is not None:
                cur[key] += "\n" + line.strip()
        else:
            key, _, value = line.partition(":")
            key = key.strip()
            cur[key] = value.strip()
    return [(s["Files"].split(), s.get("Copyright", "").strip().split("\n")[0],
             s.get("License", "").strip().split("\n")[0]) for s in stanzas if "Files" in s]


def licence_of(relpath: str, stanzas) -> tuple[str, str]:
    """``(licence, copyright)`` of ``relpath`` under the DEP-5 rule: the last matching ``Files:`` stanza wins."""
    found = ("", "")
    for patterns, holder, lic in stanzas:
        if any(fnmatch.fnmatchcase(relpath, p) for p in patterns):
            found = (lic, holder)
    return found


def _sha(s: str) -> str:
    return hashlib.sha1(s.encode()).hexdigest()


def scan_models(source: Path) -> list[dict]:
    """Every ``*.3dshapes/*.wrl`` under ``source``: ``[{"path": relative path, "family": class}]``, sorted."""
    out = []
    for folder in sorted(p for p in Path(source).iterdir() if p.is_dir() and p.name.endswith(".3dshapes")):
        for f in sorted(folder.glob("*.wrl")):
            out.append({"path": f"{folder.name}/{f.name}", "family": family_of(folder.name)})
    return out


def select_models(models: list[dict], min_per_class: int, cap: int) -> tuple[list[str], list[dict]]:
    """Families with at least ``min_per_class`` models, each capped at ``cap`` (the first by sha1 of the
    path). Returns (sorted class names, selected models sorted by (class, sha1))."""
    by_family: dict[str, list[dict]] = {}
    for m in models:
        by_family.setdefault(m["family"], []).append(m)
    classes = sorted(f for f, ms in by_family.items() if len(ms) >= min_per_class)
    chosen = []
    for c in classes:
        chosen += sorted(by_family[c], key=lambda m: _sha(m["path"]))[:cap]
    return classes, chosen


def split_by_hash(paths: list[str], labels, test: float, val: float) -> np.ndarray:
    """Per class, models sorted by sha1 of their path: the first ``ceil(test n)`` -> ``test``, the next
    ``ceil(val n)`` -> ``val``, the rest -> ``train``."""
    labels = np.asarray(labels)
    split = np.full(len(paths), "train", dtype="U5")
    for c in np.unique(labels):
        members = sorted(np.flatnonzero(labels == c), key=lambda i: _sha(paths[i]))
        n_test, n_val = math.ceil(test * len(members)), math.ceil(val * len(members))
        for rank, i in enumerate(members):
            split[i] = "test" if rank < n_test else ("val" if rank < n_test + n_val else "train")
    return split


# --------------------------------------------------------------------------- voxelisation
def voxelize_file(path: Path, size: int = 32) -> np.ndarray:
    """Filled occupancy ``(size,)*3`` bool of one model file, axes (x, y, z) of the model (z up)."""
    from equivox.data import load_mesh, voxelize_mesh

    return voxelize_mesh(load_mesh(path), size=size, margin=1, method="fill")


def _voxelize_chunk(args):
    source, paths, size = args
    import logging
    import warnings

    logging.getLogger("trimesh").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    out = []
    for p in paths:
        try:
            out.append((p, np.packbits(voxelize_file(Path(source) / p, size).ravel()), None))
        except Exception as err:  # noqa: BLE001 - recorded per model, the build goes on
            out.append((p, None, f"{type(err).__name__}: {err}"))
    return out


def parse_args(doc: str, size: int, argv=None) -> argparse.Namespace:
    """The command line of the KiCad build scripts (this one and ``build_kicad_part_segments.py``: the same
    selection, split and licence options), checked: one line naming the bad option or missing input."""
    ap = _common.script_parser(doc)
    ap.add_argument("--out", type=Path, default=_common.DEFAULT_OUT, help="output directory")
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder of <Family>.3dshapes folders")
    ap.add_argument("--copyright", type=Path, default=DEFAULT_COPYRIGHT, help="DEP-5 copyright file")
    ap.add_argument("--licences", nargs="+", default=list(DEFAULT_LICENCES),
                    help="licence short names (debian/copyright 'License:') of the models to use")
    ap.add_argument("--size", type=int, default=size, help="grid side in voxels")
    ap.add_argument("--min-per-class", type=int, default=30, help="drop families with fewer usable models")
    ap.add_argument("--cap", type=int, default=150, help="at most this many models per family")
    ap.add_argument("--test-fraction", type=float, default=0.3)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args(argv)
    if args.size % 2 or args.size < 4:
        raise SystemExit(f"--size must be an even number >= 4, got {args.size}")
    if not (0 < args.test_fraction and args.val_fraction >= 0 and args.test_fraction + args.val_fraction < 1):
        raise SystemExit("--test-fraction > 0, --val-fraction >= 0 and their sum < 1 are required")
    if not args.source.is_dir():
        raise SystemExit(f"no model folder {args.source}: install the Debian package 'kicad-packages3d' "
                         "(apt-get install kicad-packages3d) or pass --source")
    if not args.copyright.is_file():
        raise SystemExit(f"no copyright file {args.copyright}: it comes with 'kicad-packages3d'; pass --copyright")
    return args


def main(argv=None):
    args = parse_args(__doc__, 32, argv)
    from tqdm import tqdm

    t0 = time.time()
    stanzas = parse_dep5(args.copyright.read_text(errors="replace"))
    models = scan_models(args.source)
    if not models:
        raise SystemExit(f"no <Family>.3dshapes/*.wrl models under {args.source}")
    for m in models:
        m["licence"], m["copyright"] = licence_of(m["path"], stanzas)
    licence_counts = Counter(m["licence"] for m in models)
    usable = [m for m in models if m["licence"] in args.licences]
    classes, chosen = select_models(usable, args.min_per_class, args.cap)

    paths = [m["path"] for m in chosen]
    chunks = [paths[i:i + 16] for i in range(0, len(paths), 16)]
    tasks = [(str(args.source), c, args.size) for c in chunks]
    results = []
    bar = tqdm(total=len(paths), desc=f"voxelising KiCad models ({len(classes)} classes)", unit="model")
    if args.workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as ex:
            for res in ex.map(_voxelize_chunk, tasks):
                results += res
                bar.update(len(res))
    else:
        for t in tasks:
            res = _voxelize_chunk(t)
            results += res
            bar.update(len(res))
    bar.close()

    grids = {p: g for p, g, err in results if g is not None}
    failures = [f"{p}: {err}" for p, g, err in results if g is None]
    kept = [m for m in chosen if m["path"] in grids]
    label = np.array([classes.index(m["family"]) for m in kept], dtype=np.int64)
    kept_paths = [m["path"] for m in kept]
    split = split_by_hash(kept_paths, label, args.test_fraction, args.val_fraction)
    nbytes = args.size ** 3 // 8
    packed = np.stack([grids[p] for p in kept_paths]) if kept else np.zeros((0, nbytes), np.uint8)

    args.out.mkdir(parents=True, exist_ok=True)
    npz = args.out / (f"{NAME}.npz" if args.size == 32 else f"kicad_parts_{args.size}.npz")
    _common.atomic_savez(
        npz, voxels_packed=packed, shape=np.array([args.size] * 3, dtype=np.int64), label=label,
        class_names=np.array(classes), split=split, model_path=np.array(kept_paths),
        licence=np.array([m["licence"] for m in kept]), copyright=np.array([m["copyright"] for m in kept]),
    )
    per_class = {c: {s: int(((label == i) & (split == s)).sum()) for s in ("train", "val", "test")}
                 for i, c in enumerate(classes)}
    occ = float(np.unpackbits(packed, axis=1, count=args.size ** 3).mean()) if kept else 0.0
    summary = {"models_in_package": len(models), "licences_in_package": dict(licence_counts),
               "usable_licence": len(usable), "classes": len(classes), "selected": len(chosen),
               "voxelised": len(kept), "failed": len(failures),
               "per_split": {s: int((split == s).sum()) for s in ("train", "val", "test")},
               "per_class": per_class, "mean_occupancy": round(occ, 4)}
    _common.write_provenance(
        args.out, npz.stem, [npz],
        description=(f"{len(kept)} electronic part models of the KiCad 3D library in {len(classes)} package "
                     f"families (one class per family, at most {args.cap} each), voxelised to {args.size}^3 "
                     f"(filled, centred, longest extent = {args.size - 2} voxels, designed orientation, "
                     "up = last axis)."),
        task="classification",
        source=f"{args.source}/<Family>.3dshapes/*.wrl, licences from {args.copyright}",
        source_package=f"kicad-packages3d {_common.debian_package_version('kicad-packages3d')} (Debian)",
        licence=LICENCE, citation=CITATION, url="https://kicad.github.io/packages3d/",
        model_licences_used=list(args.licences), class_names=classes,
        class_rule=("folder name without '.3dshapes' and without a trailing pitch '_<p>mm'; "
                    + "; ".join(f"'{p}*' -> {c}" for p, c in MERGE_PREFIXES)),
        shape=[args.size] * 3, axis_order="(x, y, z) of the model: board plane (x, y), z up out of the board",
        voxelizer="equivox.data.voxelize_mesh(method='fill', margin=1, placement='box')",
        mesh_root=str(args.source), min_per_class=args.min_per_class, cap=args.cap,
        test_fraction=args.test_fraction, val_fraction=args.val_fraction, counts=summary,
        failures=failures[:50], build_seconds=round(time.time() - t0, 1),
    )
    _common.print_build_summary(npz, time.time() - t0, summary, failures)
    return summary


if __name__ == "__main__":
    main()
