"""Rotation-invariant classifier: equivariant encoder + invariant pooling + global pooling + MLP."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from ..nn.fields import FieldSpec
from ..nn.fieldwise import ActSpec, NormSpec, make_activation
from ..nn.pooling import InvariantPooling
from .encoder import EncoderNetwork

__all__ = ["InvariantClassifier"]


class InvariantClassifier(EncoderNetwork):
    """Rotation-invariant 3D classifier (MONAI-style constructor), plain tensors in and out.

    Args:
        spatial_dims, in_channels, channels, strides, group, kernel_size, norm, act, dropout, convs_per_level:
            as :class:`~equivox.nets.EquivariantEncoder` (``channels`` counts hidden fields per level).
        out_channels: number of classes.
        pooling: invariant map on the last level: ``"group"`` (max over the group / grid samples), ``"norm"``
            (norms of irreducible components) or ``None`` (group for finite groups, norm for SO(3)/O(3)).
        hidden_features: widths of the MLP head's hidden layers.
        head_dropout: dropout in the MLP head.

    Forward: ``(B, in_channels, D, H, W)`` -> logits ``(B, out_channels)``. Spatial sizes must be divisible by
    ``prod(strides)``. The logits are invariant under every grid-exact element of ``group`` (to float rounding).
    """

    def __init__(self, spatial_dims: int = 3, in_channels: int = 1, out_channels: int = 2,
                 channels: Sequence[int] = (4, 8, 16), strides: Sequence[int] = (2, 2), group: str = "octa",
                 kernel_size: int = 3, norm: NormSpec = "batch", act: ActSpec = "elu", dropout: float = 0.0,
                 convs_per_level: int = 2, pooling: Optional[str] = None, hidden_features: Sequence[int] = (64,),
                 head_dropout: float = 0.0):
        super().__init__()
        self._build_encoder(spatial_dims, in_channels, out_channels, channels, strides, group, kernel_size, norm, act,
                            dropout, convs_per_level)
        self.pool = InvariantPooling(group, self.channels[-1], pooling)
        layers, width = [], self.pool.out_channels
        for h in hidden_features:
            layers += [nn.Linear(width, h), make_activation(act)]
            if head_dropout:
                layers.append(nn.Dropout(head_dropout))
            width = h
        layers.append(nn.Linear(width, out_channels))
        self.head = nn.Sequential(*layers)
        self.out_spec = FieldSpec.scalar(group, out_channels)  # invariant logits (B, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        inv = self.pool(feats[-1]).mean(dim=(2, 3, 4))  # invariant channels, globally averaged: (B, n_inv)
        return self.head(inv)
