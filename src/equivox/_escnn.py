"""Quiet, cache-redirected access to escnn.

escnn writes its joblib caches into its own site-packages folder and prints joblib progress on stderr.
Importing escnn through this module moves those caches under the equivox cache folder
(:func:`equivox.cache.cache_dir`) and silences them. Everything in equivox imports escnn from here. When that
folder cannot be created, escnn's caches are disabled (one :class:`equivox.cache.CacheWarning`) and everything
still works, only slower on first use.
"""
from __future__ import annotations

import contextlib
import io
import warnings

from joblib import Memory
from joblib.memory import MemorizedFunc

from . import _escnn_cg
from .cache import usable_cache_dir

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import escnn
    from escnn import gspaces, group  # noqa: F401
    from escnn import nn as enn  # noqa: F401
    import escnn.group.irrep
    import escnn.group._clebsh_gordan
    import escnn.group.groups.octa
    import escnn.group.groups.ico
    import escnn.group.groups._numerical_thomson

ESCNN_VERSION = getattr(escnn, "__version__", "1.0.11")

_root = usable_cache_dir()
# location=None: joblib computes without caching (the equivox cache folder is unusable; already warned)
_memory = Memory(str(_root / f"escnn-{ESCNN_VERSION}") if _root is not None else None, verbose=0)

for _module in (
    escnn.group.irrep,
    escnn.group._clebsh_gordan,
    escnn.group.groups.octa,
    escnn.group.groups.ico,
    escnn.group.groups._numerical_thomson,
):
    for _name, _obj in list(vars(_module).items()):
        if isinstance(_obj, MemorizedFunc):
            setattr(_module, _name, _memory.cache(_obj.func, ignore=_obj.ignore or None))
    if isinstance(getattr(_module, "cache", None), Memory):
        _module.cache = _memory

# Same Clebsh-Gordan coefficients, ~10x faster for finite groups (see equivox._escnn_cg); escnn reads the module
# attribute at call time.
_escnn_cg.set_fallback(escnn.group._clebsh_gordan._clebsh_gordan_tensor.func)
escnn.group._clebsh_gordan._clebsh_gordan_tensor = _memory.cache(_escnn_cg.clebsh_gordan_tensor)


@contextlib.contextmanager
def quiet():
    """Silence escnn's prints and warnings (e.g. empty-basis notices) inside the block, and keep escnn's numerics
    deterministic there: when scikit-learn is installed (nnU-Net pulls it in) escnn computes null spaces with
    ``randomized_svd(random_state=None)``, whose signs change from call to call; inside the block escnn uses its
    dense ``scipy`` SVD, as without scikit-learn. Restored on exit (other code sees escnn unchanged)."""
    from escnn.group import _numerical

    saved = _numerical.randomized_svd
    _numerical.randomized_svd = None
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        _numerical.randomized_svd = saved
