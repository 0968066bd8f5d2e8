"""Disk cache for expensive, deterministic escnn objects (kernel bases, sampling grids, group data).

Entries live under :func:`cache_dir` (``$EQUIVOX_CACHE_DIR``, else ``$XDG_CACHE_HOME/equivox``, else
``~/.cache/equivox``), never inside site-packages. Each entry is one file named by the SHA-256 of its key; the
file stores the full key and a checksum of its payload, so a stale (other key or escnn version) or corrupted
entry is detected, discarded and rebuilt, never trusted. Writes are atomic (temporary file + rename, see
:func:`atomic_write`), so concurrent processes (DDP ranks, pytest-xdist workers) can share one cache.

The cache is optional: when its folder cannot be created, read or written (read-only or full disk, a path
under a regular file, ...) equivox warns once (:class:`CacheWarning`) and continues without it.

**Shipped entries.** Before the disk cache, :func:`cached_tensors` looks in the package's own ``_bases`` folder:
pre-solved kernel bases (and the other entries the default models need) written by
``scripts/build_shipped_bases.py``, so a fresh machine builds the default models without solving anything. They
are content-addressed like disk entries (``manifest.json`` holds the SHA-256 of every data file and a digest of
every entry, the full key, the escnn version they were made with) and checked on use: a corrupted file, an entry
whose digest or key does not match, or a manifest made for another escnn version is rejected with one
:class:`CacheWarning` and the entry is solved (and disk-cached) as if nothing had been shipped.
``EQUIVOX_NO_SHIPPED=1`` ignores them.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import lzma
import os
import tempfile
import warnings
from pathlib import Path
from typing import BinaryIO, Callable, Dict, Optional, Union

import torch

__all__ = ["CacheWarning", "atomic_write", "cache_dir", "usable_cache_dir", "cached_tensors", "clear_cache",
           "warn_once", "shipped_dir", "shipped_tensors", "pack_payload", "unpack_payload"]

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

    Looks first in the verified shipped entries (:func:`shipped_tensors`), then in the disk cache, then builds
    and stores. ``key`` must name everything the result depends on (library versions, group, representations,
    kernel size, ...). Set ``EQUIVOX_NO_CACHE=1`` to bypass both (always rebuild, never write).
    """
    if os.environ.get("EQUIVOX_NO_CACHE"):
        return build()
    shipped = shipped_tensors(key)
    if shipped is not None:
        return shipped
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


# ---------------------------------------------------------------------------------------------- shipped entries
_SHIPPED_FORMAT = 1
_shipped_state: Dict[str, object] = {}


def shipped_dir() -> Path:
    """The package-data folder of the shipped entries (``equivox/_bases``: ``manifest.json`` + ``*.pt.xz``)."""
    return Path(__file__).resolve().parent / "_bases"


def _escnn_version() -> Optional[str]:
    try:
        from importlib.metadata import version

        return version("escnn")
    except Exception:  # not installed as a distribution: compare nothing
        return None


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _orbit_pack(t: torch.Tensor, rtol: float) -> Optional[dict]:
    """``t (n, ...)`` as ``values (n, n_groups)`` + ``index (N,)``: columns of ``t.reshape(n, -1)`` that are equal
    (to ``rtol`` of the largest ``|t|``) share one column of ``values`` (their mean). None if that saves < half."""
    flat = t.reshape(t.shape[0], -1).double()
    probes = torch.randn(2, flat.shape[0], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    proj = probes @ flat
    scale = float(flat.abs().max())
    if scale == 0:
        return None
    _, index = torch.unique(torch.round(proj / (scale * 1e-5)).long(), dim=1, return_inverse=True)
    n_u = int(index.max()) + 1
    if n_u > flat.shape[1] // 2:
        return None
    values = torch.zeros(flat.shape[0], n_u, dtype=torch.float64).index_add_(1, index, flat)
    values = values / torch.bincount(index, minlength=n_u).double()
    if (values[:, index] - flat).abs().max() > rtol * scale:
        return None
    return {"values": values.to(t.dtype).contiguous(), "index": index.to(torch.int32), "shape": list(t.shape)}


def _irreps_pack(t: torch.Tensor, cob: tuple, rtol: float) -> Optional[dict]:
    """A kernel basis ``t (n_b, o, i, S)`` between fields with changes of basis ``cob = (Q_out, Q_out_inv, Q_in,
    Q_in_inv)`` (``rho = Q (+)irreps Q_inv``) in block form: in irrep coordinates ``C_b = Q_out_inv t_b Q_in`` each
    basis element is non-zero on a few (rows, cols) only (one pair of irreps). Stored: ``Q_out``, ``Q_in_inv`` and,
    per distinct (rows, cols) pattern, the element ids and their blocks ``(n_g, len(rows), len(cols), S)``.
    None when the reconstruction is off by more than ``rtol`` of the largest ``|t|`` or it saves less than half."""
    q_out, q_out_inv, q_in, q_in_inv = (torch.as_tensor(q, dtype=torch.float64) for q in cob)
    n_b, o, i, n_s = t.shape
    c = torch.einsum("po,bois,iq->bpqs", q_out_inv, t.double(), q_in)
    scale = float(t.abs().max())
    if scale == 0:
        return None
    mass = c.abs().amax(dim=3) > 1e-7 * scale  # (n_b, o, i)
    groups: Dict[tuple, list] = {}
    for b in range(n_b):
        rows = tuple(torch.nonzero(mass[b].any(dim=1)).flatten().tolist())
        cols = tuple(torch.nonzero(mass[b].any(dim=0)).flatten().tolist())
        groups.setdefault((rows, cols), []).append(b)
    packed = {"q_out": q_out.contiguous(), "q_in_inv": q_in_inv.contiguous(), "shape": list(t.shape),
              "dtype": str(t.dtype).replace("torch.", ""), "rows": [], "cols": [], "elements": [], "ref": [],
              "blocks": []}
    for (rows, cols), elems in groups.items():
        r, cl, e = torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long), torch.tensor(elems)
        block = c[e][:, r][:, :, cl]
        # copies of the same pair of irreps carry the same blocks: store each distinct block set once
        ref = next((j for j, u in enumerate(packed["blocks"]) if u.shape == block.shape
                    and (u.double() - block).abs().max() <= 0.1 * rtol * scale), None)
        if ref is None:
            ref = len(packed["blocks"])
            packed["blocks"].append(block.float().contiguous())
        packed["rows"].append(r.to(torch.int32))
        packed["cols"].append(cl.to(torch.int32))
        packed["elements"].append(e.to(torch.int32))
        packed["ref"].append(ref)
    packed["ref"] = torch.tensor(packed["ref"], dtype=torch.int32)
    stored = sum(b.numel() for b in packed["blocks"]) + 2 * o * o + 2 * i * i
    packed = _flatten_lists(packed)
    if stored > t.numel() // 2 or (_irreps_unpack(packed) - t).abs().max() > rtol * scale:
        return None
    return packed


