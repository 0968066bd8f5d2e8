"""Competitors of the benchmark harness: one :class:`Competitor` type and one registry for both tasks.

A competitor is a row of a benchmark table: a network (built from the suite's *reference* equivariant model, or by
a user's builder), how it is trained (augmentation, training options) and how it is wrapped (canonicalizer, test-time
augmentation, principal-axes pose). The same name means the same recipe in classification and segmentation (e.g.
``"plain (matched params)"``: the reference's trivial-group twin at its parameter count, built by
:func:`equivox.baselines.matched_baseline`; its arch name is ``"baseline"``, as ``TrainConfig(arch="baseline")``).

Users add rows with :func:`register_competitor`::

    from equivox.benchmark import register_competitor

    def my_net(ctx):                       # ctx: BuildContext(task, in_channels, n_classes, group, reference, ...)
        return MyCNN(ctx.in_channels, ctx.n_classes)

    register_competitor("my CNN + grid aug", my_net, augment="grid", tasks=("classify",), train={"lr": 1e-3})
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from ..models.roles import ModelRequest, arch_names, get_role

__all__ = ["Competitor", "BuildContext", "COMPETITORS", "ARCHS", "TASKS", "TRAIN_OPTIONS", "CANONICALIZER",
           "register_competitor", "unregister_competitor", "get_competitor", "competitor_names", "build_network",
           "model_request"]

#: ``Competitor.arch`` values: the model roles of :mod:`equivox.models.roles` (the reference's group or another
#: ``"equivariant"``, its parameter-matched trivial-group twin ``"baseline"``, the trivial-group twin at its tensor
#: widths ``"plain_compute"``, a MONAI network at its parameter count ``"monai"``: ResNet for classify, UNet for
#: segment; the same names as ``TrainConfig.arch``), and a user's builder of :class:`BuildContext` (``"custom"``)
ARCHS = tuple(n for n in arch_names() if get_role(n).name == n) + ("custom",)
TASKS = ("classify", "segment")
#: training options a competitor may override (:class:`~equivox.training.TrainConfig` fields of the suite run)
TRAIN_OPTIONS = ("epochs", "lr", "batch_size", "weight_decay")
_AUGMENTS = ("none", "grid", "so3")

#: the canonicalizer of every canonicalized competitor (:class:`~equivox.canonicalization.GroupScorer` settings)
CANONICALIZER = dict(channels=(2, 4), strides=(2,), input_size=16)


@dataclass(frozen=True)
class BuildContext:
    """What a competitor's builder knows about the run.

    Attributes:
        task: ``"classify"`` (model ``(B, C, S, S, S) -> (B, K)`` logits) or ``"segment"``
            (``(B, C, D, H, W) -> (B, K, D, H, W)``).
        in_channels: input channels C. n_classes: K (segmentation: background included).
        group: the reference's group (``"octa"``).
        reference: the suite's reference equivariant model (``InvariantClassifier`` / ``EquivariantUNet`` built by
            :func:`equivox.baselines.build_from_spec`); match its parameter count with
            :func:`equivox.baselines.count_parameters` / :func:`equivox.baselines.match_channels`.
        base_kwargs: the reference's constructor arguments (without ``group``).
        seed: the run's seed (``torch.manual_seed(seed)`` was called before the builder).
        input_size: side of the cube the classification model sees (``None`` for segmentation).
        class_swaps: segmentation: the dataset's left/right class pairs (``()`` when it has none).
    """

    task: str
    in_channels: int
    n_classes: int
    group: str
    reference: nn.Module
    base_kwargs: Mapping[str, Any]
    seed: int
    input_size: Optional[int] = None
    class_swaps: Tuple[Tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Competitor:
    """One row kind of the harness (classification and segmentation).

    Attributes:
        name: row label and ``--models`` name.
        arch: one of :data:`ARCHS`.
        group: of an ``"equivariant"`` competitor. match_params: an ``"equivariant"`` competitor of another group
            than the reference gets the fields per level that match the reference's parameter count (else the
            reference's fields, ``field_scale`` times).
        augment: training augmentation ``"none"``, ``"grid"`` (random cube rotations) or ``"so3"``.
        head: segmentation head of an ``"equivariant"`` U-Net (:class:`~equivox.nets.EquivariantUNet`).
        channels: fields per level of an ``"equivariant"`` competitor instead of the reference's.
        field_scale: times the reference's fields per level (``"equivariant"``).
        canonical: classification: resample each input into its principal-axes frame first
            (:class:`~equivox.nn.CanonicalPose`, training and test).
        tta_of: score the trained model of that competitor (listed before it) averaged over the 24 cube rotations
            (:class:`~equivox.evaluation.GroupTTA`, 24x inference); no training of its own.
        canonicalize: put the network behind an exactly equivariant canonicalizer over this group's grid elements
            (:func:`equivox.canonicalization.canonicalize`, :data:`CANONICALIZER` settings, trained jointly).
        frozen_of: with ``canonicalize``: the trained model of that competitor (listed before it), frozen; only
            the canonicalizer is fitted (its training time counts the frozen model's too).
        scorer: with ``canonicalize``: ``"network"`` (a :class:`~equivox.canonicalization.GroupScorer`, fitted or
            trained), ``"confidence"`` (the frozen model's own confidence picks the pose: nothing is fitted, one
            forward pass per element at inference; needs ``frozen_of``) or ``"calibrated"`` (as ``"confidence"``,
            scored by a small head fitted on the validation items: :func:`~equivox.canonicalization.fit_upright_head`).
        class_swaps: segmentation, ``"equivariant"`` with a group with reflections: label-permuting logits
            (:class:`~equivox.nn.ClassSwapHead`) over the dataset's left/right class pairs.
        tasks: the tasks the competitor exists for.
        builder: ``builder(ctx: BuildContext) -> nn.Module`` of an ``arch="custom"`` competitor.
        train: training options overriding the suite's (keys in :data:`TRAIN_OPTIONS`).
    """

    name: str
    arch: str
    group: str = "octa"
    match_params: bool = False
    augment: str = "none"
    head: Optional[str] = None
    channels: Optional[Tuple[int, ...]] = None
    field_scale: int = 1
    canonical: bool = False
    tta_of: Optional[str] = None
    canonicalize: Optional[str] = None
    frozen_of: Optional[str] = None
    class_swaps: bool = False
    scorer: str = "network"
    tasks: Tuple[str, ...] = TASKS
    builder: Optional[Callable[[BuildContext], nn.Module]] = None
    train: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        where = f"competitor {self.name!r}"
        if not isinstance(self.name, str) or not self.name.strip() or ";" in self.name:
            raise ValueError(f"{where}: the name must be a non-empty string without ';' (the --models separator)")
        if self.arch not in ARCHS and self.arch not in arch_names():
            raise ValueError(f"{where}: arch must be one of {ARCHS}, got {self.arch!r}")
        if (self.arch == "custom") != (self.builder is not None):
            raise ValueError(f"{where}: arch 'custom' needs a builder, and a builder needs arch 'custom'")
        if self.builder is not None and not callable(self.builder):
            raise ValueError(f"{where}: builder must be callable builder(ctx) -> nn.Module")
        if self.augment not in _AUGMENTS:
            raise ValueError(f"{where}: augment must be one of {_AUGMENTS}, got {self.augment!r}")
        object.__setattr__(self, "tasks", tuple(self.tasks))
        bad = [t for t in self.tasks if t not in TASKS]
        if bad or not self.tasks:
            raise ValueError(f"{where}: tasks must be a non-empty subset of {TASKS}, got {self.tasks}")
        unknown = sorted(set(self.train) - set(TRAIN_OPTIONS))
        if unknown:
            raise ValueError(f"{where}: unknown training options {unknown}; known: {list(TRAIN_OPTIONS)}")
        object.__setattr__(self, "train", dict(self.train))
        if self.frozen_of and not self.canonicalize:
            raise ValueError(f"{where}: frozen_of needs canonicalize (only the canonicalizer is fitted)")
        if self.scorer not in ("network", "confidence", "calibrated") or (self.scorer != "network"
                                                                           and not self.frozen_of):
            raise ValueError(f"{where}: scorer must be 'network', 'confidence' or 'calibrated' (the latter two with "
                             f"canonicalize and frozen_of), got {self.scorer!r}")
        if self.tta_of and (self.canonicalize or self.frozen_of):
            raise ValueError(f"{where}: tta_of reuses a trained model as it is: no canonicalize / frozen_of")

    @property
    def trains(self) -> bool:
        """False for a test-time-augmentation row (it reuses ``tta_of``'s trained model)."""
        return self.tta_of is None

    @property
    def fits(self) -> bool:
        """False when nothing is trained by the suite's optimiser for this row: test-time augmentation, or a
        confidence / calibrated canonicalizer around a frozen model (the latter fits its head on its own)."""
        return self.tta_of is None and self.scorer == "network"

    @property
    def eval_cost(self) -> int:
        """Forward passes of the network per scored item: 24 for test-time augmentation over the cube rotations,
        the group's grid elements for a confidence canonicalizer, else 1."""
        if self.tta_of:
            return 24
        if self.scorer in ("confidence", "calibrated"):
            from ..groups import grid_elements_of_name

            return len(grid_elements_of_name(self.canonicalize))
        return 1

    @property
    def reuses(self) -> Optional[str]:
        """The competitor whose trained model this one reuses (``tta_of`` or ``frozen_of``), if any."""
        return self.tta_of or self.frozen_of

    @property
    def model_group(self) -> str:
        """The group the network is built on (``"trivial"`` for every non-equivariant arch)."""
        return "trivial" if self.builder is not None else get_role(self.arch).model_group(self.group)


_C, _S = ("classify",), ("segment",)
#: the registry: competitor name -> :class:`Competitor` (both tasks; ``tasks`` says where each one exists)
COMPETITORS: Dict[str, Competitor] = {c.name: c for c in [
    Competitor("equivariant (octa)", "equivariant"),
    Competitor("equivariant (full_octa)", "equivariant", "full_octa", tasks=_C),
    Competitor("equivariant (so3)", "equivariant", "so3", tasks=_C),
    Competitor("equivariant (octa_faces)", "equivariant", "octa_faces", tasks=_C),
    Competitor("equivariant (octa_vertices)", "equivariant", "octa_vertices", tasks=_C),
    Competitor("equivariant (octa_vertices, 2x fields)", "equivariant", "octa_vertices", field_scale=2, tasks=_C),
    Competitor("equivariant (octa) + so3 aug", "equivariant", augment="so3", tasks=_C),
    Competitor("equivariant (octa) + PCA pose", "equivariant", canonical=True, tasks=_C),
    Competitor("equivariant (octa, stats head)", "equivariant", head="stats", tasks=_S),
    Competitor("equivariant (octa, linear head)", "equivariant", head="linear", tasks=_S),
    Competitor("equivariant (octa, stats head, fields 3-2)", "equivariant", head="stats", channels=(3, 2),
               tasks=_S),
    Competitor("equivariant (octa) + orientation", "equivariant", head="oriented", tasks=_S),
    Competitor("equivariant (octa) + orientation + canonicalizer", "equivariant", head="oriented",
               canonicalize="octa", tasks=_S),
    Competitor("equivariant (d4_axial)", "equivariant", "d4_axial", match_params=True, tasks=_S),
    Competitor("equivariant (so3, matched params)", "equivariant", "so3", match_params=True, tasks=_S),
    Competitor("equivariant (full_octa) + class swaps", "equivariant", "full_octa", match_params=True,
               class_swaps=True, tasks=_S),
    Competitor("plain (matched params)", "baseline"),
    Competitor("plain (matched compute)", "plain_compute"),
    Competitor("plain + grid aug", "baseline", augment="grid"),
    Competitor("plain + so3 aug", "baseline", augment="so3"),
    Competitor("plain + grid aug + TTA24", "baseline", augment="grid", tta_of="plain + grid aug", tasks=_C),
    Competitor("plain + PCA pose + grid aug", "baseline", augment="grid", canonical=True, tasks=_C),
    Competitor("plain + canonicalizer", "baseline", canonicalize="octa"),
    Competitor("plain + PCA pose + canonicalizer", "baseline", canonical=True, canonicalize="octa", tasks=_C),
    Competitor("plain (frozen) + calibrated canonicalization", "baseline", canonicalize="octa",
               frozen_of="plain (matched params)", scorer="calibrated"),
    Competitor("plain (frozen) + confidence canonicalization", "baseline", canonicalize="octa",
               frozen_of="plain (matched params)", scorer="confidence"),
    Competitor("plain (frozen) + fitted canonicalizer", "baseline", canonicalize="octa",
               frozen_of="plain (matched params)"),
    Competitor("MONAI ResNet + grid aug", "monai", augment="grid", tasks=_C),
    Competitor("MONAI ResNet + canonicalizer", "monai", canonicalize="octa", tasks=_C),
    Competitor("MONAI UNet (matched params)", "monai", tasks=_S),
    Competitor("MONAI UNet + canonicalizer", "monai", canonicalize="octa", tasks=_S),
    Competitor("MONAI UNet (frozen) + fitted canonicalizer", "monai", canonicalize="octa",
               frozen_of="MONAI UNet (matched params)", tasks=_S),
]}
_BUILTIN = frozenset(COMPETITORS)


def register_competitor(name: str, builder: Optional[Callable[[BuildContext], nn.Module]] = None, *,
                        tasks: Sequence[str] = TASKS, augment: str = "none", train: Optional[Mapping[str, Any]] = None,
                        replace: bool = False, **fields) -> Competitor:
    """Add a row to the harness (both suites, ``equivox demo`` and ``benchmarks/*.py --models``).

    Args:
        name: the row label and ``--models`` name (no ``';'``).
        builder: ``builder(ctx: BuildContext) -> nn.Module``: the network, given the task, input channels, number
            of classes, the reference's group and the reference model itself (to match its parameter count).
            Classification models see ``ctx.input_size`` cubes; segmentation models any patch size divisible by
            the reference's strides. Without a builder, pass ``arch=`` and the :class:`Competitor` fields of a
            built-in kind (e.g. ``arch="baseline", augment="so3", canonicalize="octa"``).
        tasks: the tasks the row exists for (``"classify"``, ``"segment"``).
        augment: training augmentation ``"none"``, ``"grid"``, ``"so3"``.
        train: training options overriding the suite's, keys in :data:`TRAIN_OPTIONS` (e.g. ``{"lr": 1e-3}``).
        replace: overwrite a user competitor of the same name (built-in rows cannot be replaced).
        fields: other :class:`Competitor` fields (``canonicalize``, ``frozen_of``, ``tta_of``, ``canonical``, ...).

    Returns:
        the registered :class:`Competitor`. Raises ``ValueError`` for a taken name or a bad field.
    """
    if builder is not None:
        if fields.get("arch", "custom") != "custom":
            raise ValueError(f"competitor {name!r}: a builder makes arch 'custom', got arch={fields['arch']!r}")
        fields["arch"] = "custom"
    elif "arch" not in fields:
        raise ValueError(f"competitor {name!r}: pass a builder(ctx) -> nn.Module or arch= one of {ARCHS}")
    comp = Competitor(name=name, builder=builder, tasks=tuple(tasks), augment=augment, train=dict(train or {}),
                      **fields)
    if name in COMPETITORS and (name in _BUILTIN or not replace):
        raise ValueError(f"competitor {name!r} is already registered"
                         + ("" if name in _BUILTIN else " (pass replace=True to overwrite it)"))
    COMPETITORS[name] = comp
    return comp


def unregister_competitor(name: str) -> Competitor:
    """Remove a user competitor (built-in rows stay). Returns it."""
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is a built-in competitor and cannot be removed")
    if name not in COMPETITORS:
        raise ValueError(f"no competitor {name!r}; registered: {list(COMPETITORS)}")
    return COMPETITORS.pop(name)


def competitor_names(task: Optional[str] = None) -> Tuple[str, ...]:
    """Registered competitor names (for ``task`` only when given)."""
    return tuple(n for n, c in COMPETITORS.items() if task is None or task in c.tasks)


def get_competitor(name: str, task: str) -> Competitor:
    """The competitor ``name`` for ``task``; ``ValueError`` naming the known ones otherwise."""
    comp = COMPETITORS.get(name)
    if comp is None or task not in comp.tasks:
        raise ValueError(f"unknown {task} competitor {name!r}; known: {list(competitor_names(task))}")
    return comp


def check_order(names: Sequence[str], task: str) -> list:
    """The competitors of ``names`` for ``task``, checking that every reused model is listed before its user."""
    comps = [get_competitor(n, task) for n in names]
    for i, c in enumerate(comps):
        if c.reuses and c.reuses not in names[:i]:
            raise ValueError(f"{c.name!r} reuses the trained model of {c.reuses!r}: list that competitor before it")
    return comps


def model_request(comp: Competitor, ctx: BuildContext) -> ModelRequest:
    """The :class:`~equivox.models.ModelRequest` of a built-in competitor: the reference's sizes
    (``ctx.base_kwargs``) and model (``ctx.reference``, every row is matched to it), ``ctx.seed``; an
    ``"equivariant"`` row adds its group, head, fields (``channels`` / ``field_scale``), label swaps and whether its
    fields are matched to the reference's parameters (``match_params``, for another group than the reference's)."""
    base = {k: v for k, v in ctx.base_kwargs.items() if k not in ("spatial_dims", "in_channels", "out_channels")}
    group, options = ctx.group, {}
    if get_role(comp.arch).equivariant:
        group = comp.group
        if comp.head:
            options["head"] = comp.head
        if comp.class_swaps:
            if not ctx.class_swaps:
                raise ValueError(f"competitor {comp.name!r} needs left/right class pairs; the dataset's class names "
                                 "declare none (names ending in _L / _R)")
            options["class_swaps"] = [list(p) for p in ctx.class_swaps]
        base["channels"] = [c * comp.field_scale for c in (comp.channels or base["channels"])]
    return ModelRequest(ctx.task, ctx.in_channels, ctx.n_classes, group, base, options, seed=ctx.seed,
                        reference=ctx.reference, match_params=comp.match_params)


def build_network(comp: Competitor, ctx: BuildContext) -> nn.Module:
    """The (unwrapped, untrained) network of ``comp``: its model role (:func:`equivox.models.get_role` of
    ``comp.arch``) built for :func:`model_request`, or a ``"custom"`` competitor's builder; seeded with
    ``ctx.seed`` before construction."""
    if comp.builder is None:
        return get_role(comp.arch).build(model_request(comp, ctx))
    torch.manual_seed(ctx.seed)
    net = comp.builder(ctx)
    if not isinstance(net, nn.Module):
        raise ValueError(f"competitor {comp.name!r}: builder returned {type(net).__name__}, not an nn.Module")
    return net
