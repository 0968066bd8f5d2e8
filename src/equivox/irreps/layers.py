"""Norm and gated nonlinearity of irreps fields, on equivox's voxel layout ``(B, n_fields * dim, D, H, W)``.

* :class:`IrrepsNorm`: ``e3nn.nn.BatchNorm`` (``normalization="component"``) per irrep instance of every field:
  a ``0e`` channel is centred and scaled by its standard deviation, an ``l > 0`` instance is scaled by the root
  of its mean squared component; an affine weight per instance and a bias per scalar. ``"batch"`` statistics over
  batch and space (running averages in eval mode), ``"instance"`` per sample. Equivariant for every rotation:
  the statistics are invariant and each instance is multiplied by a scalar.
* :class:`IrrepsGate`: ``e3nn.nn.Gate``: scalars through the activation, gates through a sigmoid, each gated
  irrep multiplied by its gate. The sigmoid gates stay in the field as scalars (so a field keeps its type).

Both are :class:`~equivox.nn.EquivariantModule` s (scriptable) from and to ``n_fields`` irreps fields of their
group (``in_spec == out_spec``: the field's e3nn irreps as an escnn representation of SO(3) / O(3),
:func:`equivox.irreps.bridge.irreps_repr`); ``check_equivariance`` acts on the channels by e3nn's Wigner D matrices.
Their export: the batch norm in eval mode is a per-channel affine map (a ``BatchNorm3d`` with unit statistics), the
instance norm a :class:`PlainIrrepsInstanceNorm`, the gate a :class:`PlainIrrepsGate` (plain torch, same code).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from torch import nn

from ..core import PlainModule, affine_batchnorm
from ..nn.fields import FieldSpec
from ..nn.fieldwise import make_activation
from ..nn.module import EquivariantModule

__all__ = ["FieldLayout", "IrrepsGate", "IrrepsNorm", "PlainIrrepsGate", "PlainIrrepsInstanceNorm", "field_layout",
           "irreps_field_spec"]


@dataclass(frozen=True)
class FieldLayout:
    """Channel roles inside one field (indices into its ``dim`` channels).

    Attributes:
        dim: channels per field.
        instance: irrep instance of every channel (``dim`` entries, values ``0 .. n_instances - 1``).
        instance_dims: ``2l + 1`` of every instance.
        scalars: channels of ``0e`` instances (centred by the norm).
        act, gates, gated: the gate's roles: channels through the activation, gate channels (sigmoid), gated
            channels; ``gate_of[j]`` is the position in ``gates`` of the gate of ``gated[j]``.
        irreps: the field's e3nn irreps string (channel order), set by :func:`field_layout`; ``None``: read from
            ``instance_dims`` and ``scalars`` (``0e`` scalars, ``0o`` other 1-dim instances, spherical-harmonic
            parity ``(-1)^l`` for ``l > 0``).
    """

    dim: int
    instance: List[int]
    instance_dims: List[int]
    scalars: List[int]
    act: List[int]
    gates: List[int]
    gated: List[int]
    gate_of: List[int]
    irreps: Optional[str] = None

    def field_irreps(self) -> str:
        """e3nn irreps of one field (:attr:`irreps`, or read from the instances)."""
        if self.irreps is not None:
            return self.irreps
        parts, pos = [], 0
        for d in self.instance_dims:
            l = (d - 1) // 2
            parts.append(f"1x{l}{'e' if (pos in self.scalars if d == 1 else l % 2 == 0) else 'o'}")
            pos += d
        return "+".join(parts)


def field_layout(irreps, n_act: Optional[int] = None) -> FieldLayout:
    """Layout of a field ``scalars + gates + gated`` (:class:`~equivox.irreps.IrrepsFields`): ``n_act`` leading
    ``0e`` channels go through the activation (default: all ``0e`` channels but one gate per non-scalar irrep)."""
    from e3nn import o3

    irreps = o3.Irreps(irreps)
    instance, dims, scalars, gated, gate_of = [], [], [], [], []
    pos = 0
    for mul, ir in irreps:
        for _ in range(mul):
            n = ir.dim
            instance += [len(dims)] * n
            if ir.l == 0 and ir.p == 1:
                scalars.append(pos)
            dims.append(n)
            pos += n
    n_gated = sum(1 for d, s in zip(dims, _instance_starts(dims)) if s not in scalars)
    n_act = len(scalars) - n_gated if n_act is None else n_act
    gates = scalars[n_act:n_act + n_gated]
    g = 0
    for d, s in zip(dims, _instance_starts(dims)):
        if s in scalars:
            continue
        gated += list(range(s, s + d))
        gate_of += [g] * d
        g += 1
    return FieldLayout(pos, instance, dims, scalars, scalars[:n_act], gates, gated, gate_of, str(irreps))


def irreps_field_spec(layout: FieldLayout, n_fields: int, group=None) -> FieldSpec:
    """The :class:`~equivox.nn.FieldSpec` of ``n_fields`` fields of ``layout``'s irreps on ``group`` (an SO(3) / O(3)
    group; default ``"o3_irreps"``: the norm and the gate are equivariant under rotations and reflections whatever
    the parities). The field's representation is :func:`equivox.irreps.bridge.irreps_repr` named
    ``irreps_field[<irreps>]``, the group's hidden representation when the irreps are its hidden field's."""
    from e3nn import o3

    from ..groups import get_group
    from .bridge import irreps_repr, is_irreps_group
    from .fields import IrrepsFields

    g = get_group(group if group is not None else "o3_irreps")
    if not is_irreps_group(g.name):
        raise ValueError(f"irreps fields need an SO(3) / O(3) group, got {g.name!r}")
    irreps = o3.Irreps(layout.field_irreps())
    if irreps.dim != layout.dim:
        raise ValueError(f"layout irreps {irreps} have {irreps.dim} channels, the layout {layout.dim}")

    def instances(ir) -> list:
        return [(i.l, i.p) for mul, i in o3.Irreps(ir) for _ in range(mul)]

    fields = g.spec.fields
    if isinstance(fields, IrrepsFields) and instances(fields.field_irreps()) == instances(irreps):
        name = g.hidden_repr.name  # the group's own hidden field, however the irreps are written
    else:
        name = irreps_repr(g.gspace, irreps, f"irreps_field[{irreps}]").name
    return FieldSpec(g.name, (name,) * int(n_fields))


def _instance_starts(dims: List[int]) -> List[int]:
    out, pos = [], 0
    for d in dims:
        out.append(pos)
        pos += d
    return out


def _moments(y: torch.Tensor, dims: List[int], scalars: torch.Tensor, instance: torch.Tensor,
             instance_dims: torch.Tensor, n_instances: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mean of the scalar channels and mean squared component of every irrep instance of ``y`` ``(B, C, S)``
    over ``dims`` (``[0, 2]``: batch statistics ``(C,)``; ``[2]``: per sample ``(B, C)``)."""
    chan_mean = y.mean(dim=dims)  # (C,) or (B, C)
    mean_sc = chan_mean.index_select(-1, scalars)
    mean = torch.zeros_like(chan_mean).index_copy(-1, scalars, mean_sc)
    sq = (y - mean.unsqueeze(-1)).pow(2).mean(dim=dims)
    shape = list(sq.shape[:-1])
    shape.append(n_instances)
    var = sq.new_zeros(shape).index_add(-1, instance, sq) / instance_dims
    return mean_sc, var


