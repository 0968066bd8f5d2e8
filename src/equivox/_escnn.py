"""escnn for equivox: an explicit, idempotent set-up that is active only inside equivox's escnn calls.

Importing this module imports escnn and changes nothing in it: other code in the process sees escnn as installed.
equivox runs every escnn computation inside :func:`quiet`; entering the outermost ``quiet()`` block applies
equivox's set-up and leaving it undoes it:

* escnn's joblib caches (irreps, restrictions, Clebsch-Gordan coefficients, Thomson grids), which escnn keeps in
  its own site-packages folder, are read from and written to the equivox cache folder
  (:func:`equivox.cache.cache_dir`), with joblib's progress output off. When that folder cannot be created,
  escnn's caches are disabled (one :class:`equivox.cache.CacheWarning`): everything works, slower on first use;
* Clebsch-Gordan coefficients come from :mod:`equivox._escnn_cg` (the same numbers, ~10x faster for finite
  groups);
* escnn's regular representations and finite-group irreps come from shipped, checked tables when they match
  (:mod:`equivox._escnn_tables`): a fresh machine builds ``octa`` / ``full_octa`` / ``ico`` without recomputing;
* escnn's prints and warnings are silenced, and its null spaces use the dense ``scipy`` SVD (deterministic)
  instead of scikit-learn's ``randomized_svd``.

An attribute another piece of code has already replaced (no longer escnn's own) is left as it is. :func:`setup`
(called by the first ``quiet()``) builds the replacements once; calling it again does nothing.
"""
from __future__ import annotations

import contextlib
import io
import threading
import warnings
from typing import List, Optional, Tuple

from joblib import Memory
from joblib.memory import MemorizedFunc

from . import _escnn_cg, _escnn_tables
from .cache import usable_cache_dir

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import escnn
    from escnn import gspaces, group  # noqa: F401
    from escnn import nn as enn  # noqa: F401
    import escnn.group._clebsh_gordan
    import escnn.group._numerical
    import escnn.group.groups._numerical_thomson
    import escnn.group.groups.ico
    import escnn.group.groups.octa
    import escnn.group.irrep
    import escnn.group.representation

__all__ = ["ESCNN_VERSION", "enn", "gspaces", "quiet", "setup", "escnn"]

ESCNN_VERSION = getattr(escnn, "__version__", "1.0.11")

_root = usable_cache_dir()
# location=None: joblib computes without caching (the equivox cache folder is unusable; already warned)
_memory = Memory(str(_root / f"escnn-{ESCNN_VERSION}") if _root is not None else None, verbose=0)

_MEMO_MODULES = (
    escnn.group.irrep,
    escnn.group._clebsh_gordan,
    escnn.group.groups.octa,
    escnn.group.groups.ico,
    escnn.group.groups._numerical_thomson,
)
_CG = escnn.group._clebsh_gordan
#: escnn's own value of every attribute equivox replaces inside quiet(), captured at import
_ESCNN_OWN = {(m, name): obj for m in _MEMO_MODULES for name, obj in vars(m).items()
              if isinstance(obj, MemorizedFunc) or (name == "cache" and isinstance(obj, Memory))}
_ESCNN_OWN[(_CG, "_clebsh_gordan_tensor")] = _CG._clebsh_gordan_tensor
_ESCNN_OWN[(escnn.group._numerical, "randomized_svd")] = getattr(escnn.group._numerical, "randomized_svd", None)
_REP = escnn.group.representation
_ESCNN_OWN[(_REP, "build_regular_representation")] = _REP.build_regular_representation

# equivox's solver falls back on escnn's own for what it does not cover (equivox state; escnn is not touched)
_escnn_cg.set_fallback(_ESCNN_OWN[(_CG, "_clebsh_gordan_tensor")].func)

_lock = threading.RLock()
_depth = 0
_replacements: Optional[List[Tuple[object, str, object]]] = None
_saved: List[Tuple[object, str, object]] = []


def setup() -> None:
    """Build equivox's replacements for escnn's cached functions (once; later calls return at once). Nothing in
    escnn changes until a :func:`quiet` block is entered."""
    global _replacements
    with _lock:
        if _replacements is not None:
            return
        out: List[Tuple[object, str, object]] = []
        for (module, name), obj in _ESCNN_OWN.items():
            if isinstance(obj, MemorizedFunc):
                out.append((module, name, _memory.cache(obj.func, ignore=obj.ignore or None)))
            elif isinstance(obj, Memory):
                out.append((module, name, _memory))
        out = [r for r in out if r[:2] != (_CG, "_clebsh_gordan_tensor")]
        out.append((_CG, "_clebsh_gordan_tensor", _memory.cache(_escnn_cg.clebsh_gordan_tensor)))
        out.append((escnn.group._numerical, "randomized_svd", None))
        _escnn_tables.seed_joblib(_memory.location, ESCNN_VERSION)  # copies missing files; never overwrites
        _replacements = out


def _apply() -> None:
    _saved.clear()
    for (module, name), own in _ESCNN_OWN.items():
        _saved.append((module, name, getattr(module, name, None)))
    for module, name, new in _replacements:
        if getattr(module, name, None) is _ESCNN_OWN[(module, name)]:  # leave other code's patches alone
            setattr(module, name, new)
    if getattr(_REP, "build_regular_representation") is _ESCNN_OWN[(_REP, "build_regular_representation")]:
        _escnn_tables.install(escnn, ESCNN_VERSION)


def _restore() -> None:
    for module, name, value in reversed(_saved):
        setattr(module, name, value)
    _saved.clear()


@contextlib.contextmanager
def quiet():
    """Run escnn the equivox way inside the block (see the module docstring): cache folder, fast Clebsch-Gordan
    solver, no prints or warnings, deterministic numerics (escnn's dense ``scipy`` SVD instead of scikit-learn's
    ``randomized_svd(random_state=None)``, whose signs change from call to call). Re-entrant; on leaving the
    outermost block escnn is restored (other code sees escnn unchanged)."""
    global _depth
    setup()
    with _lock:
        if _depth == 0:
            _apply()
        _depth += 1
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _restore()
