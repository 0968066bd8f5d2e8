"""The model registry and the spec primitives: one name per network class, and the ``{"cls", "kwargs"}`` specs that
rebuild a network from that name (checkpoints, the CLI, training, the benchmark).

Every equivox network registers itself in :mod:`equivox.nets` (``EquivariantUNet``, ``EquivariantMonaiUNet``,
``InvariantClassifier``, ``EquivariantEncoder``, ``EquivariantFeatureExtractor``) and MONAI's ``UNet`` as
``"monai.UNet"``; :mod:`equivox.models` adds ``"Canonicalized"`` (a wrapper, which lives above the networks). A
network of your own becomes buildable from a spec (and so from a checkpoint) with one call::

    from equivox.nets.registry import register_model
    register_model("MyNet", MyNet)          # MyNet(**kwargs) -> nn.Module
    build_from_spec({"cls": "MyNet", "kwargs": {...}})

The spec lifecycle's primitives (:func:`build_from_spec`, :func:`upgrade_spec`, :func:`spec_of`) live here, next to
the registry they read, because parameter matching (:mod:`equivox.baselines`) rebuilds networks from specs and sits
below :mod:`equivox.models`; their public home is :mod:`equivox.models.specs`, which re-exports them.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from torch import nn

__all__ = ["MODELS", "register_model", "get_model", "available_models", "SPEC_VERSION", "upgrade_spec",
           "build_from_spec", "spec_of"]

#: name -> builder (a class or any callable ``**kwargs -> nn.Module``)
MODELS: Dict[str, Callable[..., nn.Module]] = {}

#: version stamped into every spec :func:`build_from_spec` records; saved specs without one are version 1
SPEC_VERSION = 2
#: constructor defaults that changed, by the last spec version that had them (filled in by :func:`upgrade_spec`)
_OLD_DEFAULTS = {1: {"EquivariantUNet": {"head": "linear"}}}
#: spec arguments stored as JSON lists but passed to the constructors as tuples
_TUPLE_ARGS = ("channels", "strides", "hidden_features")


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
        # "Canonicalized" is registered by equivox.models (it wraps networks, so it cannot live below them)
        hint = "; import equivox.models for 'Canonicalized'" if "Canonicalized" not in MODELS else ""
        raise ValueError(f"unknown model class {name!r} in spec (known: {', '.join(sorted(MODELS))}{hint})")
    return MODELS[name]


def available_models() -> List[str]:
    """Registered model names, sorted."""
    return sorted(MODELS)


def upgrade_spec(spec: Dict) -> Dict:
    """A *saved* spec (checkpoint, JSON) brought to :data:`SPEC_VERSION`: constructor defaults that changed since
    it was written are filled in with their old values, so it rebuilds the architecture it was saved with (e.g. a
    version-1 ``EquivariantUNet`` spec without ``head`` gets ``head="linear"``, the default of that time)."""
    version = int(spec.get("version", 1))
    kwargs = dict(spec["kwargs"])
    for v in range(version, SPEC_VERSION):
        for key, value in _OLD_DEFAULTS.get(v, {}).get(spec["cls"], {}).items():
            kwargs.setdefault(key, value)
    return {"cls": spec["cls"], "kwargs": kwargs, "version": SPEC_VERSION}


def build_from_spec(spec: Dict) -> nn.Module:
    """Build a model from ``{"cls": <registered name>, "kwargs": {...}}`` (names: :data:`MODELS`: every equivox
    network, ``"monai.UNet"``, ``"Canonicalized"`` once :mod:`equivox.models` is imported,
    and whatever user code registered); the model remembers its spec as ``model.equivox_spec`` (used by
    checkpoints, stamped with :data:`SPEC_VERSION`). List-valued ``channels``/``strides``/``hidden_features``
    (JSON) are passed as tuples. Missing arguments take today's defaults: rebuild a *saved* spec through
    :func:`upgrade_spec` (as :func:`equivox.models.load_model` does).

    Raises:
        ValueError: unknown ``cls``; the message lists the registered names.
    """
    cls, kwargs = spec["cls"], dict(spec["kwargs"])
    for k in _TUPLE_ARGS:
        if k in kwargs:
            kwargs[k] = tuple(kwargs[k])
    model = get_model(cls)(**kwargs)
    model.equivox_spec = {"cls": cls, "kwargs": {k: list(v) if isinstance(v, tuple) else v
                                                 for k, v in kwargs.items()}, "version": SPEC_VERSION}
    return model


def _plain(value):
    """Tuples to lists, recursively (specs are stored as YAML/JSON-able values)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def spec_of(model: nn.Module) -> Optional[Dict[str, Any]]:
    """The ``{"cls", "kwargs", "version"}`` spec that rebuilds ``model`` with :func:`build_from_spec`, or ``None``.

    ``model.equivox_spec`` when it was built from a spec (or wrapped by ``canonicalize``, which records the inner
    spec); else the constructor arguments an equivox network records when constructed directly
    (:class:`~equivox.nets.base.EquivariantNetwork` keeps them, e.g. ``EquivariantUNet(..., class_swaps=[(1, 2)])``),
    under the name its class is registered with. ``None`` for any other module (MONAI's nets built directly, a
    user's model, a TorchScript module): checkpoints then carry its pickled architecture
    (:func:`equivox.models.checkpoint_spec`)."""
    spec = getattr(model, "equivox_spec", None)
    if spec is not None:
        return spec
    args = getattr(model, "_init_arguments", None)
    if args is None:
        return None
    name = next((n for n, b in MODELS.items() if b is type(model)), None)
    if name is None:
        return None
    return {"cls": name, "kwargs": _plain(dict(args)), "version": SPEC_VERSION}
