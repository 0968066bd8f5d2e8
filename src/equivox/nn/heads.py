"""Per-voxel segmentation heads: hidden fields -> class logits."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..core import PlainModule
from ..export import to_plain
from .conv import EquivariantConv3d
from .fields import FieldSpec
from .fieldwise import NormSpec, make_norm
from .module import EquivariantModule
from .pooling import InvariantPooling

__all__ = ["GroupStatsHead", "StatsHead"]


class StatsHead(PlainModule):
    """Plain form of :class:`GroupStatsHead`: ``classes(norm([mean(x), pool(x), -pool(-x)]))``."""

    def __init__(self, mean: nn.Module, pool: nn.Module, norm: nn.Module, classes: nn.Module):
        super().__init__()
        self.mean, self.pool, self.norm, self.classes = mean, pool, norm, classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classes(self.norm(torch.cat([self.mean(x), self.pool(x), -self.pool(-x)], 1)))


class GroupStatsHead(EquivariantModule):
    """Invariant per-voxel logits from three statistics of every field over the group: mean, max and min.

    A linear equivariant map from a regular field to a scalar sees only the field's mean, and after a pointwise
    nonlinearity that mean is dominated by a constant offset: a 1x1 head on it starts with large, nearly
    constant class biases and weak spatial signal (measured on the bundled chest CT, docs/segmentation.md). This
    head adds the max and min over the group (:class:`InvariantPooling`), normalizes the ``3 F`` invariants
    (``norm``, so the offset is removed and scales match) and maps them to the classes with a 1x1 convolution.

    Args:
        in_spec: hidden fields of the last decoder level (any registered group; for SO(3)/O(3) max and min are
            taken over the group's sampling grid).
        out_channels: number of classes K.
        norm: ``"batch"``, ``"instance"`` or ``None`` on the invariants.

    Shapes: ``(B, in_spec.size, D, H, W) -> (B, K, D, H, W)``; exactly invariant logits for every grid-exact
    element (the statistics are; everything after them is per voxel).
    """

    def __init__(self, in_spec: FieldSpec, out_channels: int, norm: NormSpec = "batch"):
        super().__init__()
        n = len(in_spec)
        self.in_spec, self.out_spec = in_spec, FieldSpec.scalar(in_spec.group, out_channels)
        self.mean = EquivariantConv3d(in_spec, FieldSpec.scalar(in_spec.group, n), 1, bias=False)
        self.pool = InvariantPooling(in_spec.group, n, "group")
        self.norm = make_norm(norm, 3 * n)
        self.classes = nn.Conv3d(3 * n, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        high, low = self.pool.extremes(x)  # = pool(x), -pool(-x) (as the export computes them), bit for bit
        return self.classes(self.norm(torch.cat([self.mean(x), high, low], 1)))

    def _export(self) -> nn.Module:
        return StatsHead(to_plain(self.mean), to_plain(self.pool), to_plain(self.norm), to_plain(self.classes))
