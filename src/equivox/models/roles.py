"""Model roles: the one vocabulary of *which* network a run builds, for training, the benchmark harness and scripts.

A role builds a network for a task from a :class:`ModelRequest` (task, input channels, classes, group, sizes).
Shapes: ``task="classify"``: ``(B, in_channels, D, H, W) -> (B, num_classes)`` logits; ``task="segment"``:
``(B, in_channels, D, H, W) -> (B, num_classes, D, H, W)`` (spatial sizes multiples of the product of the strides).
Every role is defined relative to the *reference*: the equivox network of the task (:func:`network_class`) on the
request's group, built from the request's sizes (or given as ``request.reference`` when already built).

======================  ====================================================================================
role (aliases)          network
======================  ====================================================================================
``equivariant``         the reference itself (``InvariantClassifier`` / ``EquivariantUNet`` of the group);
                        with ``match_params``: fields per level matched to a given reference's parameters
``baseline``            its plain twin: the same network on the trivial group, channels scaled to the
                        reference's parameter count (:func:`equivox.baselines.matched_baseline`)
``plain_compute``       the same network on the trivial group at the reference's *tensor* widths (matched
                        compute: same FLOPs, ``|G|`` times the parameters of the plain twin)
``monai`` (monai_unet)  MONAI's network at the reference's parameter count: ``UNet`` (segment,
                        :func:`equivox.baselines.matched_monai_unet`) or ``ResNet`` (classify)
``canonicalized``       the plain twin behind an exactly equivariant canonicalizer over the request's group
                        (:func:`equivox.canonicalization.canonicalize`)
a registered model      that class (:mod:`equivox.nets.registry`) with the request's arguments its constructor takes
a user role             :func:`register_role` ``(name, builder)``: ``builder(request) -> nn.Module``
======================  ====================================================================================

Every role seeds ``torch.manual_seed(request.seed)`` before constructing (and again before a matched network, after
the reference), so the same request builds the same weights whether training or the harness asks.
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from ..baselines import count_parameters, match_channels, matched_baseline, matched_monai_unet
from ..nets.registry import available_models, build_from_spec, get_model, spec_of

__all__ = ["TASKS", "network_class", "ModelRequest", "ModelRole", "EquivariantRole", "PlainTwinRole",
           "MatchedComputeRole", "MonaiRole", "CanonicalizedRole", "RegisteredRole", "CustomRole", "ROLES",
           "register_role", "unregister_role", "get_role", "role_names", "arch_names", "is_arch", "ARCH_CHOICES"]

#: the tasks a role builds for
TASKS = ("classify", "segment")
#: the equivox network of each task: the one place that says "classifier for classify, U-Net for segment"
_NETWORK_CLASS = {"classify": "InvariantClassifier", "segment": "EquivariantUNet"}


def network_class(task: str) -> str:
    """The registered equivox network of ``task``: ``"InvariantClassifier"`` (classify: ``(B, C, D, H, W) ->
    (B, K)``, invariant logits) or ``"EquivariantUNet"`` (segment: ``(B, C, D, H, W) -> (B, K, D, H, W)``,
    equivariant class maps). Raises ``ValueError`` for another task."""
    if task not in _NETWORK_CLASS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    return _NETWORK_CLASS[task]


@dataclass(frozen=True)
class ModelRequest:
    """What a role builds a network from.

    Attributes:
        task: ``"classify"`` or ``"segment"`` (shapes: module docstring).
        in_channels: input channels C. num_classes: K (segmentation: background included).
        group: the reference's group (a name of :mod:`equivox.groups`; already resolved, not ``"auto"``); the
            ``equivariant`` role builds on it, the plain roles on ``"trivial"``.
        sizes: the reference's size arguments: ``channels`` (fields per level), ``strides`` (one fewer), and any of
            ``kernel_size``, ``convs_per_level``, ``hidden_features`` (classify).
        options: further constructor arguments of the reference (``head``, ``class_swaps``, ``norm``, ...); a
            registered model's role passes them to its own constructor; for ``canonicalized``: canonicalizer
            settings (:func:`equivox.canonicalization.canonicalize` keywords).
        seed: ``torch.manual_seed`` before construction; ``None`` leaves the random state alone (timing scripts).
        reference: the reference network when the caller has built it already (the harness matches every row to
            one); else roles that need it build it from this request.
        match_params: ``equivariant`` with a ``reference`` of another group: fields per level chosen so the
            parameter count matches the reference's (ratios of the reference's fields kept).
    """

    task: str
    in_channels: int
    num_classes: int
    group: str = "octa"
    sizes: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    seed: Optional[int] = 0
    reference: Optional[nn.Module] = None
    match_params: bool = False

    def __post_init__(self):
        network_class(self.task)  # checks the task
        for name in ("in_channels", "num_classes"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        clash = sorted(set(self.sizes) & {"spatial_dims", "in_channels", "out_channels", "group"})
        if clash:
            raise ValueError(f"sizes must not hold {', '.join(clash)}: they are the request's own fields "
                             "(in_channels, num_classes, group; networks are 3D)")
        # JSON-able values (lists), as specs store them; the constructors get tuples from build_from_spec
        object.__setattr__(self, "sizes", {k: list(v) if isinstance(v, tuple) else v for k, v in self.sizes.items()})
        object.__setattr__(self, "options", dict(self.options))

    def network_kwargs(self, group: Optional[str] = None, options: bool = True) -> Dict[str, Any]:
        """Constructor arguments of the reference: ``spatial_dims=3``, ``in_channels``, ``out_channels``, the
        sizes, ``group`` (default the request's) and, with ``options``, the options (overriding the others)."""
        kwargs: Dict[str, Any] = dict(spatial_dims=3, in_channels=self.in_channels, out_channels=self.num_classes,
                                      **self.sizes, group=self.group if group is None else group)
        if options:
            kwargs.update(self.options)
        return kwargs

    def seeded(self) -> None:
        """``torch.manual_seed(seed)`` unless ``seed`` is ``None``."""
        if self.seed is not None:
            torch.manual_seed(self.seed)


class ModelRole:
    """One kind of network a run may build (see the module docstring).

    Attributes:
        name: the name a ``TrainConfig.arch`` / ``Competitor.arch`` gives. aliases: other names of the role.
        description: one phrase for messages.
        equivariant: the network has the request's group (else it is plain: no symmetry built in).
        takes_options: ``request.options`` reach a constructor (``TrainConfig.model``, ``--model-arg``).
        arch: a value of ``TrainConfig.arch`` and ``Competitor.arch`` (roles that only wrap are not).
    """

    name: str = ""
    aliases: Tuple[str, ...] = ()
    description: str = ""
    equivariant: bool = False
    takes_options: bool = True
    arch: bool = True

    def build(self, request: ModelRequest) -> nn.Module:
        """The (untrained) network of this role for ``request``."""
        raise NotImplementedError

    def reference_class(self, task: str) -> Optional[str]:
        """The registered class whose constructor ``request.options`` are checked against (``None``: unknown)."""
        return network_class(task)

    def model_group(self, group: str) -> str:
        """The group the network is built on: ``group`` for an equivariant role, else ``"trivial"``."""
        return group if self.equivariant else "trivial"

    def reference(self, request: ModelRequest) -> nn.Module:
        """``request.reference``, or the ``equivariant`` network of ``request`` (seeded) when none was given."""
        return request.reference if request.reference is not None else EquivariantRole().build(request)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class EquivariantRole(ModelRole):
    """The reference: ``network_class(task)`` on ``request.group`` with the request's sizes and options."""

    name, description, equivariant = "equivariant", "the equivariant network of the task", True

    def build(self, request: ModelRequest) -> nn.Module:
        cls = network_class(request.task)
        kwargs = request.network_kwargs()
        request.seeded()
        ref = request.reference
        ref_spec = spec_of(ref) if ref is not None else None
        if request.match_params:
            if ref_spec is None:
                raise ValueError("match_params needs the reference network (request.reference, an equivox network)")
            if ref_spec["kwargs"].get("group") != request.group:
                def build(ch):
                    return build_from_spec({"cls": cls, "kwargs": {**kwargs, "channels": list(ch)}})

                # ratios of the reference's own fields, whatever fields this request asked for
                kwargs["channels"] = list(match_channels(count_parameters(ref), ref_spec["kwargs"]["channels"],
                                                         build))
                request.seeded()  # the matched network's weights do not depend on how many trial builds it took
        return build_from_spec({"cls": cls, "kwargs": kwargs})


class PlainTwinRole(ModelRole):
    """The reference's trivial-group twin at its parameter count (:func:`equivox.baselines.matched_baseline`)."""

    name, description = "baseline", "the plain twin of the equivariant network, parameters matched"

    def build(self, request: ModelRequest) -> nn.Module:
        reference = self.reference(request)
        request.seeded()
        return matched_baseline(reference)


class MatchedComputeRole(ModelRole):
    """The reference's trivial-group twin at its *tensor* widths (``reference.tensor_channels``): the plain network
    with the same FLOPs and activations (about ``|G|`` times the plain twin's parameters). ``class_swaps`` is
    dropped (the trivial group has no reflections to swap classes under)."""

    name, description = "plain_compute", "the plain twin of the equivariant network at its tensor widths"

    def build(self, request: ModelRequest) -> nn.Module:
        reference = self.reference(request)
        kwargs = {k: v for k, v in request.network_kwargs(group="trivial").items() if k != "class_swaps"}
        kwargs["channels"] = list(reference.tensor_channels)
        request.seeded()
        return build_from_spec({"cls": network_class(request.task), "kwargs": kwargs})


class MonaiRole(ModelRole):
    """MONAI's network at the reference's parameter count: segment: ``UNet`` with channels ``(c, 2c, ...)`` over
    one level more than the reference (:func:`equivox.baselines.matched_monai_unet`); classify: a basic-block
    ``ResNet`` ``[1, 1, 1, 1]`` with widths ``(c, 2c, 4c, 8c)`` (3^3 stem, stride 1, no max-pool). Its own
    constructor arguments are not options (use the registered ``"monai.UNet"`` with options for those)."""

    name, aliases = "monai", ("monai_unet",)
    description = ("a MONAI network (UNet for segment, ResNet for classify) matched to the equivariant one's "
                   "parameter count (use arch 'monai.UNet' with model: {...} to give MONAI's own arguments)")
    takes_options = False

    def build(self, request: ModelRequest) -> nn.Module:
        target = count_parameters(self.reference(request))
        request.seeded()
        if request.task == "segment":
            return matched_monai_unet(request.in_channels, request.num_classes, target,
                                      levels=len(request.sizes["channels"]) + 1)
        from monai.networks.nets import ResNet

        def build(ch):
            return ResNet("basic", [1, 1, 1, 1], list(ch), spatial_dims=3, n_input_channels=request.in_channels,
                          num_classes=request.num_classes, conv1_t_size=3, conv1_t_stride=1, no_max_pool=True)

        ch = match_channels(target, [1, 2, 4, 8], build)
        request.seeded()
        return build(ch)


class CanonicalizedRole(ModelRole):
    """The ``inner`` role's network (default the plain twin) behind an exactly equivariant canonicalizer over
    ``request.group``'s grid elements; ``request.options`` are the canonicalizer's settings
    (:func:`equivox.canonicalization.canonicalize` keywords: ``mode``, ``channels``, ``strides``, ``input_size``,
    ``prior_weight``, ...). Not an ``arch``: training and the harness put any network behind a canonicalizer with
    their ``canonicalize`` option, through :meth:`wrap`."""

    name, arch, equivariant = "canonicalized", False, True
    description = "a network behind an exactly equivariant canonicalizer"

    def __init__(self, inner: str = "baseline"):
        self.inner = inner

    def build(self, request: ModelRequest) -> nn.Module:
        inner = get_role(self.inner).build(dataclasses.replace(request, options={}))
        return self.wrap(inner, request.task, request.group, request.seed, in_channels=request.in_channels,
                         **request.options)

    @staticmethod
    def wrap(model: nn.Module, task: str, group: str, seed: Optional[int], **settings) -> nn.Module:
        """``model`` (any ``nn.Module`` with the task's shapes) behind a canonicalizer over ``group``'s grid-exact
        elements, seeded with ``seed + 1`` (the network itself was seeded with ``seed``)."""
        from ..canonicalization import canonicalize

        if seed is not None:
            torch.manual_seed(seed + 1)
        return canonicalize(model, group, task, **settings)


class RegisteredRole(ModelRole):
    """A registered model (:mod:`equivox.nets.registry`) by its name: built with the request's arguments its
    constructor accepts (``spatial_dims``, ``in_channels``, ``out_channels``, the sizes, ``group``), then the
    options (every constructor argument)."""

    def __init__(self, model: str):
        get_model(model)  # raises for an unknown name
        self.name, self.description = model, f"the registered model {model}"

    def _params(self):
        params = inspect.signature(get_model(self.name)).parameters
        return None if any(p.kind == p.VAR_KEYWORD for p in params.values()) else params

    @property
    def equivariant(self) -> bool:  # type: ignore[override]
        params = self._params()
        return params is None or "group" in params

    def reference_class(self, task: str) -> Optional[str]:
        return self.name

    def build(self, request: ModelRequest) -> nn.Module:
        kwargs = request.network_kwargs(options=False)
        params = self._params()
        if params is not None:
            kwargs = {k: v for k, v in kwargs.items() if k in params}
        kwargs.update(request.options)
        request.seeded()
        return build_from_spec({"cls": self.name, "kwargs": kwargs})


class CustomRole(ModelRole):
    """A user's role: ``builder(request: ModelRequest) -> nn.Module`` (seeded before it is called)."""

    def __init__(self, name: str, builder: Callable[[ModelRequest], nn.Module], description: str = "",
                 equivariant: bool = False, tasks: Sequence[str] = TASKS):
        if not callable(builder):
            raise TypeError(f"role {name!r}: builder must be callable builder(request) -> nn.Module")
        self.name, self.builder, self.equivariant = name, builder, bool(equivariant)
        self.description = description or f"the user role {name}"
        self.tasks = tuple(tasks)

    def reference_class(self, task: str) -> Optional[str]:
        return None

    def build(self, request: ModelRequest) -> nn.Module:
        if request.task not in self.tasks:
            raise ValueError(f"role {self.name!r} builds for {', '.join(self.tasks)}, not {request.task!r}")
        request.seeded()
        net = self.builder(request)
        if not isinstance(net, nn.Module):
            raise ValueError(f"role {self.name!r}: builder returned {type(net).__name__}, not an nn.Module")
        return net


#: the registry: role name -> role (built-in roles first; :func:`register_role` adds users')
ROLES: Dict[str, ModelRole] = {r.name: r for r in (EquivariantRole(), PlainTwinRole(), MatchedComputeRole(),
                                                    MonaiRole(), CanonicalizedRole())}
_BUILTIN = frozenset(ROLES)
_ALIASES: Dict[str, str] = {a: r.name for r in ROLES.values() for a in r.aliases}


def register_role(name: str, builder: Callable[[ModelRequest], nn.Module], *, description: str = "",
                  equivariant: bool = False, tasks: Sequence[str] = TASKS, replace: bool = False) -> ModelRole:
    """Add a role: ``builder(request: ModelRequest) -> nn.Module`` (the module docstring says the shapes). Returns
    the :class:`CustomRole`. Raises ``ValueError`` for a built-in name, an alias, a registered model's name, or a
    taken name without ``replace``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"role name must be a non-empty string, got {name!r}")
    if name in _BUILTIN or name in _ALIASES or name in available_models():
        raise ValueError(f"{name!r} is a built-in role or a registered model; choose another role name")
    if name in ROLES and not replace:
        raise ValueError(f"role {name!r} is already registered (pass replace=True to replace it)")
    ROLES[name] = CustomRole(name, builder, description, equivariant, tasks)
    return ROLES[name]


def unregister_role(name: str) -> ModelRole:
    """Remove a user role (built-in roles stay). Returns it."""
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is a built-in role and cannot be removed")
    if name not in ROLES:
        raise ValueError(f"no role {name!r}; registered: {', '.join(ROLES)}")
    return ROLES.pop(name)


def get_role(name: str) -> ModelRole:
    """The role ``name``: a role's name or alias, or a registered model's name (:class:`RegisteredRole`).

    Raises:
        ValueError: unknown name; the message lists the roles and the registered models.
    """
    name = _ALIASES.get(name, name)
    if name in ROLES:
        return ROLES[name]
    if isinstance(name, str) and name in available_models():
        return RegisteredRole(name)
    raise ValueError(f"unknown model role {name!r}; roles: {', '.join(arch_names())}; registered models: "
                     f"{', '.join(available_models())}")


def role_names() -> Tuple[str, ...]:
    """Names of the registered roles (built-in first), without aliases."""
    return tuple(ROLES)


def arch_names() -> Tuple[str, ...]:
    """The role names (and aliases) that are ``arch`` values: what ``TrainConfig.arch`` and ``Competitor.arch``
    accept besides a registered model's name."""
    names: List[str] = []
    for role in ROLES.values():
        if role.arch:
            names += [role.name, *role.aliases]
    return tuple(names)


def is_arch(name: str) -> bool:
    """Whether ``name`` is an ``arch`` value: a role (or alias) that is an arch, or a registered model's name."""
    role = ROLES.get(_ALIASES.get(name, name))
    return (role is not None and role.arch) or name in available_models()


#: the built-in ``arch`` values (the roles and their aliases); user roles added later answer :func:`is_arch`
ARCH_CHOICES = arch_names()
