"""Model specs: how a model is recorded so a checkpoint can rebuild it, and how it is rebuilt.

A spec is ``{"cls": <registered name>, "kwargs": {...}, "version": SPEC_VERSION}`` (JSON-able; tuples stored as
lists). :func:`spec_of` is the one getter: the spec a model was built from (``model.equivox_spec``), or the
constructor arguments an equivox network recorded when built directly, under its registered name; ``None`` for any
other module. :func:`build_from_spec` rebuilds (names: :mod:`equivox.nets.registry`), :func:`upgrade_spec` brings a
saved spec to today's version first (constructor defaults that changed since). Those three live in the registry
module (parameter matching, :mod:`equivox.baselines`, rebuilds networks from specs and sits below this package);
this module is their public home.

A model without a spec (MONAI's nets built directly, a user's model, a wrapper) is checkpointed with its pickled
architecture instead (:func:`checkpoint_spec`: ``{"cls": "pickled", "module": ...}`` plus the architecture as
bytes, :func:`model_skeleton`), which :func:`equivox.models.load_model` puts the weights back into.

This module also registers ``"Canonicalized"`` (:func:`build_canonicalized`): a canonicalizer in front of a model
that is itself a spec, so canonicalized equivox networks rebuild from their checkpoints like any network.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from ..baselines import model_spec
from ..canonicalization import Canonicalized, canonicalize
from ..nets.registry import SPEC_VERSION, build_from_spec, register_model, spec_of, upgrade_spec

__all__ = ["SPEC_VERSION", "spec_of", "model_spec", "build_from_spec", "upgrade_spec", "build_canonicalized",
           "PICKLED_MODEL", "SKELETON_KEY", "pickled_spec", "model_skeleton", "model_from_skeleton",
           "checkpoint_spec"]

#: ``model_spec["cls"]`` of a model that no registered name rebuilds (a user's or the benchmark's wrapper, MONAI's
#: nets, a canonicalized plain model): its checkpoints carry its pickled architecture (:func:`model_skeleton`)
PICKLED_MODEL = "pickled"
#: the checkpoint key holding that architecture
SKELETON_KEY = "equivox_model_skeleton"


def build_canonicalized(model: Dict, group: str = "octa", task: str = "classify", **kwargs) -> Canonicalized:
    """The registry's builder of :class:`~equivox.canonicalization.Canonicalized` (``"Canonicalized"``): the wrapped
    ``model`` is itself a (saved) spec, rebuilt with :func:`build_from_spec`; ``kwargs`` as
    :func:`equivox.canonicalization.canonicalize` (``mode``, ``in_channels``, ``channels``, ``input_size``, ...)."""
    return canonicalize(build_from_spec(upgrade_spec(model)), group, task, **kwargs)


register_model("Canonicalized", build_canonicalized)


def pickled_spec(model: nn.Module) -> Dict[str, Any]:
    """The ``model_spec`` recorded for a model without a registered spec: its class, and that the checkpoint holds
    the pickled architecture (``cls`` = :data:`PICKLED_MODEL`)."""
    return {"cls": PICKLED_MODEL, "kwargs": {}, "module": f"{type(model).__module__}.{type(model).__qualname__}",
            "version": SPEC_VERSION}


def model_skeleton(model: nn.Module) -> bytes:
    """``model``'s architecture as bytes (``torch.save`` of a copy whose parameters are empty ``meta`` tensors: no
    weights are duplicated); :func:`model_from_skeleton` puts a state dict back into it. Buffers (batch-norm
    statistics, fixed kernel bases, which some modules compare on loading) and plain tensor attributes are kept,
    detached.

    Raises whatever pickling raises for a model that cannot be pickled (a lambda attribute, a TorchScript module)."""
    import copy
    import io

    memo: Dict[int, Any] = {}
    for t in model.parameters():
        if id(t) not in memo:
            memo[id(t)] = nn.Parameter(torch.empty_like(t, device="meta"), requires_grad=t.requires_grad)
    for t in model.buffers():
        if id(t) not in memo:
            memo[id(t)] = t.detach().clone()
    for m in model.modules():  # tensors kept as plain attributes (e.g. a stored loss with its graph): detached
        for value in vars(m).values():
            if isinstance(value, torch.Tensor) and id(value) not in memo:
                memo[id(value)] = value.detach().clone()
    buf = io.BytesIO()
    torch.save(copy.deepcopy(model, memo), buf)
    return buf.getvalue()


def model_from_skeleton(blob: bytes, state: Dict[str, torch.Tensor]) -> nn.Module:
    """The model saved by :func:`model_skeleton`, with the tensors of ``state`` (its ``state_dict``) in place.

    Raises:
        RuntimeError: (``load_state_dict``) a state-dict entry is missing, unexpected or of the wrong shape;
        ValueError: a tensor of the architecture is still empty after loading.
        (unpickling errors, e.g. ``ModuleNotFoundError`` for a class that is no longer importable, pass through)."""
    import io

    model = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=False)
    model.load_state_dict(state, assign=True)
    left = [k for k, v in model.state_dict().items() if v.is_meta]
    if left:
        raise ValueError(f"no weights for {', '.join(left[:3])}")
    return model


def checkpoint_spec(model: nn.Module) -> Tuple[Dict[str, Any], Optional[bytes]]:
    """What a checkpoint records to rebuild ``model``: ``(spec_of(model), None)`` when a registered name rebuilds
    it, else ``(pickled_spec(model), model_skeleton(model))``.

    Raises whatever pickling raises for a model without a spec that cannot be pickled (the caller decides whether
    weights-only checkpoints will do)."""
    spec = spec_of(model)
    if spec is not None:
        return spec, None
    skeleton = model_skeleton(model)  # first: a model that cannot be pickled raises before anything is recorded
    return pickled_spec(model), skeleton
