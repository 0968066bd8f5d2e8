"""Voxel-grid inputs: meshes (OBJ/OFF/STL/PLY via trimesh), ``.npy``/``.npz`` arrays, binvox files,
MedMNIST-3D ``.npz`` archives and ModelNet-style mesh folders, as occupancy grids and torch datasets.

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

Datasets return MONAI-style dictionaries ``{"image": FloatTensor (1, S, S, S), "label": int}``.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from .binvox import read_binvox
from .errors import DataError, DataWarning, check_finite

__all__ = [
    "MESH_EXTENSIONS",
    "load_mesh",
    "mesh_to_grid_coordinates",
    "voxelize_mesh",
    "load_array",
    "load_voxel_file",
    "load_medmnist3d",
    "MedMNIST3D",
    "mesh_folder_items",
    "voxelize_files",
    "MeshFolderVoxels",
    "ModelNetVoxels",
]

_log = logging.getLogger(__name__)
PathLike = Union[str, Path]
MESH_EXTENSIONS = (".off", ".obj", ".stl", ".ply")
_CACHE_VERSION = 2  # 2: skipped files stored; method="auto" falls back to "fill" on empty grids
_OFF_FUSED = re.compile(rb"^\s*OFF\s*(\d+)\s+(\d+)\s+(\d+)\s*$")


def _require_file(path: PathLike, what: str = "file") -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} not found: {path}")
    if not path.is_file():
        raise DataError(f"{what} is not a regular file: {path}")
    return path


# ----------------------------------------------------------------------------------------------------------
# meshes


def load_mesh(path: PathLike):
    """Load a mesh file (``.off``, ``.obj``, ``.stl``, ``.ply``) read-only as one ``trimesh.Trimesh``.

    Scenes are merged into one mesh. ModelNet's malformed OFF headers (``OFF490 518 0`` on one line) are
    repaired in memory (the file is never changed).

    Raises:
        DataError: missing/unreadable file, or a mesh without faces.
    """
    import trimesh

    path = _require_file(path, "mesh file")
    raw = path.read_bytes()
    ext = path.suffix.lower()
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
            :mod:`equivox.accuracy`).

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


# ----------------------------------------------------------------------------------------------------------
# arrays and binvox


def load_array(path: PathLike, key: Optional[str] = None) -> np.ndarray:
    """Read a ``.npy`` array, or one array (``key``, or the only one) of a ``.npz`` archive (no pickles).

    Raises:
        DataError: missing/unreadable file, ambiguous or unknown ``key`` (the message lists the keys).
    """
    path = _require_file(path, "array file")
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
    path = _require_file(path, "volume file")
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


# ----------------------------------------------------------------------------------------------------------
# MedMNIST-3D


def load_medmnist3d(path: PathLike, split: str = "train") -> Tuple[np.ndarray, np.ndarray]:
    """Read one split of a MedMNIST-3D style ``.npz`` (keys ``{split}_images``, ``{split}_labels``).

    Returns:
        ``images``: ``uint8`` ``(N, D, H, W)`` (28^3 or 64^3 for MedMNIST), ``labels``: ``int64`` ``(N,)``
        (single-label) or ``(N, K)`` (multi-label).

    Raises:
        DataError: missing file, missing keys (lists those present), wrong shapes or mismatched lengths.
    """
    path = _require_file(path, "MedMNIST archive")
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            need = [f"{split}_images", f"{split}_labels"]
            missing = [k for k in need if k not in keys]
            if missing:
                raise DataError(f"{path} is not a MedMNIST-3D archive for split {split!r}: missing {missing}; "
                                f"it holds {keys}")
            images, labels = z[need[0]], z[need[1]]
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"cannot read MedMNIST archive {path}: {type(err).__name__}: {err}") from None
    if images.ndim != 4:
        raise DataError(f"{path}: {split}_images must be (N, D, H, W), got shape {images.shape}")
    labels = np.asarray(labels).astype(np.int64)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.shape[0] != images.shape[0]:
        raise DataError(f"{path}: {images.shape[0]} {split} images but {labels.shape[0]} labels")
    return images, labels


class MedMNIST3D(Dataset):
    """A split of a MedMNIST-3D style ``.npz`` as a classification dataset.

    Items are ``{"image": FloatTensor (1, D, H, W) in [0, 1] (uint8 / 255), "label": int}`` (``label`` is an
    ``int64`` tensor ``(K,)`` for multi-label archives), passed through ``transform`` (a callable on the
    dictionary, e.g. a MONAI ``Compose`` of dictionary transforms) when given.

    Attributes: ``images`` (uint8 numpy), ``labels`` (int64 numpy), ``num_classes``.
    """

    def __init__(self, path: PathLike, split: str = "train", transform: Optional[Callable] = None):
        self.path, self.split, self.transform = Path(path), split, transform
        self.images, self.labels = load_medmnist3d(path, split)
        self.num_classes = int(self.labels.max()) + 1 if self.labels.ndim == 1 and len(self.labels) else (
            self.labels.shape[1] if self.labels.ndim == 2 else 0)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Dict[str, object]:
        img = torch.from_numpy(self.images[i].astype(np.float32) / 255.0)[None]
        lab = self.labels[i]
        item = {"image": img, "label": int(lab) if np.ndim(lab) == 0 else torch.from_numpy(np.array(lab))}
        return self.transform(item) if self.transform is not None else item


# ----------------------------------------------------------------------------------------------------------
# mesh folders (ModelNet layout) with an on-disk voxel cache


def mesh_folder_items(root: PathLike, split: str = "train",
                      extensions: Sequence[str] = MESH_EXTENSIONS) -> Tuple[List[Path], List[int], List[str]]:
    """List a ModelNet-style folder ``root/<class>/<split>/*.<ext>``.

    Returns ``(files, labels, class_names)``: files sorted by class then name, ``labels[i]`` indexes the
    alphabetically sorted ``class_names`` (only classes with a ``<split>`` folder count).

    Raises:
        DataError: missing root, no class folders with a ``<split>`` subfolder, or no mesh files.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset folder not found: {root}")
    class_names = sorted(p.name for p in root.iterdir() if (p / split).is_dir())
    if not class_names:
        raise DataError(f"{root} has no '<class>/{split}/' folders (ModelNet layout expected)")
    files, labels = [], []
    exts = tuple(e.lower() for e in extensions)
    for c, name in enumerate(class_names):
        found = sorted(p for p in (root / name / split).iterdir() if p.is_file() and p.suffix.lower() in exts)
        files += found
        labels += [c] * len(found)
    if not files:
        raise DataError(f"{root}: no mesh files ({', '.join(exts)}) under '<class>/{split}/'")
    return files, labels, class_names


def _file_signature(path: Path) -> List:
    st = path.stat()
    return [str(path.resolve()), st.st_mtime_ns, st.st_size]


def voxelize_files(files: Sequence[PathLike], size: int = 32, margin: int = 1, method: str = "auto",
                   cache_file: Optional[PathLike] = None, progress: bool = True, desc: str = "voxelizing",
                   strict: bool = False) -> Tuple[np.ndarray, List[Tuple[Path, str]]]:
    """Voxelize many mesh files into a ``bool`` array, with a tqdm progress bar.

    Files that cannot be used (unreadable, no faces, zero extent, empty grid) are skipped: each gives a
    :class:`~equivox.data.DataWarning` naming the file and the reason, and the run goes on. ``strict=True`` raises
    the first such problem as a :class:`DataError` instead. When no file at all is usable, :class:`DataError` is
    raised (naming them).

    With ``cache_file`` (an ``.npz``), the result is stored there (bit-packed, with the skipped files) under a key
    made of every file's absolute path, mtime and byte size and the grid settings; a later call returns it if the
    key matches (skipped files are reported again), and rebuilds it (overwriting atomically) if any file changed
    or the cache file is unreadable or corrupt. The cache is optional: a failure to read or write it warns once.

    Returns:
        ``(voxels, skipped)``: ``voxels`` ``bool`` ``(N_kept, S, S, S)`` for the usable files in input order,
        ``skipped`` a list of ``(path, reason)``.
    """
    from tqdm.auto import tqdm

    from ..cache import atomic_write, warn_once

    files = [Path(f) for f in files]
    key = json.dumps({"v": _CACHE_VERSION, "size": size, "margin": margin, "method": method,
                      "files": [_file_signature(f) for f in files]})
    digest = hashlib.sha256(key.encode()).hexdigest()
    skipped: List[Tuple[Path, str]] = []
    out = None
    if cache_file is not None:
        cache_file = Path(cache_file)
        try:
            if cache_file.is_file():
                with np.load(cache_file, allow_pickle=False) as z:
                    if str(z["digest"]) == digest:
                        reasons = json.loads(str(z["skipped"]))
                        skipped = [(files[int(i)], r) for i, r in reasons]
                        n = len(files) - len(skipped)
                        out = np.unpackbits(z["packed"], count=n * size**3).reshape(n, size, size, size).astype(bool)
                    else:
                        _log.info("voxel cache %s is stale; rebuilding", cache_file)
        except OSError as err:  # cache folder unreadable: work without it
            warn_once("voxel-read", f"cannot read voxel cache {cache_file} ({type(err).__name__}: {err}); "
                                    "voxelizing without the cache")
        except Exception as err:  # corrupt / truncated cache: rebuild, never trust
            _log.warning("voxel cache %s unreadable (%s); rebuilding", cache_file, err)
            out, skipped = None, []
    if out is not None:
        if strict and skipped:
            raise DataError(f"{skipped[0][0]}: {skipped[0][1]}")
    else:
        grids, skip_idx = [], []
        for n, f in enumerate(tqdm(files, desc=desc, disable=not progress, unit="mesh")):
            try:
                grids.append(voxelize_mesh(load_mesh(f), size=size, margin=margin, method=method))
            except Exception as err:  # DataError, or a trimesh failure on a malformed mesh
                msg = str(err) if isinstance(err, DataError) else f"{type(err).__name__}: {err}"
                if strict:
                    raise DataError(msg if str(f) in msg else f"{f}: {msg}") from None
                skipped.append((f, msg.replace(f" {f}: ", ": ").replace(f"{f}: ", "").replace(f" {f}", "")))
                skip_idx.append(n)
        out = np.stack(grids) if grids else np.zeros((0, size, size, size), dtype=bool)
        if cache_file is not None:
            payload = dict(digest=np.array(digest), key=np.array(key), packed=np.packbits(out.ravel()),
                           skipped=np.array(json.dumps([[i, r] for i, (_, r) in zip(skip_idx, skipped)])))
            try:
                atomic_write(cache_file, lambda fh: np.savez(fh, **payload))
            except Exception as err:  # read-only / full cache folder: result still valid, just not cached
                warn_once("voxel-write", f"could not write voxel cache {cache_file} ({type(err).__name__}: {err});"
                                         " continuing without it")
    for f, reason in skipped:
        warnings.warn(f"skipped {f}: {reason}", DataWarning, stacklevel=2)
    if len(out) == 0:
        raise DataError(f"none of the {len(files)} mesh files could be used: "
                        + "; ".join(f"{f}: {r}" for f, r in skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
    return out, skipped


def _default_voxel_cache() -> Optional[Path]:
    from ..cache import usable_cache_dir

    return usable_cache_dir("voxels")


class MeshFolderVoxels(Dataset):
    """A ModelNet-style folder ``root/<class>/<split>/*.off|obj|stl|ply`` voxelized as a classification
    dataset (ModelNet10/40 layout).

    The whole split is voxelized once (progress bar) and cached as one ``.npz`` in ``cache_dir`` (default
    ``equivox.cache.cache_dir() / "voxels"``; no cache, with one warning, when that folder is unusable), keyed by
    every file's path, mtime and size and by ``size``/``margin``/``method``; see :func:`voxelize_files`.
    Files that cannot be used are skipped with a :class:`~equivox.data.DataWarning` naming each and why (listed in
    ``skipped``); ``strict=True`` raises :class:`DataError` instead.

    Items: ``{"image": FloatTensor (1, S, S, S) with values 0/1, "label": int}``, passed through
    ``transform`` (callable on the dictionary, e.g. ``RandGridRotatedd("image")``) when given.

    Attributes: ``class_names`` (sorted), ``files`` and ``labels`` (``int64`` numpy) of the usable files,
    ``voxels`` (``bool`` numpy ``(N, S, S, S)``), ``skipped`` (``[(path, reason), ...]``), ``cache_file``.
    """

    def __init__(self, root: PathLike, split: str = "train", size: int = 32, margin: int = 1,
                 method: str = "auto", cache_dir: Optional[PathLike] = None, transform: Optional[Callable] = None,
                 progress: bool = True, strict: bool = False):
        self.root, self.split, self.size, self.transform = Path(root), split, size, transform
        files, labels, self.class_names = mesh_folder_items(root, split)
        folder = Path(cache_dir) if cache_dir is not None else _default_voxel_cache()
        tag = hashlib.sha256(f"{self.root.resolve()}|{split}|{size}|{margin}|{method}".encode()).hexdigest()[:16]
        self.cache_file = folder / f"{self.root.name}-{split}-{size}-{tag}.npz" if folder is not None else None
        self.voxels, self.skipped = voxelize_files(files, size, margin, method, self.cache_file, progress,
                                                   desc=f"voxelizing {self.root.name}/{split}", strict=strict)
        bad = {f for f, _ in self.skipped}
        keep = [i for i, f in enumerate(files) if f not in bad]
        self.files = [files[i] for i in keep]
        self.labels = np.asarray([labels[i] for i in keep], dtype=np.int64)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Dict[str, object]:
        item = {"image": torch.from_numpy(self.voxels[i].astype(np.float32))[None], "label": int(self.labels[i])}
        return self.transform(item) if self.transform is not None else item


ModelNetVoxels = MeshFolderVoxels
