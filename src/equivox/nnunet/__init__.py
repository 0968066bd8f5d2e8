"""nnU-Net v2 integration: equivariant networks inside nnU-Net's own planning, training and inference.

* :mod:`.network`: :class:`EquivariantNnUNet`, the class nnU-Net builds from ``arch_kwargs`` (no nnunetv2 import).
* :mod:`.rules`: plan -> group, ``features_per_stage`` -> fields, nnU-Net layers -> field-wise layers, size rules.
* :mod:`.plans`: :func:`add_equivox_configuration` (the ``equivox nnunet plans`` command): derive
  ``3d_fullres_equivox`` in an existing ``nnUNetPlans.json``.
* :mod:`.evaluation`: :func:`evaluate_nnunet_model`: score a trained nnU-Net model folder (equivox or plain) under
  cube and random rotations with :mod:`equivox.evaluation`.

``import equivox`` never imports nnunetv2; these names load their module on first use (``pip install
equivox[nnunet]`` for nnunetv2 itself). See docs/nnunet.md.
"""
from __future__ import annotations

import importlib

__all__ = ["EquivariantNnUNet", "NETWORK_CLASS", "add_equivox_configuration", "evaluate_nnunet_model",
           "network_equivariance_errors", "rules"]

#: the ``network_class_name`` written into nnU-Net plans
NETWORK_CLASS = "equivox.nnunet.network.EquivariantNnUNet"

_LAZY = {"EquivariantNnUNet": ".network", "add_equivox_configuration": ".plans",
         "evaluate_nnunet_model": ".evaluation", "network_equivariance_errors": ".evaluation", "rules": ".rules"}


def __getattr__(name):
    if name in _LAZY:
        mod = importlib.import_module(_LAZY[name], __name__)
        return mod if name == "rules" else getattr(mod, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
