"""The mesh files behind the bundled KiCad stores (the Debian package ``kicad-packages3d``), in the order of their
items: what the mesh-level rotation protocol rotates and voxelizes again."""
from __future__ import annotations

from pathlib import Path

from .bundled_shapes import load_kicad_part_segments, load_kicad_parts

__all__ = ["kicad_part_meshes", "kicad_part_segment_meshes"]


def kicad_part_meshes(split: str | None = None, root: str | Path | None = None) -> list[Path]:
    """Mesh files (``.wrl``) of the :func:`load_kicad_parts` items of ``split``, in the same order, for the
    mesh-level rotation protocol (rotate the mesh, then voxelize with :func:`equivox.data.voxelize_mesh`,
    ``method="fill"``, as the bundled grids were built). Needs the Debian package ``kicad-packages3d``.

    Args:
        root: the KiCad model folder (default: the one the set was built from, ``/usr/share/kicad/3dmodels``).

    Raises:
        FileNotFoundError: a mesh file is missing (the message names it and how to install the package).
    """
    d = load_kicad_parts(split)
    return _mesh_paths(d["model_path"], Path(root) if root is not None else Path(d["metadata"]["mesh_root"]))


def kicad_part_segment_meshes(split: str | None = None, root: str | Path | None = None) -> list[Path]:
    """Mesh files (``.wrl``) of the :func:`load_kicad_part_segments` items of ``split``, in the same order, for the
    mesh-level rotation protocol (rotate the shapes, then label them again with
    :func:`equivox.data.voxelize_labelled_shapes`). Needs the Debian package ``kicad-packages3d``.

    Raises:
        FileNotFoundError: a mesh file is missing (the message names it and how to install the package).
    """
    d = load_kicad_part_segments(split)
    return _mesh_paths(d["model_path"], Path(root) if root is not None else Path(d["metadata"]["mesh_root"]))


def _mesh_paths(relative, base: Path) -> list[Path]:
    paths = [base / str(p) for p in relative]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(paths)} KiCad mesh files are missing (first: "
                                f"{missing[0]}); install the Debian package kicad-packages3d "
                                "(apt-get install kicad-packages3d) or pass root=<folder of *.3dshapes>")
    return paths
