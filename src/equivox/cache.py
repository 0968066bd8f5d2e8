"""Disk cache for expensive, deterministic escnn objects (kernel bases, sampling grids, group data).

Entries live under :func:`cache_dir` (``$EQUIVOX_CACHE_DIR``, else ``$XDG_CACHE_HOME/equivox``, else
``~/.cache/equivox``), never inside site-packages. Each entry is one file named by the SHA-256 of its key; the
file stores the full key and a checksum of its payload, so a stale (other key or escnn version) or corrupted
entry is detected, discarded and rebuilt, never trusted. Writes are atomic (temporary file + rename, see
:func:`atomic_write`), so concurrent processes (DDP ranks, pytest-xdist workers) can share one cache.

The cache is optional: when its folder cannot be created, read or written (read-only or full disk, a path
under a regular file, ...) equivox warns once (:class:`CacheWarning`) and continues without it.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import BinaryIO, Callable, Dict, Optional, Union

import torch

__all__ = ["CacheWarning", "atomic_write", "cache_dir", "usable_cache_dir", "cached_tensors", "clear_cache",
           "warn_once"]

_log = logging.getLogger(__name__)
_FORMAT = 1
_warned: set = set()


class CacheWarning(UserWarning):
    """An equivox disk cache (kernel bases, voxel grids) could not be used; work continues without it."""


def warn_once(kind: str, message: str) -> None:
    """Issue ``message`` as a :class:`CacheWarning` the first time ``kind`` occurs in this process (later
    occurrences are only logged at debug level), so a broken cache folder gives one warning, not hundreds."""
    if kind in _warned:
        _log.debug(message)
        return
    _warned.add(kind)
    warnings.warn(message, CacheWarning, stacklevel=3)


def _configured_dir() -> Path:
    root = os.environ.get("EQUIVOX_CACHE_DIR")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "equivox"


def cache_dir() -> Path:
    """Return the equivox cache folder (``$EQUIVOX_CACHE_DIR``, else ``$XDG_CACHE_HOME/equivox``, else
    ``~/.cache/equivox``), created on first use.

    Raises:
        OSError: the folder cannot be created (use :func:`usable_cache_dir` to get ``None`` and one warning
            instead).
    """
    path = _configured_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path


def usable_cache_dir(sub: Optional[str] = None) -> Optional[Path]:
    """The cache folder (or its subfolder ``sub``), created if needed; ``None`` with one :class:`CacheWarning`
    per process when it cannot be created (callers then work without the disk cache)."""
    path = _configured_dir() / sub if sub else _configured_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not path.is_dir():
            raise NotADirectoryError(f"not a folder: {path}")
        return path
    except OSError as err:
        warn_once("dir", f"equivox cache folder {path} cannot be used ({type(err).__name__}: {err}); "
                                 "continuing without the disk cache (set EQUIVOX_CACHE_DIR to a writable folder)")
        return None


def atomic_write(path: Union[str, Path], write: Callable[[BinaryIO], None]) -> Path:
    """Write ``path`` atomically: ``write(f)`` fills a temporary file in the same folder, which is flushed to disk
    and renamed over ``path`` (``os.replace``). Readers see the old file or the complete new one, never a partial
    file; on any error the temporary file is removed, ``path`` is left as it was and the error is re-raised.
    The parent folder is created if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def _digest(payload: Dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(payload):
        t = payload[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(str(t.dtype).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _entry_path(key: str) -> Optional[Path]:
    root = usable_cache_dir("tensors")
    if root is None:
        return None
    name = hashlib.sha256(key.encode()).hexdigest()[:40]
    return root / f"{name}.pt"


def cached_tensors(key: str, build: Callable[[], Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """Return ``build()``'s dictionary of tensors, from disk when a valid entry for ``key`` exists.

    ``key`` must name everything the result depends on (library versions, group, representations, kernel
    size, ...). Set ``EQUIVOX_NO_CACHE=1`` to bypass the cache (always rebuild, never write).
    """
    if os.environ.get("EQUIVOX_NO_CACHE"):
        return build()
    path = _entry_path(key)
    if path is None:  # cache folder unusable (already warned)
        return build()
    raw = None
    try:
        if path.is_file():
            raw = path.read_bytes()
    except OSError as err:  # e.g. no read permission: work without the cache
        warn_once("read", f"cannot read equivox cache entry {path} ({type(err).__name__}: {err}); rebuilding "
                          "without the cache")
    if raw is not None:
        try:
            entry = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
            if (
                entry.get("format") == _FORMAT
                and entry.get("key") == key
                and entry.get("digest") == _digest(entry["payload"])
            ):
                return entry["payload"]
            _log.warning("equivox cache entry %s is stale or corrupted; rebuilding", path)
        except Exception as err:  # unreadable / truncated file: rebuild, never trust
            _log.warning("equivox cache entry %s unreadable (%s); rebuilding", path, err)
    payload = build()
    payload = {k: v.detach().cpu().contiguous() for k, v in payload.items()}
    entry = {"format": _FORMAT, "key": key, "digest": _digest(payload), "payload": payload}
    try:
        atomic_write(path, lambda f: torch.save(entry, f))
    except Exception as err:  # read-only or full disk (torch.save raises RuntimeError): valid, just not cached
        warn_once("write", f"could not write equivox cache entry {path} ({type(err).__name__}: {err}); "
                           "continuing without caching it")
    return payload


def clear_cache() -> int:
    """Delete every equivox cache file (tensors and escnn's redirected joblib cache); return the count."""
    import shutil

    root = _configured_dir()
    if not root.is_dir():
        return 0
    count = sum(1 for p in root.rglob("*") if p.is_file())
    for child in root.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
    return count
