"""e3nn inside equivox: irreps fields (groups ``so3_irreps``, ``o3_irreps``) and a bridge for e3nn users.

* :class:`IrrepsFields` (:mod:`.fields`; defined with the other field kinds in :mod:`equivox.groups.fields`): the
  field kind: spherical-harmonic kernels (:mod:`.kernel`), e3nn batch norm and gate (:mod:`.layers`), norm / sampled
  pooling.
* :mod:`.bridge`: ``FieldSpec`` <-> ``e3nn.o3.Irreps``, tensors between equivox's ``(B, C, D, H, W)`` and e3nn's
  channels-last layout, the Wigner-D matrix of a grid element on a field type.

Only :mod:`.fields` is imported eagerly; the rest on first use (lazy attributes, PEP 562).
"""
from __future__ import annotations

import importlib

from .fields import IrrepsFields, irreps_group_specs

__all__ = ["IrrepsFields", "irreps_group_specs", "bridge", "kernel", "layers", "FRAME", "spec_to_irreps",
           "irreps_to_spec", "to_e3nn", "from_e3nn", "wigner_d", "IrrepsGate", "IrrepsNorm"]

#: lazy attribute -> the submodule that holds it (a submodule's own name: the module itself)
_LAZY = {"bridge": ".bridge", "kernel": ".kernel", "layers": ".layers",
         "FRAME": ".bridge", "spec_to_irreps": ".bridge", "irreps_to_spec": ".bridge", "to_e3nn": ".bridge",
         "from_e3nn": ".bridge", "wigner_d": ".bridge", "IrrepsGate": ".layers", "IrrepsNorm": ".layers"}


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name], __name__)
        return module if _LAZY[name] == "." + name else getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
