"""Meshes as occupancy grids: read a mesh file (OBJ/OFF/STL/PLY via trimesh, VRML 2.0 ``.wrl`` by
:func:`parse_vrml`) and voxelize it.

Placement rule (:func:`voxelize_mesh`): grid voxel ``(i, j, k)`` is the unit cube ``[i, i+1) x [j, j+1) x [k, k+1)``
in voxel coordinates (centre ``(i + 0.5, j + 0.5, k + 0.5)``); the mesh's axis-aligned bounding box is
centred on the grid centre ``(S/2, S/2, S/2)`` and scaled uniformly so its **longest extent spans exactly
``size - 2 * margin`` voxels**. Mesh axes ``(x, y, z)`` become tensor axes ``(d, h, w)``. Occupancy:

* ``method="inside"`` (default for watertight meshes): a voxel is occupied iff its centre is inside the mesh
  (exact point-in-solid test by ray parity along ``w``; the occupied volume converges to the mesh volume).
  ``method="auto"`` falls back to ``"fill"`` when this leaves the grid empty (a part thinner than one voxel);
* ``method="fill"`` (default for non-watertight meshes): trimesh's surface voxelization (every voxel the
  surface passes through) followed by trimesh's hole filling (scipy ``binary_fill_holes``); conservative, so a
  one-voxel shell is added around the solid.
"""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Union

import numpy as np

from .errors import DataError, require_file

__all__ = ["MESH_EXTENSIONS", "load_mesh", "parse_vrml", "parse_vrml_shapes", "mesh_to_grid_coordinates",
           "voxelize_mesh"]

PathLike = Union[str, Path]
MESH_EXTENSIONS = (".off", ".obj", ".stl", ".ply", ".wrl")
_OFF_FUSED = re.compile(rb"^\s*OFF\s*(\d+)\s+(\d+)\s+(\d+)\s*$")
_VRML_HEADER = re.compile(r"^#VRML V2\.0")
_VRML_UNSUPPORTED = re.compile(r"\b(Transform|Inline|PROTO|EXTERNPROTO|Group|Billboard|LOD|Switch)\s*\{"
                               r"|\bcoord\s+USE\b")
_VRML_POINT = re.compile(r"\bpoint\s*\[([^\]]*)\]")
_VRML_INDEX = re.compile(r"\bcoordIndex\s*\[([^\]]*)\]")


def _numbers(text: str, dtype) -> np.ndarray:
    text = text.replace(",", " ").strip()
    return np.array(text.split(), dtype=dtype) if text else np.zeros(0, dtype=dtype)


def _triangulate(index: np.ndarray, n_points: int, where: str) -> np.ndarray:
    """Fan-triangulate a VRML ``coordIndex`` list (polygons ended by ``-1``; the last ``-1`` may be missing)."""
    if len(index) and index[-1] != -1:
        index = np.append(index, -1)
    ends = np.flatnonzero(index == -1)
    starts = np.concatenate([[0], ends[:-1] + 1])
    sizes = ends - starts
    if len(index) and (index.min() < -1 or index.max() >= n_points):
        bad = int(index.max() if index.max() >= n_points else index.min())
        raise DataError(f"{where}: coordIndex refers to point {bad} but the set has {n_points} points")
    tris = []
    for k in np.unique(sizes[sizes >= 3]):  # polygon of k corners -> k - 2 triangles (c0, c_j, c_j+1)
        s = starts[sizes == k]
        j = np.arange(1, k - 1)
        tris.append(np.stack([index[np.repeat(s, k - 2)], index[(s[:, None] + j).ravel()],
                              index[(s[:, None] + j + 1).ravel()]], axis=1))
    return np.concatenate(tris).astype(np.int64) if tris else np.zeros((0, 3), np.int64)


_VRML_SHAPE = re.compile(r"\bShape\s*\{")
_VRML_MATERIAL = re.compile(r"\bmaterial\s+(?:DEF|USE)\s+([^\s{}]+)")


