#!/usr/bin/env python
"""Build ``furniture_shapes_32.npz``: voxelised furniture models from Sweet Home 3D.

Source: Debian package ``sweethome3d-furniture`` (``/usr/share/sweethome3d/furniture/*.sh3f``).
Each ``.sh3f`` is a zip archive holding OBJ models and a Java ``PluginFurnitureCatalog.properties``
file describing every model (``name#N``, ``category#N`` (a *room* category such as
"Living room"), ``model#N`` (path of the OBJ in the archive), ``modelRotation#N``,
``creator#N``) plus the archive ``license``.

The catalog categories are rooms, not object types, so the object class is
derived from the English model name with the keyword rules in ``CLASS_RULES``
(first match wins; unmatched models are not used). For every selected model:

* the OBJ is loaded with trimesh (geometry only), ``modelRotation`` applied,
* axes reordered to (up, depth, width) = (y, z, x) of Sweet Home 3D (y is up),
* scaled so its longest extent spans ``size - 2`` voxels, centred in a
  ``size``^3 grid (1-voxel margin), surface-voxelised (``mesh.voxelized``) and
  interior-filled (``.fill()``),
* deterministic per-class split: models sorted by sha1 of their catalog id, the
  first ``ceil(test_fraction * n)`` of each class go to ``test``.

Usage::

    python data_scripts/build_furniture_shapes.py [--out DIR] [--size 32]
"""
from __future__ import annotations

import hashlib
import io
import math
import re
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

NAME = "furniture_shapes_32"
DEFAULT_SOURCE = Path("/usr/share/sweethome3d/furniture")
# (class name, regex on the lower-cased English name); first match wins; ordered so that
# e.g. "desk lamp" -> lamp, "glass door cabinet" -> storage, "bedside table" -> table.
EXCLUDE = re.compile(r"window (shutter|blind)|doormat|flashlight|table (tennis|fan)|tablet|"
                     r"wheelchair|traffic light|switch|plug")
CLASS_RULES = [
    ("lamp", re.compile(r"\b(lamps?|lamppost|light|lights|spotlight|chandelier)\b")),
    ("window", re.compile(r"\bwindows?\b")),
    ("storage", re.compile(r"\b(cabinet|wardrobe|bookcase|shelves|dresser|drawers)\b")),
    ("door", re.compile(r"\bdoors?\b")),
    ("sofa", re.compile(r"\b(sofa|couch|settee)\b")),
    ("bed", re.compile(r"\b(bed|beds|bunk bed)\b")),
    ("chair", re.compile(r"\b(chair|armchair|stool|chairs)\b")),
    ("table", re.compile(r"\b(table|desk)\b")),
    ("plant", re.compile(r"\b(plant|tree|bonsai|palm)\b")),
]
CLASS_NAMES = [c for c, _ in CLASS_RULES]


# --------------------------------------------------------------------------- catalog
def parse_properties(text: str) -> dict[str, str]:
    """Minimal Java .properties parser (key=value, # comments, \\uXXXX escapes)."""
    props = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line[0] in "#!":
            continue
        while line.endswith("\\") and i < len(lines):  # continuation lines
            line = line[:-1] + lines[i].strip()
            i += 1
        m = re.match(r"([^=:\s]+)\s*[=:]\s*(.*)", line)
        if not m:
            continue
        value = re.sub(r"\\u([0-9a-fA-F]{4})", lambda g: chr(int(g.group(1), 16)), m.group(2))
        props[m.group(1)] = value
    return props


def classify(name: str) -> str | None:
    n = name.lower()
    if EXCLUDE.search(n):
        return None
    for cls, rx in CLASS_RULES:
        if rx.search(n):
            return cls
    return None


def read_catalog(archive: Path) -> tuple[dict, list[dict]]:
    """Return (archive-level info, list of model entries) of one .sh3f file."""
    with zipfile.ZipFile(archive) as z:
        props = parse_properties(z.read("PluginFurnitureCatalog.properties").decode("latin-1"))
    info = {k: props.get(k) for k in ("id", "name", "description", "version", "license", "provider")}
    entries = []
    idx = sorted({int(k.split("#")[1]) for k in props if k.startswith("model#")})
    for n in idx:
        rot = props.get(f"modelRotation#{n}")
        entries.append({
            "archive": archive.name,
            "id": props.get(f"id#{n}", f"{archive.stem}#{n}"),
            "name": props.get(f"name#{n}", ""),
            "category": props.get(f"category#{n}", ""),
            "model": props[f"model#{n}"].lstrip("/"),
            "creator": props.get(f"creator#{n}", ""),
            "rotation": None if rot is None else np.array(rot.split(), dtype=float).reshape(3, 3),
            "licence": info["license"],
        })
    return info, entries