def _flatten_lists(packed: dict) -> dict:
    """Lists of tensors -> one concatenated tensor + ``<name>_ptr`` offsets each (a few large tensors load much
    faster than thousands of small ones)."""
    out = {}
    for k, v in packed.items():
        if k in ("rows", "cols", "elements", "blocks") and isinstance(v, list):
            flat = [t.reshape(-1) for t in v]
            out[k] = torch.cat(flat) if flat else torch.zeros(0)
            out[f"{k}_ptr"] = torch.tensor([0] + [t.numel() for t in flat], dtype=torch.int64).cumsum(0)
        else:
            out[k] = v
    return out


def _irreps_unpack(p: dict) -> torch.Tensor:
    n_b, o, i, n_s = p["shape"]
    dtype = getattr(torch, p["dtype"])
    out = torch.zeros(n_b, o, i, n_s, dtype=dtype)
    q_out, q_in_inv = p["q_out"].to(dtype), p["q_in_inv"].to(dtype)
    rp, cp, ep, bp = (p[f"{k}_ptr"].tolist() for k in ("rows", "cols", "elements", "blocks"))
    rows_all, cols_all, elems_all = p["rows"].long(), p["cols"].long(), p["elements"].long()
    blocks_all = p["blocks"].to(dtype)
    for g, ref in enumerate(p["ref"].tolist()):
        rows, cols, elems = rows_all[rp[g]:rp[g + 1]], cols_all[cp[g]:cp[g + 1]], elems_all[ep[g]:ep[g + 1]]
        block = blocks_all[bp[ref]:bp[ref + 1]].reshape(len(elems), len(rows), len(cols), n_s)
        # (n_g, S, r, c) -> Q_out[:, rows] @ . @ Q_in_inv[cols] -> (n_g, S, o, i) -> (n_g, o, i, S)
        y = torch.matmul(torch.matmul(q_out[:, rows], block.permute(0, 3, 1, 2)), q_in_inv[cols])
        out[elems] = y.permute(0, 2, 3, 1)
    return out


def _nbytes(p: dict) -> int:
    total = 0
    for v in p.values():
        for t in (v if isinstance(v, list) else [v]):
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total


def pack_payload(payload: Dict[str, torch.Tensor], rtol: float = 1e-6,
                 change_of_basis: Optional[Dict[str, tuple]] = None) -> Dict[str, dict]:
    """Compact form of a dictionary of tensors for shipping (see :func:`unpack_payload`); the smallest of:

    * ``{"raw": t}``;
    * orbit form (permutation fields, e.g. regular fields of ``octa``): columns of ``t.reshape(n, -1)`` equal up to
      ``rtol`` of the largest ``|t|`` are stored once (``values (n, n_groups)`` + ``index (N,)``);
    * irreps block form, for a kernel basis ``(n_b, o, i, S)`` named in ``change_of_basis`` (``name -> (Q_out,
      Q_out_inv, Q_in, Q_in_inv)`` of the two fields): each element is a small block in irrep coordinates.

    A compact form is used only when it reproduces ``t`` to ``rtol`` of its largest value.
    """
    out = {}
    for name, t in payload.items():
        t = t.detach().cpu().contiguous()
        best = {"raw": t}
        if t.dim() >= 2 and t.shape[0] > 0 and t.numel() >= 1024 and t.is_floating_point():
            for cand in (_orbit_pack(t, rtol),
                         _irreps_pack(t, change_of_basis[name], rtol)
                         if change_of_basis and name in change_of_basis and t.dim() == 4 else None):
                if cand is not None and _nbytes(cand) < _nbytes(best):
                    best = cand
        out[name] = best
    return out


