#!/usr/bin/env python
"""Download ModelNet10 and convert it to a voxel ``.npz`` (train/test, 10 classes).

ModelNet10 (Princeton, Wu et al. 2015): 4,899 CAD models (OFF meshes) in 10
classes, official train/test split. The zip layout is
``ModelNet10/<class>/<train|test>/<class>_NNNN.off``.

Steps: ``download`` (resumable, atomic, checksummed when ``--sha256`` is given --
Princeton publishes no checksum, the sha256 of a fresh download is printed so it
can be pinned) -> ``iter_modelnet_zip`` (parses OFF straight from the zip, also
the malformed ``OFF<nv> <nf> <ne>`` header some ModelNet files have) ->
``build_modelnet_npz`` (voxelise each mesh to ``--size``^3 like the bundled
furniture set, bit-packed).

Licence: ModelNet is provided for academic research use by Princeton; cite
Wu Z, Song S, Khosla A, et al. 3D ShapeNets: A Deep Representation for
Volumetric Shapes. CVPR 2015.

Usage::

    python data_scripts/download_modelnet10.py [--root DIR] [--size 32] [--limit-per-class N]
    python data_scripts/download_modelnet10.py --zip ModelNet10.zip   # already downloaded
"""
from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import _download  # noqa: E402

URL = "http://3dvision.princeton.edu/projects/2014/3DShapeNets/ModelNet10.zip"
SHA256 = None  # not published upstream; pass --sha256 to pin
CLASSES = ["bathtub", "bed", "chair", "desk", "dresser", "monitor", "night_stand", "sofa",
           "table", "toilet"]
LICENCE = "Princeton ModelNet: academic research use; cite Wu et al., CVPR 2015"


def parse_off(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse an OFF mesh. Returns (vertices float64 (V, 3), triangle faces int64 (F, 3)).

    Handles comments, blank lines, the ModelNet quirk ``OFF490 518 0`` (counts on the
    header line) and polygons with more than 3 vertices (fan triangulation).
    """
    tokens_lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    lines = [ln for ln in tokens_lines if ln]
    if not lines or not lines[0].startswith("OFF"):
        raise ValueError("not an OFF file (missing 'OFF' header)")
    head = lines[0][3:].strip()
    if head:  # counts glued to the header
        counts, body = head, lines[1:]
    else:
        counts, body = lines[1], lines[2:]
    nv, nf = (int(x) for x in counts.split()[:2])
    if len(body) < nv + nf:
        raise ValueError(f"truncated OFF: expected {nv} vertices + {nf} faces, got {len(body)} lines")
    verts = np.array([[float(x) for x in body[i].split()[:3]] for i in range(nv)], dtype=np.float64)
    tris = []
    for ln in body[nv:nv + nf]:
        vals = [int(x) for x in ln.split()]
        k, idx = vals[0], vals[1:1 + vals[0]]
        if k < 3 or len(idx) != k:
            raise ValueError(f"bad face line: {ln!r}")
        tris.extend([idx[0], idx[j], idx[j + 1]] for j in range(1, k - 1))
    faces = np.array(tris, dtype=np.int64).reshape(-1, 3)
    if faces.size and (faces.min() < 0 or faces.max() >= nv):
        raise ValueError("face index out of range")
    return verts, faces


_PATH_RX = re.compile(r"(?:^|/)ModelNet10/([^/]+)/(train|test)/([^/]+)\.off$")


def iter_modelnet_zip(zip_path: str | Path, split: str | None = None,
                      limit_per_class: int | None = None) -> Iterator[dict]:
    """Yield ``{"class", "split", "name", "vertices", "faces"}`` for each OFF in the zip,
    sorted by path (deterministic)."""
    seen: dict[tuple[str, str], int] = {}
    with zipfile.ZipFile(zip_path) as z:
        names = sorted(n for n in z.namelist() if _PATH_RX.search(n) and "__MACOSX" not in n)
        if not names:
            raise ValueError(f"{zip_path}: no ModelNet10/<class>/<train|test>/*.off entries")
        for n in names:
            cls, sp, name = _PATH_RX.search(n).groups()
            if split is not None and sp != split:
                continue
            key = (cls, sp)
            if limit_per_class is not None and seen.get(key, 0) >= limit_per_class:
                continue
            seen[key] = seen.get(key, 0) + 1
            v, f = parse_off(z.read(n).decode("latin-1"))
            yield {"class": cls, "split": sp, "name": name, "vertices": v, "faces": f}


def build_modelnet_npz(zip_path: str | Path, out: str | Path, size: int = 32,
                       limit_per_class: int | None = None, progress: bool = True) -> dict:
    """Voxelise every mesh of a ModelNet zip into a bit-packed ``.npz``; returns a summary."""
    import trimesh

    from build_furniture_shapes import voxelize_mesh

    items = list(iter_modelnet_zip(zip_path, limit_per_class=limit_per_class))
    classes = sorted({it["class"] for it in items})
    grids, labels, splits, names, failed = [], [], [], [], []
    it_ = items
    if progress:
        from tqdm import tqdm

        it_ = tqdm(items, desc="voxelising ModelNet", unit="mesh")
    for it in it_:
        try:
            mesh = trimesh.Trimesh(it["vertices"], it["faces"], process=False)
            g = voxelize_mesh(mesh, size=size)
        except Exception as e:  # noqa: BLE001
            failed.append(f"{it['name']}: {e}")
            continue
        grids.append(np.packbits(g.ravel()))
        labels.append(classes.index(it["class"]))
        splits.append(it["split"])
        names.append(it["name"])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _common.atomic_savez(
        out, voxels_packed=np.stack(grids) if grids else np.zeros((0, size ** 3 // 8), np.uint8),
        shape=np.array([size] * 3), label=np.array(labels, dtype=np.int64),
        class_names=np.array(classes), split=np.array(splits, dtype="U5"), name=np.array(names))
    counts = {c: {s: int(sum(1 for l, sp in zip(labels, splits) if l == i and sp == s))
                  for s in ("train", "test")} for i, c in enumerate(classes)}
    return {"out": str(out), "n": len(grids), "failed": failed, "per_class": counts}


def main(argv=None):
    ap = _common.script_parser(__doc__)
    ap.add_argument("--root", type=Path, default=None,
                    help="download directory (default: $EQUIVOX_DATA_DIR or the equivox cache)")
    ap.add_argument("--zip", type=Path, default=None, help="use an already downloaded ModelNet10.zip")
    ap.add_argument("--url", default=URL)
    ap.add_argument("--sha256", default=SHA256, help="expected sha256 of the zip")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--limit-per-class", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=_download.DEFAULT_TIMEOUT)
    args = ap.parse_args(argv)
    root = args.root or _download.data_root() / "modelnet10"
    try:
        zp = args.zip or _download.download(args.url, root / "ModelNet10.zip", sha256=args.sha256,
                                            timeout=args.timeout)
    except _download.DownloadError as e:
        raise SystemExit(f"error: {e}")
    print(f"zip: {zp}  sha256 {_download.file_hash(zp)}")
    summary = build_modelnet_npz(zp, root / f"modelnet10_{args.size}.npz", size=args.size,
                                 limit_per_class=args.limit_per_class)
    print(f"wrote {summary['out']}: {summary['n']} meshes, {len(summary['failed'])} failed")
    for c, v in summary["per_class"].items():
        print(f"  {c}: {v}")
    return summary


if __name__ == "__main__":
    main()