def parse_vrml_shapes(text: str, where: str = "VRML text") -> list:
    """The ``IndexedFaceSet`` s of a flat VRML 2.0 scene, one per ``Shape``, with the name of the material it
    uses: ``[(material name or "", vertices (V, 3) float64, triangles (F, 3) int64)]`` in file order, in the
    file's own coordinates and units.

    KiCad's exports define each material once (``material DEF PIN-01 Material {...}``, often in a ``Shape`` without
    geometry) and refer to it from every shape (``material USE PIN-01``); either form names the shape's material.
    Polygons are fan-triangulated; normals, colours and ``IndexedLineSet`` s are ignored.

    Raises:
        DataError: not VRML 2.0, a scene graph node that would move geometry (``Transform``, ``Inline``,
            ``PROTO``, ...; not supported: the geometry would be misplaced), an index out of range, or no faces.
    """
    if not _VRML_HEADER.match(text):
        raise DataError(f"{where}: not a VRML 2.0 file (first line must start with '#VRML V2.0')")
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    bad = _VRML_UNSUPPORTED.search(body)
    if bad:
        raise DataError(f"{where}: VRML node {bad.group(0).split()[0]!r} is not supported (only flat Shape / "
                        "IndexedFaceSet scenes are read)")
    shapes, n = [], 0
    for block in _VRML_SHAPE.split(body)[1:] or [body]:
        parts = block.split("IndexedFaceSet")
        mat = _VRML_MATERIAL.search(block)
        for chunk in parts[1:]:
            pts, idx = _VRML_POINT.search(chunk), _VRML_INDEX.search(chunk)
            if pts is None or idx is None:
                raise DataError(f"{where}: IndexedFaceSet {n} lacks its 'point' or 'coordIndex' list")
            p = _numbers(pts.group(1), np.float64)
            if len(p) % 3:
                raise DataError(f"{where}: IndexedFaceSet {n} has {len(p)} point coordinates (not a multiple of 3)")
            p = p.reshape(-1, 3)
            f = _triangulate(_numbers(idx.group(1), np.int64), len(p), f"{where} IndexedFaceSet {n}")
            shapes.append((mat.group(1) if mat else "", p, f))
            n += 1
    if not shapes or sum(len(f) for _, _, f in shapes) == 0:
        raise DataError(f"{where}: no IndexedFaceSet faces in the file")
    return shapes


def parse_vrml(text: str, where: str = "VRML text"):
    """Vertices ``(V, 3)`` float64 and triangles ``(F, 3)`` int64 of every ``IndexedFaceSet`` of a flat VRML 2.0
    scene (the form KiCad and FreeCAD export: ``Shape { geometry IndexedFaceSet { coordIndex [...] coord
    Coordinate { point [...] } } }``), merged, in the file's own coordinates and units (materials:
    :func:`parse_vrml_shapes`).

    Raises:
        DataError: as :func:`parse_vrml_shapes`.
    """
    shapes = parse_vrml_shapes(text, where)
    offsets = np.cumsum([0] + [len(v) for _, v, _ in shapes])
    return (np.concatenate([v for _, v, _ in shapes]),
            np.concatenate([f + o for (_, _, f), o in zip(shapes, offsets)]))


def load_mesh(path: PathLike):
    """Load a mesh file (``.off``, ``.obj``, ``.stl``, ``.ply``, ``.wrl``) read-only as one ``trimesh.Trimesh``.

    Scenes are merged into one mesh. ModelNet's malformed OFF headers (``OFF490 518 0`` on one line) are
    repaired in memory (the file is never changed).

    Raises:
        DataError: missing/unreadable file, or a mesh without faces.
    """
    import trimesh

    path = require_file(path, "mesh file")
    raw = path.read_bytes()
    ext = path.suffix.lower()
    if ext == ".wrl":
        v, f = parse_vrml(raw.decode("utf-8", errors="replace"), where=str(path))
        return trimesh.Trimesh(v, f, process=True)
    if ext == ".off":
        first, sep, rest = raw.partition(b"\n")
        m = _OFF_FUSED.match(first)
        if m and first.strip() != b"OFF":
            raw = b"OFF\n" + b" ".join(m.groups()) + b"\n" + rest
    try:
        mesh = trimesh.load(io.BytesIO(raw), file_type=ext.lstrip("."), force="mesh", process=True)
    except Exception as err:
        raise DataError(f"cannot read mesh {path}: {type(err).__name__}: {err}") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise DataError(f"mesh {path} is empty (no faces); cannot voxelize it")
    return mesh