def unpack_payload(packed: Dict[str, dict]) -> Dict[str, torch.Tensor]:
    """Inverse of :func:`pack_payload`: the dictionary of (contiguous, CPU) tensors."""
    out = {}
    for name, p in packed.items():
        if "raw" in p:
            out[name] = p["raw"]
        elif "index" in p:
            out[name] = p["values"][:, p["index"].long()].reshape(p["shape"]).contiguous()
        else:
            out[name] = _irreps_unpack(p)
    return out


def _packed_digest(packed: Dict[str, dict]) -> str:
    flat = {}
    for name, p in packed.items():
        for field, v in p.items():
            if isinstance(v, str):
                v = torch.tensor(list(v.encode()), dtype=torch.uint8)
            for j, t in enumerate(v if isinstance(v, list) else [v]):
                flat[f"{name}/{field}/{j}"] = t if isinstance(t, torch.Tensor) else torch.tensor(t)
    return _digest(flat)


def _shipped_manifest() -> Optional[dict]:
    """The shipped manifest, or None (no shipped data, made for another escnn, unreadable: warned once)."""
    if "manifest" in _shipped_state:
        return _shipped_state["manifest"]  # type: ignore[return-value]
    manifest = None
    path = shipped_dir() / "manifest.json"
    if path.is_file():
        try:
            manifest = json.loads(path.read_text())
            if manifest.get("format") != _SHIPPED_FORMAT:
                raise ValueError(f"format {manifest.get('format')!r}, expected {_SHIPPED_FORMAT}")
            installed = _escnn_version()
            if installed is not None and manifest.get("escnn") != installed:
                warn_once("shipped-stale", f"equivox's shipped kernel bases were made with escnn "
                          f"{manifest.get('escnn')}, installed is {installed}: they are not used (bases are solved "
                          "and disk-cached instead; scripts/build_shipped_bases.py rebuilds them)")
                manifest = None
        except Exception as err:
            warn_once("shipped-manifest", f"equivox's shipped manifest {path} is unusable "
                      f"({type(err).__name__}: {err}); solving kernel bases instead")
            manifest = None
    _shipped_state["manifest"] = manifest
    return manifest


def _shipped_file(name: str, expected_sha: str) -> Optional[dict]:
    """Entries of one shipped data file (decompressed and checksummed once per process), or None (warned)."""
    files = _shipped_state.setdefault("files", {})
    if name in files:
        return files[name]
    entries = None
    path = shipped_dir() / name
    try:
        raw = path.read_bytes()
        if _sha256_bytes(raw) != expected_sha:
            raise ValueError("SHA-256 does not match the manifest (corrupted or replaced)")
        data = torch.load(io.BytesIO(lzma.decompress(raw)), map_location="cpu", weights_only=True)
        entries = data["entries"]
    except Exception as err:
        warn_once(f"shipped-file-{name}", f"equivox's shipped data file {path} is rejected "
                  f"({type(err).__name__}: {err}); solving its kernel bases instead")
    files[name] = entries
    return entries


def shipped_tensors(key: str) -> Optional[Dict[str, torch.Tensor]]:
    """The shipped, verified entry for ``key`` (a :func:`cached_tensors` key), or None.

    None when nothing is shipped for ``key``, when ``EQUIVOX_NO_SHIPPED`` is set, or when the entry fails a check
    (file SHA-256, entry digest, full key, escnn version of the manifest): failures give one
    :class:`CacheWarning` and the caller solves the entry instead.
    """
    if os.environ.get("EQUIVOX_NO_SHIPPED"):
        return None
    manifest = _shipped_manifest()
    if not manifest:
        return None
    name = hashlib.sha256(key.encode()).hexdigest()[:40]
    meta = manifest.get("entries", {}).get(name)
    if meta is None:
        return None
    result = None
    file_meta = manifest.get("files", {}).get(meta.get("file"))
    entries = _shipped_file(meta["file"], file_meta["sha256"]) if file_meta else None
    if entries is not None:
        entry = entries.get(name)
        try:
            if entry is None or entry.get("key") != key or meta.get("key") != key:
                raise ValueError("entry missing or made for another key")
            if _packed_digest(entry["packed"]) != meta.get("digest"):
                raise ValueError("digest does not match the manifest")
            result = unpack_payload(entry["packed"])
        except Exception as err:
            warn_once(f"shipped-entry-{name}", f"equivox's shipped entry {key!r} is rejected "
                      f"({type(err).__name__}: {err}); solving it instead")
            result = None
    return result  # unpacked afresh per call: callers own their tensors (no aliasing between callers)


def reset_shipped() -> None:
    """Forget the shipped manifest and files read in this process (tests; after rebuilding the shipped data)."""
    _shipped_state.clear()
