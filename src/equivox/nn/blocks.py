"""Equivariant building blocks: convolution + normalization + nonlinearity, and a residual unit."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .conv import EquivariantConv3d
from .fields import FieldSpec
from .fieldwise import FieldNormAct

__all__ = ["EquivariantConvBlock", "EquivariantResidualUnit"]


class EquivariantConvBlock(nn.Module):
    """``n_convs`` x (equivariant conv -> field norm -> nonlinearity [-> field dropout]).

    Args:
        in_type: input fields (:class:`FieldSpec` or escnn ``FieldType``), e.g. ``FieldSpec.scalar("octa", 1)``.
        out_fields: number of hidden output fields of the group (``out_fields * field_size`` channels).
        kernel_size, norm, act, dropout: as :class:`EquivariantConv3d` / :class:`FieldNormAct`.
        n_convs: number of convolutions (the first maps ``in_type`` to hidden fields).

    Shapes: ``(B, in_type.size, D, H, W) -> (B, out_fields * field_size, D, H, W)``.
    """

    def __init__(self, in_type, out_fields: int, kernel_size: int = 3, norm: Optional[str] = "batch", act="elu",
                 dropout: float = 0.0, n_convs: int = 2):
        super().__init__()
        in_spec = in_type if isinstance(in_type, FieldSpec) else None
        conv0 = EquivariantConv3d(in_type, FieldSpec.hidden(in_spec.group if in_spec else _group(in_type), out_fields),
                                  kernel_size, bias=norm is None)
        self.in_spec = conv0.in_spec
        self.out_spec = conv0.out_spec
        layers = []
        for i in range(n_convs):
            conv = conv0 if i == 0 else EquivariantConv3d(self.out_spec, self.out_spec, kernel_size, bias=norm is None)
            layers += [conv, FieldNormAct(self.out_spec.group, out_fields, norm, act, dropout)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class EquivariantResidualUnit(nn.Module):
    """Residual unit (MONAI ``ResidualUnit`` analogue): ``block(x) + skip(x)``.

    ``skip`` is the identity when the field types agree, else a 1x1x1 equivariant convolution.
    Shapes: ``(B, in_type.size, D, H, W) -> (B, out_fields * field_size, D, H, W)``.
    """

    def __init__(self, in_type, out_fields: int, kernel_size: int = 3, norm: Optional[str] = "batch", act="elu",
                 dropout: float = 0.0, n_convs: int = 2):
        super().__init__()
        self.block = EquivariantConvBlock(in_type, out_fields, kernel_size, norm, act, dropout, n_convs)
        self.in_spec, self.out_spec = self.block.in_spec, self.block.out_spec
        self.skip = nn.Identity() if self.in_spec == self.out_spec else EquivariantConv3d(
            self.in_spec, self.out_spec, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + self.skip(x)


def _group(field_type) -> str:
    from ..groups import group_of_field_type

    return group_of_field_type(field_type).name
