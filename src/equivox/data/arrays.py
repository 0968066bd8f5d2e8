"""Arrays and single volume files: ``.npy`` / ``.npz`` arrays (no pickles) and one volume from any supported
format (arrays, binvox, meshes) as a numpy grid."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np

from .binvox import read_binvox
from .errors import DataError, check_finite, require_file
from .meshes import MESH_EXTENSIONS, load_mesh, voxelize_mesh

__all__ = ["load_array", "load_voxel_file"]

PathLike = Union[str, Path]


def load_array(path: PathLike, key: Optional[str] = None) -> np.ndarray:
    """Read a ``.npy`` array, or one array (``key``, or the only one) of a ``.npz`` archive (no pickles).

    Raises:
        DataError: missing/unreadable file, ambiguous or unknown ``key`` (the message lists the keys).
    """
    path = require_file(path, "array file")
    try:
        obj = np.load(path, allow_pickle=False)
    except Exception as err:
        raise DataError(f"cannot read array file {path}: {type(err).__name__}: {err}") from None
    if isinstance(obj, np.ndarray):  # .npy: np.load returns the array itself
        return obj
    try:
        with obj:
            keys = list(obj.keys())
            if key is None:
                if len(keys) != 1:
                    raise DataError(f"{path} holds arrays {keys}; pass key= to choose one")
                key = keys[0]
            if key not in keys:
                raise DataError(f"{path} has no array {key!r}; it holds {keys}")
            return obj[key]
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"cannot read array file {path}: {type(err).__name__}: {err}") from None


def load_voxel_file(path: PathLike, size: int = 32, margin: int = 1, key: Optional[str] = None,
                    method: str = "auto") -> np.ndarray:
    """Load one volume, whatever its format: ``.npy``/``.npz`` (returned as stored, must be 3D and finite),
    ``.binvox`` (``bool`` ``[x, y, z]`` grid at its own resolution) or a mesh (voxelized by :func:`voxelize_mesh`
    at ``size``). Returns a numpy array ``(D, H, W)``.

    Raises:
        DataError: unreadable file, unsupported format, not 3D, or NaN/inf values (the message names the file).
    """
    path = require_file(path, "volume file")
    ext = path.suffix.lower()
    if ext in (".npy", ".npz"):
        arr = load_array(path, key)
        if arr.ndim != 3:
            raise DataError(f"{path}: expected a 3D volume (D, H, W), got shape {arr.shape}")
        check_finite(arr, f"volume file {path}")
        return arr
    if ext == ".binvox":
        return read_binvox(path).data
    if ext in MESH_EXTENSIONS:
        return voxelize_mesh(load_mesh(path), size=size, margin=margin, method=method)
    raise DataError(f"{path}: unsupported volume format {ext!r} (use .npy, .npz, .binvox or {MESH_EXTENSIONS})")
