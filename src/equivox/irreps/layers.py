"""Norm and gated nonlinearity of irreps fields, on equivox's voxel layout ``(B, n_fields * dim, D, H, W)``.

* :class:`IrrepsNorm`: ``e3nn.nn.BatchNorm`` (``normalization="component"``) per irrep instance of every field:
  a ``0e`` channel is centred and scaled by its standard deviation, an ``l > 0`` instance is scaled by the root
  of its mean squared component; an affine weight per instance and a bias per scalar. ``"batch"`` statistics over
  batch and space (running averages in eval mode), ``"instance"`` per sample. Equivariant for every rotation:
  the statistics are invariant and each instance is multiplied by a scalar.
* :class:`IrrepsGate`: ``e3nn.nn.Gate``: scalars through the activation, gates through a sigmoid, each gated
  irrep multiplied by its gate. The sigmoid gates stay in the field as scalars (so a field keeps its type).

Both are plain torch (scriptable). Their export: the batch norm in eval mode is a per-channel affine map (a
``BatchNorm3d`` with unit statistics), the gate is copied.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import nn

from ..core import affine_batchnorm
from ..nn.fieldwise import make_activation

__all__ = ["FieldLayout", "IrrepsGate", "IrrepsNorm", "field_layout"]


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
    """

    dim: int
    instance: List[int]
    instance_dims: List[int]
    scalars: List[int]
    act: List[int]
    gates: List[int]
    gated: List[int]
    gate_of: List[int]


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
    return FieldLayout(pos, instance, dims, scalars, scalars[:n_act], gates, gated, gate_of)


def _instance_starts(dims: List[int]) -> List[int]:
    out, pos = [], 0
    for d in dims:
        out.append(pos)
        pos += d
    return out


class IrrepsNorm(nn.Module):
    """e3nn-style batch / instance norm of ``n_fields`` irreps fields (see the module docstring).

    Args:
        layout: :class:`FieldLayout` of one field. n_fields: fields. norm: ``"batch"``, ``"instance"`` or ``None``.
        momentum, eps: as ``nn.BatchNorm3d``.

    Shapes: ``(B, n_fields * dim, D, H, W)`` -> same.
    """

    def __init__(self, layout: FieldLayout, n_fields: int, norm: Optional[str] = "batch", momentum: float = 0.1,
                 eps: float = 1e-5):
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

    def _affine(self, y: torch.Tensor):
        """Per-channel ``(scale, shift)`` (``(C,)`` in batch mode, ``(B, C)`` per sample) for ``y (B, C, S)``."""
        per_sample = self.mode == "instance"
        if self.mode == "batch" and not self.training:
            mean_sc = self.running_mean
            var = self.running_var
        else:
            dims = [2] if per_sample else [0, 2]
            chan_mean = y.mean(dim=dims)  # (C,) or (B, C)
            mean_sc = chan_mean.index_select(-1, self.scalars)
            mean = torch.zeros_like(chan_mean).index_copy(-1, self.scalars, mean_sc)
            sq = (y - mean.unsqueeze(-1)).pow(2).mean(dim=dims)
            shape = list(sq.shape[:-1])
            shape.append(self.n_instances)
            var = sq.new_zeros(shape).index_add(-1, self.instance, sq) / self.instance_dims
            if self.mode == "batch":
                with torch.no_grad():
                    self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean_sc.detach())
                    self.running_var.mul_(1 - self.momentum).add_(self.momentum * var.detach())
        scale = (self.weight / (var + self.eps).sqrt()).index_select(-1, self.instance)
        shift_sc = self.bias - mean_sc * scale.index_select(-1, self.scalars)
        shift = torch.zeros_like(scale).index_copy(-1, self.scalars, shift_sc)
        return scale, shift

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
            return copy.deepcopy(self).eval()
        with torch.no_grad():
            scale, shift = self._affine(torch.zeros(1, self.instance.numel(), 1, device=self.weight.device))
        return affine_batchnorm(scale.reshape(-1), shift.reshape(-1))

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, {self.n_fields} fields x {self.dim}, {self.n_instances} irrep instances"


class IrrepsGate(nn.Module):
    """Gated nonlinearity (``e3nn.nn.Gate`` semantics) on ``n_fields`` fields of :class:`FieldLayout` ``layout``:
    ``act`` on the ``layout.act`` channels, a sigmoid on the gates, ``gated[j] *= sigmoid(gates[gate_of[j]])``;
    every channel stays where it was. ``(B, n_fields * dim, D, H, W)`` -> same. Scriptable; exports as itself."""

    def __init__(self, layout: FieldLayout, n_fields: int, act="elu"):
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, d, h, w = x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4]
        y = x.reshape(b, self.n_fields, self.dim, d, h, w)
        g = torch.sigmoid(y.index_select(2, self.gate_index))
        out = torch.cat([self.act(y.index_select(2, self.act_index)), g,
                         y.index_select(2, self.gated_index) * g.index_select(2, self.gate_of)], dim=2)
        return out.index_select(2, self.inverse).reshape(b, c, d, h, w)

    def _export(self) -> nn.Module:
        return copy.deepcopy(self)

    def extra_repr(self) -> str:
        return (f"{self.n_fields} fields x {self.dim}: {self.act_index.numel()} activated, "
                f"{self.gate_index.numel()} gates, {self.gated_index.numel()} gated channels")
