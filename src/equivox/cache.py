"""Disk cache for expensive, deterministic escnn objects (kernel bases, sampling grids, group data).

Entries live under :func:`cache_dir` (``$EQUIVOX_CACHE_DIR``, else ``$XDG_CACHE_HOME/equivox``, else
``~/.cache/equivox``), never inside site-packages. Each entry is one file named by the SHA-256 of its key; the
file stores the full key and a checksum of its payload, so a stale (other key or escnn version) or corrupted
entry is detected, discarded and rebuilt, never trusted. Writes are atomic (temporary file + rename), so
concurrent processes (DDP ranks, pytest-xdist workers) can share one cache.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
from pathlib import Path
from typing import Callable, Dict

import torch

__all__ = ["cache_dir", "cached_tensors", "clear_cache"]

_log = logging.getLogger(__name__)
_FORMAT = 1


def cache_dir() -> Path:
    """Return the equivox cache folder (created on first use)."""
    root = os.environ.get("EQUIVOX_CACHE_DIR")
    if root:
        path = Path(root)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = Path(base) / "equivox"
    path.mkdir(parents=True, exist_ok=True)
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


def _entry_path(key: str) -> Path:
    name = hashlib.sha256(key.encode()).hexdigest()[:40]
    return cache_dir() / "tensors" / f"{name}.pt"


def cached_tensors(key: str, build: Callable[[], Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """Return ``build()``'s dictionary of tensors, from disk when a valid entry for ``key`` exists.

    ``key`` must name everything the result depends on (library versions, group, representations, kernel
    size, ...). Set ``EQUIVOX_NO_CACHE=1`` to bypass the cache (always rebuild, never write).
    """
    if os.environ.get("EQUIVOX_NO_CACHE"):
        return build()
    path = _entry_path(key)
    if path.exists():
        try:
            with open(path, "rb") as f:
                entry = torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=True)
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
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": _FORMAT, "key": key, "digest": _digest(payload), "payload": payload}, f)
        os.replace(tmp, path)
    except OSError as err:  # read-only or full disk: the result is still valid, just not cached
        _log.warning("could not write equivox cache entry %s: %s", path, err)
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return payload


def clear_cache() -> int:
    """Delete every equivox cache file (tensors and escnn's redirected joblib cache); return the count."""
    import shutil

    root = cache_dir()
    count = sum(1 for p in root.rglob("*") if p.is_file())
    for child in root.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
    return count
