"""Invariant maps: hidden fields -> rotation-invariant scalar channels.

* ``"group"`` pooling: maximum over a field's channels (regular fields: the group elements) or over its grid
  samples (Fourier fields). Exact for every element of a finite group; for SO(3)/O(3) exact for the grid-exact
  elements and approximate otherwise.
* ``"norm"`` pooling: Euclidean norm of each irreducible component of a field (after escnn's change of basis).
  Exactly invariant for every group element, also for SO(3)/O(3).
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from ..core import PlainModule, grouped_1x1
from ..groups import get_group
from .fields import FieldSpec
from .module import EquivariantModule

__all__ = ["FieldMax", "InvariantPooling", "IrrepNorm"]


class FieldMax(PlainModule):
    """Plain form of group pooling: max over each field's ``field_size`` channels,
    ``(B, F * field_size, D, H, W) -> (B, F, D, H, W)``."""

    def __init__(self, n_fields: int, field_size: int):
        super().__init__()
        self.n_fields = int(n_fields)
        self.field_size = int(field_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, d, h, w = x.shape[0], x.shape[2], x.shape[3], x.shape[4]
        return x.reshape(b, self.n_fields, self.field_size, d, h, w).amax(dim=2)

    def extra_repr(self) -> str:
        return f"{self.n_fields} fields x {self.field_size}"


class IrrepNorm(PlainModule):
    """Plain form of norm pooling: ``sqrt(assign((Q_inv x)^2) + 1e-12)`` with two grouped 1x1x1 convolutions.

    ``(B, F * field_size, D, H, W) -> (B, F * n_irreps, D, H, W)``.
    """

    def __init__(self, to_irreps: nn.Conv3d, assign: nn.Conv3d):
        super().__init__()
        self.to_irreps = to_irreps
        self.assign = assign

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.assign(self.to_irreps(x).pow(2)) + 1e-12).sqrt()


class InvariantPooling(EquivariantModule):
    """Per-voxel invariant pooling of ``n_fields`` hidden fields.

    Args:
        group: registered group name.
        n_fields: number of hidden fields.
        mode: ``"group"``, ``"norm"``, or ``None`` (the group's field kind decides: ``"group"`` for regular
            fields, ``"norm"`` for the Fourier fields of SO(3)/O(3)).

    Shapes: ``(B, n_fields * field_size, D, H, W) -> (B, out_channels, D, H, W)`` with ``out_channels`` =
    ``n_fields`` (group pooling) or ``n_fields * n_irreps`` (norm pooling).

    Export: :class:`FieldMax` (after a grouped 1x1x1 ``Conv3d`` to the grid samples for sampled fields) or
    :class:`IrrepNorm`.
    """

    def __init__(self, group: str, n_fields: int, mode=None):
        super().__init__()
        g = get_group(group)
        mode = mode or g.default_pooling
        if mode not in ("group", "norm"):
            raise ValueError(f"pooling mode must be 'group' or 'norm', got {mode!r}")
        self.mode = mode
        self.n_fields = n_fields
        self.field_size = g.field_size
        self.in_spec = FieldSpec.hidden(g, n_fields)
        if mode == "group":
            self.out_channels = n_fields
            mats = g.sampling_matrices
            if mats is not None:
                self.register_buffer("A", mats[0].clone(), persistent=False)
            else:
                self.A = None
        else:
            rep = g.hidden_repr
            q_inv = torch.as_tensor(rep.change_of_basis_inv, dtype=torch.float32)
            group_obj = g.gspace.fibergroup
            sizes = [group_obj.irrep(*irr).size for irr in rep.irreps]
            assign = torch.zeros(len(sizes), rep.size)
            pos = 0
            for i, s in enumerate(sizes):
                assign[i, pos:pos + s] = 1.0
                pos += s
            self.register_buffer("Q_inv", q_inv, persistent=False)
            self.register_buffer("assign", assign, persistent=False)
            self.out_channels = n_fields * len(sizes)
        self.out_spec = FieldSpec.scalar(g, self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "group":
            return self._group_values(x).amax(dim=2)
        b, c, d, h, w = x.shape
        bf = b * self.n_fields
        # batched products, the matrices broadcast over batch and fields
        y = torch.bmm(self.Q_inv.expand(bf, *self.Q_inv.shape), x.reshape(bf, self.field_size, d * h * w)).pow(2)
        y = torch.bmm(self.assign.expand(bf, *self.assign.shape), y)
        return (y + 1e-12).sqrt().view(b, self.out_channels, d, h, w)

    def extremes(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(max, min)`` over each field's channels (or grid samples): ``(self(x), -self(-x))`` of group pooling,
        bit for bit (negation is exact), from one view of ``x`` (and one sampling)."""
        if self.mode != "group":
            raise ValueError("extremes() is group pooling's (mode='group')")
        y = self._group_values(x)
        return y.amax(dim=2), y.amin(dim=2)

    def _group_values(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, F, field_size or samples, D, H, W)``: the values group pooling takes the maximum of."""
        b, c, d, h, w = x.shape
        if self.A is None:
            return x.reshape(b, self.n_fields, self.field_size, d, h, w)
        bf, samples = b * self.n_fields, self.A.shape[0]
        y = torch.bmm(self.A.expand(bf, samples, self.field_size), x.reshape(bf, self.field_size, d * h * w))
        return y.view(b, self.n_fields, samples, d, h, w)

    def _export(self) -> nn.Module:
        if self.mode == "group":
            if self.A is None:
                return FieldMax(self.n_fields, self.field_size)
            return nn.Sequential(grouped_1x1(self.A, self.n_fields), FieldMax(self.n_fields, self.A.shape[0]))
        return IrrepNorm(grouped_1x1(self.Q_inv, self.n_fields), grouped_1x1(self.assign, self.n_fields))

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, {self.n_fields} fields -> {self.out_channels} invariant channels"
