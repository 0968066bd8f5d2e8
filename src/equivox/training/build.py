"""The model a :class:`TrainConfig` describes: its constructor arguments checked (:func:`check_model_args`), the
:class:`~equivox.models.ModelRequest` (:func:`model_request`), the network built by the model role ``cfg.arch``
names (:func:`build_model`), a canonicalizer put in front when ``cfg.canonicalize`` asks for one
(:func:`canonicalize_from_config`), and a warning for networks much wider than their ``channels`` suggest."""
from __future__ import annotations

import warnings
from typing import Any, Dict, Optional

from torch import nn

from ..baselines import count_parameters
from ..models import CanonicalizedRole, ModelRequest, get_role
from .config import TrainConfig

__all__ = ["model_class_name", "check_model_args", "model_request", "build_model", "WIDE_TENSOR_CHANNELS",
           "warn_if_wide", "canonicalize_from_config"]


def model_class_name(cfg: TrainConfig) -> str:
    """The registered class whose constructor ``cfg.model`` goes to: the equivox network of the task
    (:func:`equivox.models.network_class`) for the built-in roles (before any baseline matching), the model itself
    for a registered model's name, ``cfg.arch`` for a user role."""
    return get_role(cfg.arch).reference_class(cfg.task) or cfg.arch


def check_model_args(cfg: TrainConfig) -> None:
    """Check ``cfg.model`` against the constructor of the class :func:`build_model` builds: an unknown key raises
    ``ValueError`` naming it and the valid ones (nothing is dropped silently); a role whose network takes no
    constructor arguments (``monai_unet``: matched to the equivariant one) refuses any."""
    import inspect

    from ..nets.registry import get_model

    if not cfg.model:
        return
    role = get_role(cfg.arch)
    if not role.takes_options:
        raise ValueError(f"model arguments are for the built network's constructor; arch {cfg.arch!r} is "
                         f"{role.description}, got model: {cfg.model}")
    name = role.reference_class(cfg.task)
    if name is None:  # a user role: its builder gets the arguments as request.options
        return
    params = inspect.signature(get_model(name)).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(cfg.model) - set(params))
    if unknown:
        valid = [k for k, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        raise ValueError(f"unknown model argument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for {name}; "
                         f"valid: {', '.join(valid)}")


def model_request(cfg: TrainConfig, in_channels: int, num_classes: int, group: Optional[str] = None) -> ModelRequest:
    """The :class:`~equivox.models.ModelRequest` of ``cfg``: its task, ``group`` (default ``cfg.model["group"]``
    or ``cfg.group``, which must not be ``"auto"`` here), its sizes (``channels``, ``strides``, ``kernel_size``,
    ``convs_per_level``, and ``hidden_features`` for classification), ``cfg.model`` as options and ``cfg.seed``."""
    sizes: Dict[str, Any] = dict(channels=list(cfg.channels), strides=list(cfg.strides), kernel_size=cfg.kernel_size,
                                 convs_per_level=cfg.convs_per_level)
    if cfg.task == "classify":
        sizes["hidden_features"] = list(cfg.hidden_features)
    return ModelRequest(cfg.task, int(in_channels), int(num_classes),
                        group if group is not None else cfg.model.get("group", cfg.group), sizes,
                        {k: v for k, v in cfg.model.items() if k != "group"}, seed=cfg.seed)


def build_model(cfg: TrainConfig, in_channels: int, num_classes: int) -> nn.Module:
    """The network for ``cfg``, built by the model role ``cfg.arch`` names (:mod:`equivox.models.roles`):
    ``"equivariant"``: ``InvariantClassifier`` (classify: ``(B, C, D, H, W) -> (B, K)``) / ``EquivariantUNet``
    (segment: ``-> (B, K, D, H, W)``) of ``cfg.group``; ``"baseline"``: the trivial-group network with parameters
    matched to that equivariant one (:func:`equivox.baselines.matched_baseline`); ``"plain_compute"``: the
    trivial-group network at its tensor widths; ``"monai_unet"`` / ``"monai"``: a matched MONAI ``UNet`` (segment) /
    ``ResNet`` (classify); the name of a registered model (:mod:`equivox.nets.registry`): that model, given the
    arguments of ``cfg`` its constructor accepts (``spatial_dims``, ``in_channels``, ``out_channels``, ``channels``,
    ``strides``, ``group``, ``kernel_size``, ``convs_per_level``, ``hidden_features``). ``cfg.model`` adds (or
    overrides) any other constructor argument (``head``, ``class_swaps``, ``norm``, ...; unknown keys raise
    ``ValueError``, see :func:`check_model_args`). Seeded by ``cfg.seed``. The model carries its spec
    (:func:`equivox.models.spec_of`) so checkpoints can rebuild it; with ``cfg.canonicalize`` it is put behind the
    canonicalizer :func:`canonicalize_from_config` describes.

    Voxel spacing: ``cfg.group="auto"`` picks the largest group exact for ``cfg.spacing``
    (:func:`equivox.groups.auto_group`, printed with the reason; ``spacing`` required); any other group is checked
    against ``cfg.spacing`` when it is set (:func:`equivox.groups.check_spacing` warns, naming the exact groups)."""
    from ..groups import auto_group, check_spacing

    check_model_args(cfg)
    group = cfg.model.get("group", cfg.group)
    if group == "auto":
        if cfg.spacing is None:
            raise ValueError("group='auto' needs spacing (mm along D, H, W) to choose a group exact for the voxels")
        group, why = auto_group(cfg.spacing)
        print(f"group='auto' -> {group!r}: {why}", flush=True)
    else:
        check_spacing(group, cfg.spacing)
    model = get_role(cfg.arch).build(model_request(cfg, in_channels, num_classes, group))
    if cfg.canonicalize:
        model = canonicalize_from_config(model, cfg, in_channels)
    return model


#: above this many tensor channels at one level a network is reported as unusually wide
WIDE_TENSOR_CHANNELS = 1024


def warn_if_wide(model: nn.Module) -> None:
    """Warn (one line) when an equivox network's tensors are far wider than its ``channels`` argument suggests:
    ``channels`` counts *fields*, each ``field_size`` tensor channels wide (24 for ``octa``), so MONAI channel
    counts such as ``(16, 32, 64, 128, 256)`` copied into an equivox network build 6,144-channel tensors."""
    widths = getattr(model, "tensor_channels", None)
    fields = getattr(model, "channels", None)
    if not widths or not fields or max(widths) < WIDE_TENSOR_CHANNELS:
        return
    factor = max(widths) // max(fields)
    warnings.warn(f"{type(model).__name__}: channels={tuple(fields)} are fields of {factor} tensor channels each "
                  f"(group {getattr(model, 'group', '?')}): tensors up to {max(widths)} channels wide, "
                  f"{count_parameters(model):,} parameters; for a plain CNN's widths divide its channel "
                  f"counts by {factor}", UserWarning, stacklevel=3)


def canonicalize_from_config(model: nn.Module, cfg: TrainConfig, in_channels: int,
                             freeze_model: bool = False) -> nn.Module:
    """``model`` behind the canonicalizer ``cfg`` describes (``canonicalize`` and the ``canonical_*``,
    ``prior_weight`` and ``canonicalizer_*`` keys), seeded by ``cfg.seed + 1`` (the ``canonicalized`` role's
    :meth:`~equivox.models.CanonicalizedRole.wrap`, as the benchmark harness wraps its rows)."""
    ch = tuple(cfg.canonicalizer_channels)
    return CanonicalizedRole.wrap(model, cfg.task, cfg.canonicalize or "octa", cfg.seed, mode=cfg.canonical_mode,
                                  in_channels=in_channels, channels=ch, strides=(2,) * (len(ch) - 1),
                                  input_size=cfg.canonicalizer_input_size, freeze_model=freeze_model,
                                  prior_weight=cfg.prior_weight, sample_in_training=cfg.canonical_sample,
                                  margin=cfg.canonical_margin, temperature=cfg.canonical_temperature,
                                  canonical_pose=cfg.canonical_pose)