def mesh_to_grid_coordinates(vertices: np.ndarray, size: int, margin: int = 1, placement: str = "box",
                             rotation=None) -> np.ndarray:
    """Map vertices ``(V, 3)`` into voxel coordinates. Returns float64 ``(V, 3)``.

    Args:
        placement: ``"box"`` (default): bounding-box centre to the grid centre ``size / 2``, longest extent to
            ``size - 2 * margin`` voxels. ``"sphere"``: the bounding sphere about the bounding-box centre fills the
            grid (radius ``size / 2 - margin``): smaller objects, but every rotation stays inside the grid at the
            same scale.
        rotation: optional 3x3 matrix ``M`` in the grid's ``(d, h, w) = (x, y, z)`` frame; vertices move as
            ``p -> M (p - c)`` about the bounding-box centre ``c`` of the unrotated mesh before placement (the
            volume convention of :func:`equivox.data.rotate_volume`: rotate the mesh, then voxelize, with no
            resampling blur).
    """
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise DataError(f"expected mesh vertices of shape (V, 3) with V > 0, got {v.shape}")
    if size - 2 * margin < 1:
        raise ValueError(f"grid size {size} leaves no room inside a margin of {margin}")
    if placement not in ("box", "sphere"):
        raise ValueError(f"placement must be 'box' or 'sphere', got {placement!r}")
    lo, hi = v.min(0), v.max(0)
    centre = (lo + hi) / 2.0
    v = v - centre
    radius = float(np.linalg.norm(v, axis=1).max())
    if rotation is not None:
        v = v @ np.asarray(rotation, dtype=np.float64).T
    if placement == "sphere":
        if not np.isfinite(radius) or radius <= 0:
            raise DataError("mesh has zero (or non-finite) extent; cannot scale it into a grid")
        return v * ((size / 2.0 - margin) / radius) + size / 2.0
    lo, hi = v.min(0), v.max(0)
    extent = float((hi - lo).max())
    if not np.isfinite(extent) or extent <= 0:
        raise DataError("mesh has zero (or non-finite) extent; cannot scale it into a grid")
    return (v - (lo + hi) / 2.0) * ((size - 2 * margin) / extent) + size / 2.0


