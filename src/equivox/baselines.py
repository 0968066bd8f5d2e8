"""Plain-CNN baselines of matched size for comparing equivariant models fairly: parameter matching only (which
model a run builds is :mod:`equivox.models.roles`; specs are :mod:`equivox.models.specs`).

The baseline of an equivox network is **the same architecture on the trivial group** (``group="trivial"``: one
channel per field, ordinary 3D convolutions on the same code path: same depth, strides, kernel size, norm,
activation, pooling and head) with its ``channels`` scaled so that the **total number of trainable parameters**
is as close as possible to the equivariant model's. Matching parameters (not tensor width, not FLOPs) is the
usual convention: an equivariant layer shares weights across the group, so at equal parameter count it has
``|G|``-times wider tensors and costs more compute; the baseline has the same capacity to store learned weights.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

from torch import nn

# the spec primitives moved to the model registry (their public home is equivox.models.specs); re-exported here, as
# every earlier release had them in this module
from .nets.registry import SPEC_VERSION, build_from_spec, spec_of, upgrade_spec

__all__ = ["count_parameters", "match_channels", "matched_baseline", "matched_monai_unet", "model_spec",
           "build_from_spec", "upgrade_spec", "SPEC_VERSION"]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def match_channels(target_params: int, base_channels: Sequence[int], build: Callable[[Tuple[int, ...]], nn.Module],
                   max_scale: float = 64.0) -> Tuple[int, ...]:
    """Pick channels ``round(s * base_channels)`` (each >= 1) whose model has the parameter count closest to
    ``target_params``.

    Args:
        target_params: parameter count to match (usually ``count_parameters(equivariant_model)``).
        base_channels: channel ratios to keep (e.g. the equivariant model's ``tensor_channels``).
        build: ``channels -> model`` (e.g. a trivial-group network); called a few times, must be cheap.
        max_scale: upper bound of the scale factor searched.

    The parameter count grows about quadratically with ``s``: a few secant steps on ``sqrt(params)`` find ``s``,
    then the closest of the tried and neighbouring integer channel tuples is taken and refined by +-1 channel per
    level while that gets closer (about 10-20 builds of the cheap trivial-group model).
    """
    base = [float(c) for c in base_channels]
    if not base or min(base) <= 0:
        raise ValueError(f"base_channels must be positive, got {base_channels}")
    cache: Dict[Tuple[int, ...], int] = {}

    def chans(s: float) -> Tuple[int, ...]:
        return tuple(max(1, int(round(s * c))) for c in base)

    def params(ch: Tuple[int, ...]) -> int:
        if ch not in cache:
            cache[ch] = count_parameters(build(ch))
        return cache[ch]

    # parameters grow ~quadratically with s: a few secant steps on sqrt(params), then the best of the neighbours
    s = 1.0
    for _ in range(4):
        p = params(chans(s))
        if p == target_params:
            break
        s = min(max_scale, s * (target_params / max(p, 1)) ** 0.5)
    tried = set(cache)
    near = {chans(s * f) for f in (0.9, 0.95, 1.0, 1.05, 1.1)}
    best = min(tried | near, key=lambda ch: (abs(params(ch) - target_params), ch))
    for _ in range(3):  # fine-tune: +-1 channel per level while that gets closer (ratios kept to within 1)
        cands = [best[:i] + (best[i] + d,) + best[i + 1:] for i in range(len(best)) for d in (-1, 1)
                 if best[i] + d >= 1]
        new = min(cands, key=lambda ch: (abs(params(ch) - target_params), ch))
        if abs(params(new) - target_params) >= abs(params(best) - target_params):
            break
        best = new
    if params(best) < 0.5 * target_params and chans(max_scale) == best:
        raise ValueError(f"cannot reach {target_params} parameters with channels up to {best}")
    return best


def model_spec(model: nn.Module) -> Dict:
    """The ``{"cls", "kwargs", "version"}`` spec from which :func:`build_from_spec` rebuilds ``model``'s
    architecture (:func:`equivox.models.spec_of`, which this requires).

    Raises:
        ValueError: ``model`` has no spec (not an equivox network, not built from a spec).
    """
    spec = spec_of(model)
    if spec is None:
        raise ValueError(f"{type(model).__name__} has no equivox_spec; build it with equivox.baselines.build_from_spec "
                         "or equivox.training.build_model to make it rebuildable")
    return spec


def _equivox_kwargs(model: nn.Module) -> Dict:
    spec = spec_of(model)
    if spec is None:
        raise ValueError("matched_baseline needs an equivox network (built by equivox.baselines.build_from_spec, "
                         "equivox.training.build_model or directly): it reads the constructor arguments from its spec")
    return spec


def matched_baseline(model: nn.Module, target_params: Optional[int] = None) -> nn.Module:
    """The trivial-group version of an equivox network with channels chosen to match its parameter count.

    Args:
        model: an equivox network (``InvariantClassifier`` / ``EquivariantUNet``, any group) with a spec
            (:func:`equivox.models.spec_of`: built from a spec or directly).
        target_params: parameter count to match; default ``count_parameters(model)``.

    Returns a model with the same constructor arguments except ``group="trivial"`` and ``channels`` (ratios of
    ``model.tensor_channels`` kept) picked by :func:`match_channels`. Same input/output shapes as ``model``;
    no rotation symmetry built in. A label-permuting net (``class_swaps=...``, :mod:`equivox.nn.label_swap`) gets a
    twin without the swap (the trivial group has no reflections to swap classes under) and the same output classes.
    This is the one parameter-matched plain model of equivox: ``TrainConfig(arch="baseline")`` and the benchmark
    rows ``"plain (matched params)"`` build it here (the ``"baseline"`` role of :mod:`equivox.models.roles`).
    """
    spec = _equivox_kwargs(model)
    target = count_parameters(model) if target_params is None else int(target_params)
    kwargs = {k: v for k, v in spec["kwargs"].items() if k != "class_swaps"}

    def build(ch):
        return build_from_spec({"cls": spec["cls"], "kwargs": {**kwargs, "group": "trivial", "channels": list(ch)}})

    ch = match_channels(target, getattr(model, "tensor_channels", kwargs["channels"]), build)
    return build(ch)


def matched_monai_unet(in_channels: int, out_channels: int, target_params: int, levels: int = 3,
                       num_res_units: int = 1) -> nn.Module:
    """MONAI ``UNet`` (channels ``(c, 2c, 4c, ...)``, strides 2) with ``c`` chosen so its parameter count is
    closest to ``target_params``. Input sizes must be multiples of ``2 ** (levels - 1)``."""
    def build(ch):
        return build_from_spec({"cls": "monai.UNet", "kwargs": dict(
            spatial_dims=3, in_channels=in_channels, out_channels=out_channels, channels=list(ch),
            strides=[2] * (levels - 1), num_res_units=num_res_units)})

    ch = match_channels(target_params, [2 ** i for i in range(levels)], build)
    return build(ch)