# --------------------------------------------------------------------------- voxelisation
def voxelize_mesh(mesh, size: int = 32, margin: int = 1) -> np.ndarray:
    """Centre ``mesh``, scale its longest extent to ``size - 2*margin`` voxels, and
    return a filled boolean occupancy grid of shape (size,)*3 (mesh axis order)."""
    v = np.asarray(mesh.vertices, dtype=float)
    lo, hi = v.min(0), v.max(0)
    ext = float((hi - lo).max())
    if not np.isfinite(ext) or ext <= 0:
        raise ValueError("degenerate mesh")
    span = size - 2 * margin
    pitch = ext / span
    for _ in range(4):
        idx = np.asarray(mesh.voxelized(pitch=pitch).fill().sparse_indices, dtype=int)
        lo_i, hi_i = idx.min(0), idx.max(0)
        n_i = hi_i - lo_i + 1
        if n_i.max() <= span:
            break
        pitch *= n_i.max() / span * 1.0001  # grid alignment added a voxel: enlarge slightly
    else:
        raise ValueError("could not fit mesh into the grid")
    ijk = idx - lo_i + (size - n_i) // 2  # centre the occupied box in the grid
    grid = np.zeros((size,) * 3, dtype=bool)
    grid[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = True
    return grid


def load_obj_from_zip(z: zipfile.ZipFile, path: str):
    import trimesh

    data = z.read(path)
    scene = trimesh.load(io.BytesIO(data), file_type="obj", skip_materials=True,
                         process=False, maintain_order=True)
    if isinstance(scene, trimesh.Scene):
        geoms = [g for g in scene.dump() if isinstance(g, trimesh.Trimesh)]
        if not geoms:
            raise ValueError("no triangle geometry")
        mesh = trimesh.util.concatenate(geoms)
    else:
        mesh = scene
    if len(mesh.faces) == 0:
        raise ValueError("no faces")
    return mesh


def process_entry(z, e, size):
    mesh = load_obj_from_zip(z, e["model"])
    v = np.asarray(mesh.vertices, dtype=float)
    if e["rotation"] is not None:
        v = v @ e["rotation"].T
    mesh.vertices = v[:, [1, 2, 0]]  # (x, y, z) -> (up=y, depth=z, width=x)
    return voxelize_mesh(mesh, size=size)


def split_by_hash(ids, classes, test_fraction=0.2):
    split = np.array(["train"] * len(ids), dtype="U5")
    for c in sorted(set(classes)):
        members = [i for i, cc in enumerate(classes) if cc == c]
        members.sort(key=lambda i: hashlib.sha1(ids[i].encode()).hexdigest())
        for i in members[: math.ceil(test_fraction * len(members))]:
            split[i] = "test"
    return split


def main(argv=None):
    ap = _common.script_parser(__doc__)
    ap.add_argument("--out", type=Path, default=_common.DEFAULT_OUT, help="output directory")
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="directory of .sh3f files")
    ap.add_argument("--size", type=int, default=32, help="grid side in voxels")
    ap.add_argument("--test-fraction", type=float, default=0.2)
    ap.add_argument("--limit", type=int, default=None, help="only the first N selected models (debug)")
    args = ap.parse_args(argv)
    import logging
    import warnings

    from tqdm import tqdm

    logging.getLogger("trimesh").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    t0 = time.time()
    archives = sorted(args.source.glob("*.sh3f"))
    if not archives:
        raise SystemExit(f"no .sh3f archives in {args.source}: install the Debian package "
                         "'sweethome3d-furniture' or pass --source")
    catalogs, selected, n_models = {}, [], 0
    for a in archives:
        info, entries = read_catalog(a)
        catalogs[a.name] = info
        n_models += len(entries)
        for e in entries:
            c = classify(e["name"])
            if c is not None:
                e["class"] = c
                selected.append(e)
    if args.limit:
        selected = selected[: args.limit]

    grids, kept, failures = [], [], []
    by_archive = {}
    for e in selected:
        by_archive.setdefault(e["archive"], []).append(e)
    bar = tqdm(total=len(selected), desc="voxelising furniture", unit="model")
    for a in archives:
        if a.name not in by_archive:
            continue
        with zipfile.ZipFile(a) as z:
            for e in by_archive[a.name]:
                try:
                    g = process_entry(z, e, args.size)
                    grids.append(np.packbits(g.ravel()))
                    kept.append(e)
                except Exception as ex:  # noqa: BLE001
                    failures.append(f"{e['id']}: {ex}")
                bar.update()
    bar.close()

    classes = [e["class"] for e in kept]
    ids = [e["id"] for e in kept]
    label = np.array([CLASS_NAMES.index(c) for c in classes], dtype=np.int64)
    split = split_by_hash(ids, classes, args.test_fraction)
    args.out.mkdir(parents=True, exist_ok=True)
    npz = args.out / f"{NAME}.npz" if args.size == 32 else args.out / f"furniture_shapes_{args.size}.npz"
    _common.atomic_savez(
        npz,
        voxels_packed=np.stack(grids) if grids else np.zeros((0, args.size ** 3 // 8), np.uint8),
        shape=np.array([args.size] * 3, dtype=np.int64),
        label=label, class_names=np.array(CLASS_NAMES), split=split,
        model_id=np.array(ids), model_name=np.array([e["name"] for e in kept]),
        room_category=np.array([e["category"] for e in kept]),
        creator=np.array([e["creator"] for e in kept]),
        archive=np.array([e["archive"] for e in kept]),
        licence=np.array([e["licence"] or "" for e in kept]),
    )
    per_class = {c: {"train": int(((label == i) & (split == "train")).sum()),
                     "test": int(((label == i) & (split == "test")).sum())}
                 for i, c in enumerate(CLASS_NAMES)}
    occ = np.unpackbits(np.stack(grids), axis=1)[:, : args.size ** 3].mean() if grids else 0.0
    summary = {"archives": len(archives), "models_in_catalogs": n_models,
               "models_matched_to_a_class": len(selected), "voxelised": len(kept),
               "failed": len(failures), "per_class": per_class,
               "mean_occupancy": round(float(occ), 4)}
    _common.write_provenance(
        args.out, npz.stem, [npz],
        description=(f"{len(kept)} furniture models from the Sweet Home 3D catalogs in "
                     f"{len(CLASS_NAMES)} classes (from model names), voxelised to "
                     f"{args.size}^3 (filled, centred, longest extent = {args.size - 2} voxels)."),
        task="classification",
        source="/usr/share/sweethome3d/furniture/*.sh3f",
        source_package=f"sweethome3d-furniture {_common.debian_package_version('sweethome3d-furniture')} (Debian)",
        licence=("per model, see the npz 'licence' and 'creator' arrays: Blend Swap CC-0 archive: "
                 "public domain (CC0); Blend Swap CC-BY, Kator Legaz, Reallusion, Scopia archives: "
                 "Creative Commons Attribution 3.0 (attribute the 'creator' of each model and the "
                 "catalog authors)"),
        citation=("Sweet Home 3D furniture libraries, Emmanuel Puybaret / eTeks "
                  "(https://www.sweethome3d.com/freeModels.jsp), models by Blend Swap authors, "
                  "Andrew Kator & Jennifer Legaz, Reallusion, Scopia Visual Interfaces Systems"),
        url="https://www.sweethome3d.com/freeModels.jsp",
        catalogs=catalogs, class_names=CLASS_NAMES,
        class_rules={c: rx.pattern for c, rx in CLASS_RULES}, exclude_rule=EXCLUDE.pattern,
        shape=[args.size] * 3, axis_order="(up, depth, width) = (y, z, x) of Sweet Home 3D",
        test_fraction=args.test_fraction, counts=summary, failures=failures[:50],
        build_seconds=round(time.time() - t0, 1),
    )
    _common.print_build_summary(npz, time.time() - t0, summary, failures)
    return summary


if __name__ == "__main__":
    main()