def _scale_shift(weight: torch.Tensor, bias: torch.Tensor, mean_sc: torch.Tensor, var: torch.Tensor, eps: float,
                 instance: torch.Tensor, scalars: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(scale, shift)`` of the norm from the statistics."""
    scale = (weight / (var + eps).sqrt()).index_select(-1, instance)
    shift_sc = bias - mean_sc * scale.index_select(-1, scalars)
    shift = torch.zeros_like(scale).index_copy(-1, scalars, shift_sc)
    return scale, shift


class IrrepsNorm(EquivariantModule):
    """e3nn-style batch / instance norm of ``n_fields`` irreps fields (see the module docstring).

    Args:
        layout: :class:`FieldLayout` of one field. n_fields: fields. norm: ``"batch"``, ``"instance"`` or ``None``.
        momentum, eps: as ``nn.BatchNorm3d``.
        group: SO(3) / O(3) group of the fields (``in_spec`` / ``out_spec``, :func:`irreps_field_spec`); default
            ``"o3_irreps"``.

    Shapes: ``(B, n_fields * dim, D, H, W)`` -> same. ``in_spec == out_spec``: ``n_fields`` fields of the layout's
    irreps. Export: ``nn.Identity`` (no norm), an affine ``BatchNorm3d`` (batch), :class:`PlainIrrepsInstanceNorm`
    (instance).
    """

    def __init__(self, layout: FieldLayout, n_fields: int, norm: Optional[str] = "batch", momentum: float = 0.1,
                 eps: float = 1e-5, *, group=None):
        super().__init__()
        if norm not in ("batch", "instance", None):
            raise ValueError(f"norm must be 'batch', 'instance' or None, got {norm!r}")
        self.mode = norm or "none"
        self.n_fields, self.dim, self.momentum, self.eps = int(n_fields), layout.dim, float(momentum), float(eps)
        n_inst = len(layout.instance_dims)
        inst = torch.tensor(layout.instance)
        self.n_instances = n_fields * n_inst
        self.register_buffer("instance", (inst[None, :] + n_inst * torch.arange(n_fields)[:, None]).reshape(-1),
                             persistent=False)
        self.register_buffer("instance_dims", torch.tensor(layout.instance_dims, dtype=torch.float32)
                             .repeat(n_fields), persistent=False)
        sc = torch.tensor(layout.scalars)
        self.register_buffer("scalars", (sc[None, :] + layout.dim * torch.arange(n_fields)[:, None]).reshape(-1),
                             persistent=False)
        if self.mode != "none":
            self.weight = nn.Parameter(torch.ones(self.n_instances))
            self.bias = nn.Parameter(torch.zeros(self.scalars.numel()))
        # saved in batch mode only; present in every mode so that one forward scripts for all
        self.register_buffer("running_mean", torch.zeros(self.scalars.numel()), persistent=self.mode == "batch")
        self.register_buffer("running_var", torch.ones(self.n_instances), persistent=self.mode == "batch")
        self.in_spec = self.out_spec = irreps_field_spec(layout, n_fields, group)

    def _affine(self, y: torch.Tensor):
        """Per-channel ``(scale, shift)`` (``(C,)`` in batch mode, ``(B, C)`` per sample) for ``y (B, C, S)``."""
        per_sample = self.mode == "instance"
        if self.mode == "batch" and not self.training:
            mean_sc = self.running_mean
            var = self.running_var
        else:
            dims = [2] if per_sample else [0, 2]
            mean_sc, var = _moments(y, dims, self.scalars, self.instance, self.instance_dims, self.n_instances)
            if self.mode == "batch":
                with torch.no_grad():
                    self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean_sc.detach())
                    self.running_var.mul_(1 - self.momentum).add_(self.momentum * var.detach())
        return _scale_shift(self.weight, self.bias, mean_sc, var, self.eps, self.instance, self.scalars)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "none":
            return x
        b, c = x.shape[0], x.shape[1]
        y = x.reshape(b, c, -1)
        scale, shift = self._affine(y)
        return (y * scale.unsqueeze(-1) + shift.unsqueeze(-1)).reshape(x.shape)

    def _export(self) -> nn.Module:
        if self.mode == "none":
            return nn.Identity()
        if self.mode == "instance":
            return PlainIrrepsInstanceNorm(self)
        with torch.no_grad():
            scale, shift = self._affine(torch.zeros(1, self.instance.numel(), 1, device=self.weight.device))
        return affine_batchnorm(scale.reshape(-1), shift.reshape(-1))

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, {self.n_fields} fields x {self.dim}, {self.n_instances} irrep instances"


class PlainIrrepsInstanceNorm(PlainModule):
    """The export of an instance-mode :class:`IrrepsNorm` (plain torch, same computation): per-sample statistics,
    the norm's affine weights copied."""

    def __init__(self, norm: "IrrepsNorm"):
        super().__init__()
        self.n_instances, self.eps = int(norm.n_instances), float(norm.eps)
        for name in ("instance", "instance_dims", "scalars"):
            self.register_buffer(name, getattr(norm, name).detach().clone(), persistent=False)
        self.register_buffer("weight", norm.weight.detach().clone())
        self.register_buffer("bias", norm.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[0], x.shape[1]
        y = x.reshape(b, c, -1)
        mean_sc, var = _moments(y, [2], self.scalars, self.instance, self.instance_dims, self.n_instances)
        scale, shift = _scale_shift(self.weight, self.bias, mean_sc, var, self.eps, self.instance, self.scalars)
        return (y * scale.unsqueeze(-1) + shift.unsqueeze(-1)).reshape(x.shape)


def _gate(y: torch.Tensor, activated: torch.Tensor, gate_index: torch.Tensor, gated_index: torch.Tensor,
          gate_of: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """The gate on ``y`` ``(B, F, dim, D, H, W)`` given its activated channels: sigmoid gates, gated irreps
    multiplied by their gate, every channel back in its place."""
    g = torch.sigmoid(y.index_select(2, gate_index))
    out = torch.cat([activated, g, y.index_select(2, gated_index) * g.index_select(2, gate_of)], dim=2)
    return out.index_select(2, inverse)


class IrrepsGate(EquivariantModule):
    """Gated nonlinearity (``e3nn.nn.Gate`` semantics) on ``n_fields`` fields of :class:`FieldLayout` ``layout``:
    ``act`` on the ``layout.act`` channels, a sigmoid on the gates, ``gated[j] *= sigmoid(gates[gate_of[j]])``;
    every channel stays where it was. ``(B, n_fields * dim, D, H, W)`` -> same. ``in_spec == out_spec``:
    ``n_fields`` fields of the layout's irreps on ``group`` (:func:`irreps_field_spec`; default ``"o3_irreps"``).
    Scriptable; exports as a :class:`PlainIrrepsGate`."""

    def __init__(self, layout: FieldLayout, n_fields: int, act="elu", *, group=None):
        super().__init__()
        self.n_fields, self.dim = int(n_fields), layout.dim
        self.act = make_activation(act)
        self.register_buffer("act_index", torch.tensor(layout.act, dtype=torch.long), persistent=False)
        self.register_buffer("gate_index", torch.tensor(layout.gates, dtype=torch.long), persistent=False)
        self.register_buffer("gated_index", torch.tensor(layout.gated, dtype=torch.long), persistent=False)
        self.register_buffer("gate_of", torch.tensor(layout.gate_of, dtype=torch.long), persistent=False)
        order = layout.act + layout.gates + layout.gated
        if sorted(order) != list(range(layout.dim)):
            raise ValueError(f"gate layout does not cover the {layout.dim} channels of a field once: {order}")
        self.register_buffer("inverse", torch.argsort(torch.tensor(order)), persistent=False)
        self.in_spec = self.out_spec = irreps_field_spec(layout, n_fields, group)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, d, h, w = x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4]
        y = x.reshape(b, self.n_fields, self.dim, d, h, w)
        out = _gate(y, self.act(y.index_select(2, self.act_index)), self.gate_index, self.gated_index, self.gate_of,
                    self.inverse)
        return out.reshape(b, c, d, h, w)

    def _export(self) -> nn.Module:
        from ..export import to_plain

        return PlainIrrepsGate(self.n_fields, self.dim, to_plain(self.act),
                               *(getattr(self, n).clone() for n in ("act_index", "gate_index", "gated_index",
                                                                    "gate_of", "inverse")))

    def extra_repr(self) -> str:
        return (f"{self.n_fields} fields x {self.dim}: {self.act_index.numel()} activated, "
                f"{self.gate_index.numel()} gates, {self.gated_index.numel()} gated channels")


class PlainIrrepsGate(PlainModule):
    """The export of an :class:`IrrepsGate` (plain torch, same computation)."""

    def __init__(self, n_fields: int, dim: int, act: nn.Module, act_index: torch.Tensor, gate_index: torch.Tensor,
                 gated_index: torch.Tensor, gate_of: torch.Tensor, inverse: torch.Tensor):
        super().__init__()
        self.n_fields, self.dim = int(n_fields), int(dim)
        self.act = act
        for name, t in (("act_index", act_index), ("gate_index", gate_index), ("gated_index", gated_index),
                        ("gate_of", gate_of), ("inverse", inverse)):
            self.register_buffer(name, t, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, d, h, w = x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4]
        y = x.reshape(b, self.n_fields, self.dim, d, h, w)
        out = _gate(y, self.act(y.index_select(2, self.act_index)), self.gate_index, self.gated_index, self.gate_of,
                    self.inverse)
        return out.reshape(b, c, d, h, w)
