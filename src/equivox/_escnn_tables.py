"""Tabulated escnn group data, so that building a group on a fresh machine does not recompute it.

Building escnn's finite groups spends its time in two places, both pure functions of the escnn version:

* the irreps of ``octa`` / ``ico`` and their restrictions (escnn's joblib-memorized ``_build_octa_irrep_picklable``,
  ``_build_ico_irrep_picklable``, ``_restrict_irrep``): on a fresh machine their joblib cache is empty. equivox
  ships those joblib entries (``_bases/escnn_joblib.tar.xz``, listed with their SHA-256 in ``_bases/manifest.json``)
  and :func:`seed_joblib` copies the missing ones into the (redirected) escnn cache folder, each checked;
* the regular representation (escnn's ``build_regular_representation`` multiplies all pairs of elements in Python,
  seconds for ``full_octa`` / ``ico``, not memorized): :func:`install` wraps it so its change of basis goes
  through :func:`equivox.cache.cached_tensors` (shipped entry, else disk cache, else escnn), and every cached
  result is spot-checked against the permutation matrix of one group element before use.

Anything that fails a check is ignored with one :class:`equivox.cache.CacheWarning` and escnn computes it.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import lzma
import os
import tarfile
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from . import cache as _cache
from .cache import cached_tensors, warn_once

__all__ = ["install", "seed_joblib", "JOBLIB_FUNCTIONS"]

_log = logging.getLogger(__name__)

#: escnn's joblib-memorized functions whose results are shipped (paths under the joblib cache folder)
JOBLIB_FUNCTIONS = (
    "escnn/group/groups/octa/_build_octa_irrep_picklable",
    "escnn/group/groups/ico/_build_ico_irrep_picklable",
    "escnn/group/irrep/_restrict_irrep",
)


@contextlib.contextmanager
def _show_cache_warnings():
    """Let :class:`~equivox.cache.CacheWarning` through inside escnn calls (``equivox._escnn.quiet`` ignores every
    warning there): a rejected table must be reported, not swallowed."""
    with warnings.catch_warnings():
        warnings.simplefilter("default", _cache.CacheWarning)
        yield


def seed_joblib(location: Optional[str], escnn_version: str) -> int:
    """Copy the shipped escnn joblib entries missing under ``location`` (escnn's joblib ``Memory`` location;
    ``None``: no cache, nothing done; nothing either with ``EQUIVOX_NO_SHIPPED=1``). Files already there are never
    overwritten. Returns the number copied.

    Skipped (with one ``CacheWarning``) when the archive's SHA-256 or a member's does not match the manifest or
    the manifest was made with another escnn / joblib version.
    """
    if location is None or os.environ.get("EQUIVOX_NO_SHIPPED"):
        return 0
    import json

    import joblib

    try:
        manifest = json.loads((_cache.shipped_dir() / "manifest.json").read_text())
    except (OSError, ValueError):
        return 0
    meta = manifest.get("joblib")
    if not meta:
        return 0
    if meta.get("escnn") != escnn_version or meta.get("joblib") != joblib.__version__:
        _log.info("shipped escnn joblib entries made for escnn %s / joblib %s, installed %s / %s: not used",
                  meta.get("escnn"), meta.get("joblib"), escnn_version, joblib.__version__)
        return 0
    root = Path(location) / "joblib"
    members = meta.get("members", {})
    missing = [m for m in members if not (root / m).is_file()]
    if not missing:
        return 0
    archive = _cache.shipped_dir() / meta["file"]
    try:
        raw = archive.read_bytes()
        if hashlib.sha256(raw).hexdigest() != meta["sha256"]:
            raise ValueError("archive SHA-256 does not match the manifest")
        copied = 0
        with tarfile.open(fileobj=io.BytesIO(lzma.decompress(raw)), mode="r:") as tar:
            for name in missing:
                f = tar.extractfile(name)
                data = f.read() if f is not None else None
                if data is None or hashlib.sha256(data).hexdigest() != members[name]:
                    raise ValueError(f"member {name} does not match the manifest")
                dest = root / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_name(f".{dest.name}.seed.tmp")
                tmp.write_bytes(data)
                tmp.replace(dest)
                copied += 1
        return copied
    except Exception as err:
        with _show_cache_warnings():
            warn_once("shipped-joblib", f"equivox's shipped escnn group tables {archive} are rejected "
                      f"({type(err).__name__}: {err}); escnn computes them instead")
        return 0


def _group_key(group, escnn_version: str) -> str:
    keys = sorted((str(k), repr(v)) for k, v in getattr(group, "_keys", {}).items())
    return (f"regular_repr|escnn={escnn_version}|class={type(group).__name__}|name={group.name}|keys={keys}"
            f"|order={group.order()}")


def _regular_ok(group, irreps, cob: np.ndarray, cob_inv: np.ndarray) -> bool:
    """Does ``cob @ (+) irreps(e) @ cob_inv`` equal the regular action of one non-identity element ``e``?"""
    from scipy.linalg import block_diag

    elements = list(group.elements)
    n = len(elements)
    if cob.shape != (n, n) or cob_inv.shape != (n, n) or sum(r.size for r in irreps) != n:
        return False
    if n == 1:
        return True
    index = {g: i for i, g in enumerate(elements)}
    e = elements[1]
    perm = np.zeros((n, n))
    for i, g in enumerate(elements):
        perm[index[e @ g], i] = 1.0
    rho = cob @ block_diag(*[r(e) for r in irreps]) @ cob_inv
    return bool(np.allclose(rho, perm, atol=1e-6))


def install(escnn_module, escnn_version: str) -> None:
    """Route escnn's ``build_regular_representation`` through the equivox cache (shipped entries first).

    The cached result is ``{"cob", "cob_inv", "irreps"}`` (change of basis and its inverse, float64; positions of
    the constituent irreps in ``group.irreps()``); it is used only if it reproduces one element's regular action
    (:func:`_regular_ok`), else escnn's own function computes it (one ``CacheWarning``).
    """
    rep_module = escnn_module.group.representation
    original = getattr(rep_module, "_equivox_original_regular", rep_module.build_regular_representation)

    def build_regular_representation(group):
        try:
            all_irreps = list(group.irreps())
            key = _group_key(group, escnn_version)
        except Exception:  # a group this wrapper does not understand: escnn's own computation
            return original(group)

        def build():
            irreps, cob, cob_inv = original(group)
            pos = [next(i for i, r in enumerate(all_irreps) if r.id == ir.id) for ir in irreps]
            return {"cob": torch.from_numpy(np.asarray(cob, dtype=np.float64)),
                    "cob_inv": torch.from_numpy(np.asarray(cob_inv, dtype=np.float64)),
                    "irreps": torch.tensor(pos, dtype=torch.int64)}

        with _show_cache_warnings():
            try:
                data = cached_tensors(key, build)
                irreps = [all_irreps[int(i)] for i in data["irreps"]]
                cob, cob_inv = data["cob"].numpy().copy(), data["cob_inv"].numpy().copy()
                if _regular_ok(group, irreps, cob, cob_inv):
                    return irreps, cob, cob_inv
                warn_once("regular-check", f"cached regular representation of {group.name} fails its check; "
                          "recomputing it with escnn")
            except Exception as err:
                warn_once("regular-cache", f"cached regular representation of {group.name} unusable "
                          f"({type(err).__name__}: {err}); recomputing it with escnn")
        return original(group)

    build_regular_representation._equivox_wrapped = True  # type: ignore[attr-defined]
    rep_module._equivox_original_regular = original
    rep_module.build_regular_representation = build_regular_representation
