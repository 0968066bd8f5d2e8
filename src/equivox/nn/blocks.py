"""Equivariant building blocks: convolution + normalization + nonlinearity, and a residual unit on field types.

(:class:`FieldResidualUnit` takes field types; the MONAI-signature residual unit is
:class:`equivox.nets.EquivariantResidualUnit`.)"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..core import PlainModule
from ..export import to_plain
from .conv import EquivariantConv3d
from .fields import FieldSpec
from .fieldwise import ActSpec, FieldNormAct, NormSpec, per_field_activation
from .module import EquivariantModule, as_field_spec
from .pooling import InvariantPooling

__all__ = ["EquivariantConvBlock", "FieldResidualUnit", "Residual", "invariant_voxel_head"]


class Residual(PlainModule):
    """Plain form of :class:`FieldResidualUnit`: ``block(x) + skip(x)``, ``(B, C, D, H, W) -> (B, C', D, H, W)``."""

    def __init__(self, block: nn.Module, skip: nn.Module):
        super().__init__()
        self.block = block
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + self.skip(x)


class EquivariantConvBlock(EquivariantModule):
    """``n_convs`` x (equivariant conv -> field norm -> nonlinearity [-> field dropout]).

    Args:
        in_type: input fields (:class:`FieldSpec` or escnn ``FieldType``), e.g. ``FieldSpec.scalar("octa", 1)``.
        out_fields: number of hidden output fields of the group (``out_fields * field_size`` channels).
        kernel_size, norm, act, dropout: as :class:`EquivariantConv3d` / :class:`FieldNormAct`.
        n_convs: number of convolutions (the first maps ``in_type`` to hidden fields).

    Shapes: ``(B, in_type.size, D, H, W) -> (B, out_fields * field_size, D, H, W)``. Exports to an
    ``nn.Sequential`` of ``Conv3d`` / norm / activation layers.
    """

    def __init__(self, in_type, out_fields: int, kernel_size: int = 3, norm: NormSpec = "batch",
                 act: ActSpec = "elu", dropout: float = 0.0, n_convs: int = 2):
        super().__init__()
        in_spec = as_field_spec(in_type)
        conv0 = EquivariantConv3d(in_spec, FieldSpec.hidden(in_spec.group, out_fields), kernel_size, bias=norm is None)
        self.in_spec = conv0.in_spec
        self.out_spec = conv0.out_spec
        layers = []
        for i in range(n_convs):
            conv = conv0 if i == 0 else EquivariantConv3d(self.out_spec, self.out_spec, kernel_size, bias=norm is None)
            layers += [conv, FieldNormAct(self.out_spec.group, out_fields, norm, act, dropout)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def _export(self) -> nn.Module:
        return to_plain(self.layers)


class FieldResidualUnit(EquivariantModule):
    """Residual unit on field types: ``block(x) + skip(x)`` with ``block`` an :class:`EquivariantConvBlock`.

    ``skip`` is the identity when the field types agree, else a 1x1x1 equivariant convolution.
    Shapes: ``(B, in_type.size, D, H, W) -> (B, out_fields * field_size, D, H, W)``. Exports to
    :class:`Residual`. (The MONAI-signature residual unit is :class:`equivox.nets.EquivariantResidualUnit`.)
    """

    def __init__(self, in_type, out_fields: int, kernel_size: int = 3, norm: NormSpec = "batch",
                 act: ActSpec = "elu", dropout: float = 0.0, n_convs: int = 2):
        super().__init__()
        self.block = EquivariantConvBlock(in_type, out_fields, kernel_size, norm, act, dropout, n_convs)
        self.in_spec, self.out_spec = self.block.in_spec, self.block.out_spec
        self.skip = nn.Identity() if self.in_spec == self.out_spec else EquivariantConv3d(
            self.in_spec, self.out_spec, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + self.skip(x)

    def _export(self) -> nn.Module:
        return Residual(to_plain(self.block), to_plain(self.skip))


def invariant_voxel_head(in_spec: FieldSpec, out_channels: int, hidden_fields: int,
                         norm: NormSpec = "batch", act: ActSpec = "elu",
                         pooling: Optional[str] = None) -> nn.Sequential:
    """Per-voxel invariant logits through a *nonlinear* invariant map (a segmentation head).

    A linear equivariant map from a regular field to a scalar has one degree of freedom (the field's mean), so a
    plain 1x1x1 head sees only ``len(in_spec)`` invariants per voxel. This head lifts to ``hidden_fields`` fields
    (1x1x1 equivariant conv -> field norm -> nonlinearity), pools each field to invariants
    (:class:`InvariantPooling`: max over the group, or irrep norms) and maps those linearly to the classes.

    Shapes: ``(B, in_spec.size, D, H, W) -> (B, out_channels, D, H, W)``; exact for the same elements as the
    convolutions (all grid-exact elements of the group). A plain ``nn.Sequential``: exports layer by layer.
    """
    group = in_spec.group
    act = per_field_activation(act, hidden_fields)
    conv = EquivariantConv3d(in_spec, FieldSpec.hidden(group, hidden_fields), 1, bias=norm is None)
    pool = InvariantPooling(group, hidden_fields, pooling)
    return nn.Sequential(conv, FieldNormAct(group, hidden_fields, norm, act), pool,
                         nn.Conv3d(pool.out_channels, out_channels, 1))