def _inside_by_parity(tri: np.ndarray, size: int) -> np.ndarray:
    """Occupancy of voxel centres for a closed triangle soup ``(F, 3, 3)`` in voxel coordinates.

    Casts one ray along ``+w`` per ``(d, h)`` column of voxel centres and counts crossings (even-odd rule).
    The columns are shifted by a tiny irrational offset so no ray hits a triangle edge exactly.
    """
    eps = np.array([1.1e-7 * np.sqrt(2), 1.3e-7 * np.sqrt(3)])
    p = tri[:, :, :2]
    a, b, c = p[:, 0], p[:, 1], p[:, 2]
    area2 = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    keep = np.abs(area2) > 1e-12  # triangles parallel to the ray never cross it
    tri, p, area2 = tri[keep], p[keep], area2[keep]
    counts = np.zeros((size, size, size + 1), dtype=np.int32)
    if len(tri) == 0:
        return np.zeros((size,) * 3, dtype=bool)
    lo = np.ceil(p.min(1) - 0.5 - eps).astype(np.int64).clip(0, size)
    hi = np.floor(p.max(1) - 0.5 - eps).astype(np.int64).clip(-1, size - 1)
    ni = np.maximum(hi[:, 0] - lo[:, 0] + 1, 0)
    nj = np.maximum(hi[:, 1] - lo[:, 1] + 1, 0)
    n = ni * nj
    for chunk in np.array_split(np.arange(len(tri)), max(1, int(n.sum()) // 2_000_000 + 1)):
        cn = n[chunk]
        if cn.sum() == 0:
            continue
        t = np.repeat(chunk, cn)
        k = np.arange(int(cn.sum())) - np.repeat(np.cumsum(cn) - cn, cn)
        i = lo[t, 0] + k // nj[t]
        j = lo[t, 1] + k % nj[t]
        q = np.stack([i + 0.5, j + 0.5], 1) + eps
        pa, pb, pc = p[t, 0], p[t, 1], p[t, 2]

        def cross(u, v, w):
            return (v[:, 0] - u[:, 0]) * (w[:, 1] - u[:, 1]) - (v[:, 1] - u[:, 1]) * (w[:, 0] - u[:, 0])

        l0, l1, l2 = cross(q, pb, pc) / area2[t], cross(pa, q, pc) / area2[t], cross(pa, pb, q) / area2[t]
        hit = (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
        t, i, j = t[hit], i[hit], j[hit]
        wz = l0[hit] * tri[t, 0, 2] + l1[hit] * tri[t, 1, 2] + l2[hit] * tri[t, 2, 2]
        start = np.clip(np.floor(wz - 0.5).astype(np.int64) + 1, 0, size)  # first centre k + 0.5 beyond the hit
        np.add.at(counts, (i, j, start), 1)
    return (np.cumsum(counts, axis=2)[:, :, :size] % 2).astype(bool)


def _fill_by_surface(mesh, size: int) -> np.ndarray:
    import trimesh

    shifted = mesh.copy()
    shifted.apply_translation([-0.5, -0.5, -0.5])  # voxel centres -> integer points (trimesh's convention)
    grid = trimesh.voxel.creation.voxelize(shifted, pitch=1.0).fill()
    idx = grid.sparse_indices + np.rint(grid.translation).astype(np.int64)
    idx = idx[((idx >= 0) & (idx < size)).all(1)]
    out = np.zeros((size,) * 3, dtype=bool)
    out[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    return out


def voxelize_mesh(mesh, size: int = 32, margin: int = 1, method: str = "auto", placement: str = "box",
                  rotation=None) -> np.ndarray:
    """Voxelize a mesh into a ``bool`` occupancy grid ``(size, size, size)`` indexed ``(d, h, w) = (x, y, z)``.

    Args:
        mesh: a ``trimesh.Trimesh`` or a path to a mesh file (see :func:`load_mesh`).
        size: grid side ``S``. margin: empty voxels kept on each side of the longest extent.
        method: ``"inside"`` (centre-in-solid test; needs a closed mesh), ``"fill"`` (surface voxels + hole
            filling; any mesh) or ``"auto"`` (``"inside"`` if the mesh is watertight, else ``"fill"``; also
            ``"fill"`` when ``"inside"`` leaves the grid empty, e.g. a watertight part thinner than a voxel).
            See the module docstring for the placement rule.
        placement, rotation: see :func:`mesh_to_grid_coordinates` (``placement="sphere"`` with a ``rotation``:
            the rotated object voxelized at the same scale, nothing cut off: the mesh-level SO(3) protocol of
            :func:`equivox.benchmark.run_classification`).

    Raises:
        DataError: empty mesh, zero extent, or nothing occupied.
    """
    import trimesh

    if not isinstance(mesh, trimesh.Trimesh):
        mesh = load_mesh(mesh)
    if mesh.is_empty or len(mesh.faces) == 0:
        raise DataError("mesh is empty (no faces); cannot voxelize it")
    if method not in ("auto", "inside", "fill"):
        raise ValueError(f"method must be 'auto', 'inside' or 'fill', got {method!r}")
    verts = mesh_to_grid_coordinates(mesh.vertices, size, margin, placement, rotation)
    placed = trimesh.Trimesh(verts, mesh.faces, process=False)
    auto = method == "auto"
    if auto:
        method = "inside" if mesh.is_watertight else "fill"
    if method == "inside":
        occ = _inside_by_parity(verts[np.asarray(mesh.faces)], size)
        if auto and not occ.any():  # thinner than a voxel: no voxel centre inside, the surface still shows
            occ = _fill_by_surface(placed, size)
    else:
        occ = _fill_by_surface(placed, size)
    if not occ.any():
        raise DataError("voxelization produced an empty grid (mesh too thin for this grid size, or open "
                        "surface with method='inside'); try method='fill' or a larger size")
    return occ
