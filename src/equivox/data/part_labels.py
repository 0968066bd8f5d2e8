"""Per-voxel part labels from the materials of a mesh: the voxelization rule of ``kicad_part_segments``.

A KiCad 3D model names the material of every shape (``DEF PIN-01``, ``DEF IC-BODY-EPOXY-04``, ...).
:func:`material_class` maps a material name to a class of :data:`PART_CLASSES` (background / body / metal) by
:data:`METAL_MATERIALS`; :func:`voxelize_labelled_shapes` voxelizes the shapes of each class on one common grid
and writes a label map in which metal wins where a metal shape and a body overlap (a lead inside its epoxy is
metal, as a CT scan would show it).

Rule (the same for the stored grids and for the mesh-level SO(3) protocol, which rotates the mesh and calls this
again): the placement of :func:`~equivox.data.mesh_to_grid_coordinates` over all shapes together (``"box"``:
longest extent ``size - 2 * margin`` voxels; ``rotation`` about the bounding-box centre); each triangle is sampled
on a barycentric lattice finer than half a voxel and every voxel holding a sample is marked (a sample on a voxel
boundary counts for the voxel nearer the grid centre); each class's marked
voxels are then filled (``scipy.ndimage.binary_fill_holes``): class ``c`` gets the filled surfaces of every class
``>= c``, so the whole part is solid even where its body is closed only by its leads, and metal is the filled
metal surfaces.
"""
from __future__ import annotations

import re
from typing import Sequence, Tuple

import numpy as np

from .errors import DataError
from .meshes import mesh_to_grid_coordinates

__all__ = ["PART_CLASSES", "METAL_MATERIALS", "material_class", "voxelize_labelled_shapes"]

#: class index = position; background first
PART_CLASSES = ("background", "body", "metal")
#: material names (KiCad's DEF names, case-insensitive) of class ``metal``: pins, leads, pads, tabs and shields
#: (``PIN-*``, ``MET-*``); every other named material (epoxy, plastic, ceramic, glass, board, label, ...) is body
METAL_MATERIALS = re.compile(r"^(PIN|MET)(-|_|$)", re.IGNORECASE)


def material_class(material: str) -> int:
    """Class index in :data:`PART_CLASSES` of a material name: 2 (metal) for :data:`METAL_MATERIALS`, else 1.

    Example:
        >>> [material_class(m) for m in ("PIN-01", "MET-SILVER", "IC-BODY-EPOXY-04", "GLASS-13", "")]
        [2, 2, 1, 1, 1]
    """
    return 2 if METAL_MATERIALS.match(material or "") else 1


def _surface_voxels(tri: np.ndarray, size: int) -> np.ndarray:
    """Voxels ``(size,)*3`` bool touched by triangles ``(F, 3, 3)`` in voxel coordinates, sampled on barycentric
    lattices with spacing below half a voxel."""
    out = np.zeros((size,) * 3, dtype=bool)
    if len(tri) == 0:
        return out
    edge = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2).max(1)
    steps = np.maximum(1, np.ceil(edge / 0.45).astype(np.int64))
    for n in np.unique(steps):
        t = tri[steps == n]
        i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
        keep = (i + j) <= n
        a, b = i[keep] / n, j[keep] / n
        w = np.stack([1 - a - b, a, b], 1)  # (P, 3) barycentric weights
        pts = np.einsum("pk,fkc->fpc", w, t).reshape(-1, 3)
        # a face on a voxel boundary belongs to the voxel on the grid centre's side: the placement's extreme faces
        # (at margin and size - margin) then stay inside the margin on both ends, symmetric under grid rotations
        pts = size / 2.0 + (pts - size / 2.0) * (1.0 - 1e-7)
        idx = np.floor(pts).astype(np.int64)
        idx = idx[((idx >= 0) & (idx < size)).all(1)]
        out[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    return out


def voxelize_labelled_shapes(shapes: Sequence[Tuple[int, np.ndarray, np.ndarray]], size: int = 32, margin: int = 1,
                             placement: str = "box", rotation=None,
                             num_classes: int = len(PART_CLASSES)) -> np.ndarray:
    """Label map ``(size, size, size)`` uint8 (axes ``(d, h, w) = (x, y, z)`` of the mesh; 0 = background) of
    shapes ``[(class index >= 1, vertices (V, 3), triangles (F, 3))]``; higher class indices win where classes
    overlap (class ``c`` = the filled union of the surfaces of every class ``>= c``). ``placement`` and
    ``rotation``: as :func:`~equivox.data.mesh_to_grid_coordinates`, over all shapes.

    Raises:
        DataError: no shapes, a class index outside ``[1, num_classes)``, or nothing occupied.
    """
    from scipy.ndimage import binary_fill_holes

    shapes = [(int(c), np.asarray(v, np.float64), np.asarray(f, np.int64)) for c, v, f in shapes if len(f)]
    if not shapes:
        raise DataError("no shapes with faces to voxelize")
    bad = sorted({c for c, _, _ in shapes if not 1 <= c < num_classes})
    if bad:
        raise DataError(f"shape classes must be in [1, {num_classes}), got {bad}")
    verts = mesh_to_grid_coordinates(np.concatenate([v for _, v, _ in shapes]), size, margin, placement, rotation)
    offsets = np.cumsum([0] + [len(v) for _, v, _ in shapes])
    surface = {c: _surface_voxels(np.concatenate([verts[o:o + len(v)][f] for (k, v, f), o in zip(shapes, offsets)
                                                   if k == c]), size) for c in sorted({c for c, _, _ in shapes})}
    label = np.zeros((size,) * 3, dtype=np.uint8)
    for c in surface:  # class c fills the surfaces of every class >= c: a body closed only by its leads is solid
        label[binary_fill_holes(np.logical_or.reduce([m for k, m in surface.items() if k >= c]))] = c
    if not label.any():
        raise DataError("voxelization produced an empty grid")
    return label
