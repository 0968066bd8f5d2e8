"""Equivariant U-Net for segmentation with per-voxel invariant logits."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from ..nn.blocks import EquivariantConvBlock
from ..nn.conv import EquivariantConv3d
from ..nn.fields import FieldSpec
from ..nn.sampling import EquivariantUpsample
from .base import EquivariantNetwork

__all__ = ["EquivariantUNet"]


class EquivariantUNet(EquivariantNetwork):
    """Rotation-equivariant U-Net (MONAI ``UNet``-style constructor), plain tensors in and out.

    Args:
        spatial_dims: must be 3.
        in_channels: scalar input channels.
        out_channels: number of classes (per-voxel logits).
        channels: **hidden fields** per level (tensor width ``channels[i] * field_size``; see
            :class:`~equivox.nets.EquivariantEncoder`).
        strides: downsampling factor between levels (``len(channels) - 1`` entries); inputs must have every
            spatial size divisible by ``prod(strides)``.
        group: registered group name. kernel_size, norm, act, dropout, convs_per_level: as the encoder.
        upsample_mode: ``"trilinear"`` or ``"nearest"``.

    Forward: ``(B, in_channels, D, H, W)`` -> logits ``(B, out_channels, D, H, W)``.

    Equivariance: the logits are scalar (invariant) fields: for every grid-exact element ``g`` of ``group``,
    ``net(g.apply(x)) == g.apply(net(x))`` up to float rounding (use :func:`equivox.testing.equivariance_errors`).
    For ``ico``/``so3``/``o3`` the same holds exactly for the grid-exact elements and approximately for others.
    """

    def __init__(self, spatial_dims: int = 3, in_channels: int = 1, out_channels: int = 2,
                 channels: Sequence[int] = (4, 8, 16), strides: Sequence[int] = (2, 2), group: str = "octa",
                 kernel_size: int = 3, norm: Optional[str] = "batch", act="elu", dropout: float = 0.0,
                 convs_per_level: int = 2, upsample_mode: str = "trilinear"):
        super().__init__()
        self._build_encoder(spatial_dims, in_channels, out_channels, channels, strides, group, kernel_size, norm, act,
                            dropout, convs_per_level)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        spec = self.encoder.out_specs[-1]
        for i in range(len(self.channels) - 2, -1, -1):
            self.ups.append(EquivariantUpsample(self.strides[i], upsample_mode))
            block = EquivariantConvBlock(spec + self.encoder.out_specs[i], self.channels[i], kernel_size, norm, act, dropout,
                                         convs_per_level)
            self.decoders.append(block)
            spec = block.out_spec
        self.head = EquivariantConv3d(spec, FieldSpec.scalar(group, out_channels), kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        y = feats[-1]
        for up, dec, skip in zip(self.ups, self.decoders, reversed(feats[:-1])):
            y = dec(torch.cat([up(y), skip], dim=1))
        return self.head(y)
