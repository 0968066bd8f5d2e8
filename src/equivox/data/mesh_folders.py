"""ModelNet-style mesh folders ``root/<class>/<split>/*.<ext>`` as classification datasets: listing, batch
voxelization that skips unusable files (one :class:`~equivox.data.DataWarning` each; ``strict`` raises), and an
optional on-disk voxel cache written atomically with :func:`equivox.cache.atomic_write`.

Datasets return MONAI-style dictionaries ``{"image": FloatTensor (1, S, S, S), "label": int}``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ..cache import atomic_write, usable_cache_dir, warn_once
from .errors import DataError, DataWarning
from .meshes import MESH_EXTENSIONS, load_mesh, voxelize_mesh

__all__ = ["mesh_folder_items", "voxelize_files", "MeshFolderVoxels", "ModelNetVoxels"]

_log = logging.getLogger(__name__)
PathLike = Union[str, Path]
_CACHE_VERSION = 2  # 2: skipped files stored; method="auto" falls back to "fill" on empty grids


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
