"""The model registry: one name per network class, read by :func:`equivox.baselines.build_from_spec` (and so by
checkpoints, the CLI and training).

Every equivox network registers itself in :mod:`equivox.nets` (``EquivariantUNet``, ``EquivariantMonaiUNet``,
``InvariantClassifier``, ``EquivariantEncoder``, ``EquivariantFeatureExtractor``); :mod:`equivox.baselines` adds
``"monai.UNet"``. A network of your own becomes buildable from a spec (and so from a checkpoint) with one call::

    from equivox.nets.registry import register_model
    register_model("MyNet", MyNet)          # MyNet(**kwargs) -> nn.Module
    build_from_spec({"cls": "MyNet", "kwargs": {...}})
"""
from __future__ import annotations

from typing import Callable, Dict, List

from torch import nn

__all__ = ["MODELS", "register_model", "get_model", "available_models"]

#: name -> builder (a class or any callable ``**kwargs -> nn.Module``)
MODELS: Dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str, builder: Callable[..., nn.Module], replace: bool = False) -> Callable[..., nn.Module]:
    """Register ``builder`` (``**kwargs -> nn.Module``) under ``name``; returns ``builder``.

    Raises:
        ValueError: ``name`` is taken by another builder and ``replace`` is False.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"model name must be a non-empty string, got {name!r}")
    if not callable(builder):
        raise TypeError(f"builder for model {name!r} must be callable, got {type(builder).__name__}")
    if MODELS.get(name, builder) is not builder and not replace:
        raise ValueError(f"model {name!r} is already registered (pass replace=True to replace it)")
    MODELS[name] = builder
    return builder


def get_model(name: str) -> Callable[..., nn.Module]:
    """The builder registered under ``name``.

    Raises:
        ValueError: unknown name; the message lists the registered models.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model class {name!r} in spec (known: {', '.join(sorted(MODELS))})")
    return MODELS[name]


def available_models() -> List[str]:
    """Registered model names, sorted."""
    return sorted(MODELS)
