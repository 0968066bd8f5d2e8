"""Multi-scale equivariant encoders (feature extractors), and the base of networks built on one."""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import torch
from torch import nn

from ..groups import get_group
from ..nn.blocks import EquivariantConvBlock
from ..nn.fields import FieldSpec
from ..nn.fieldwise import ActSpec, NormSpec
from ..nn.pooling import InvariantPooling
from ..nn.sampling import EquivariantDownsample
from .base import EquivariantNetwork

__all__ = ["EquivariantEncoder", "EquivariantFeatureExtractor", "EncoderNetwork"]


class EquivariantEncoder(EquivariantNetwork):
    """Equivariant multi-scale encoder: ``len(channels)`` levels of conv blocks joined by downsampling.

    Args:
        spatial_dims: must be 3.
        in_channels: scalar input channels (each a trivial field: intensities, occupancies, ...).
        channels: **hidden fields** per level (not tensor channels): level ``i`` has
            ``channels[i] * field_size`` tensor channels, ``field_size`` being 24 for ``octa`` (regular
            representation), 48 ``full_octa``, 60 ``ico``, 120 ``full_ico``, 35 ``so3``, 70 ``o3``, 1 ``trivial``.
        strides: downsampling factor between consecutive levels (``len(channels) - 1`` entries).
        group: registered group name (see :func:`equivox.groups.available_groups`).
        kernel_size: odd convolution size. norm: ``"batch"``, ``"instance"`` or ``None``. act: MONAI activation.
        dropout: field dropout probability. convs_per_level: convolutions per level.
        make_level: ``(level, in_spec, fields) -> module`` building each level's block (default an
            :class:`~equivox.nn.EquivariantConvBlock`); how :class:`~equivox.nets.EquivariantUNet`'s
            ``_get_down_layer`` / ``_get_bottom_layer`` hooks reach the encoder.

    Forward: ``(B, in_channels, D, H, W)`` -> list of hidden feature maps, one per level, level ``i`` of shape
    ``(B, channels[i] * field_size, D / s_i, H / s_i, W / s_i)`` with ``s_i`` the product of the first ``i``
    strides. Each spatial size must be divisible by ``prod(strides)`` (else
    :class:`~equivox.nn.EquivarianceError`). The features are equivariant: under a grid-exact element they
    permute spatially and transform by the field representation.
    """

    def __init__(self, spatial_dims: int = 3, in_channels: int = 1, channels: Sequence[int] = (4, 8, 16),
                 strides: Sequence[int] = (2, 2), group: str = "octa", kernel_size: int = 3,
                 norm: NormSpec = "batch", act: ActSpec = "elu", dropout: float = 0.0, convs_per_level: int = 2,
                 make_level: Optional[Callable[[int, FieldSpec, int], nn.Module]] = None):
        super().__init__()
        self.channels, self.strides = self._check_args(spatial_dims, in_channels, 1, channels, strides, group,
                                                       len(tuple(channels)) - 1)
        self.group, self.in_channels = group, in_channels
        self.input_check = self._make_input_check()
        self.out_specs: List[FieldSpec] = []
        spec = FieldSpec.scalar(group, in_channels)
        self.levels = nn.ModuleList()
        self.downs = nn.ModuleList()
        for i, n in enumerate(self.channels):
            self.downs.append(EquivariantDownsample(self.strides[i - 1], spec) if i else nn.Identity())
            block = (make_level(i, spec, n) if make_level is not None else
                     EquivariantConvBlock(spec, n, kernel_size, norm, act, dropout, convs_per_level))
            self.levels.append(block)
            spec = block.out_spec
            self.out_specs.append(spec)
        self.out_spec = spec
        # a builder function is no constructor setting a checkpoint could record: the network passing it is rebuilt
        self.__dict__.get("_init_arguments", {}).pop("make_level", None)

    def features(self, x: torch.Tensor) -> List[torch.Tensor]:
        """The hidden feature maps of every level (validated input)."""
        x = self.input_check(x)
        feats: List[torch.Tensor] = []
        for down, level in zip(self.downs, self.levels):
            x = level(down(x))
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return self.features(x)


class EquivariantFeatureExtractor(EquivariantEncoder):
    """Multi-scale feature extractor (as MONAI's encoders / ``FeatureExtractor``): a list of plain tensors, one per
    level, for a decoder, a detection head or a classifier of your own.

    Args:
        spatial_dims, in_channels, channels, strides, group, kernel_size, norm, act, dropout, convs_per_level:
            as :class:`~equivox.nets.EquivariantEncoder` (``channels`` counts hidden fields per level).
        output: ``"invariant"`` (default): each level is pooled per voxel into rotation-invariant scalar
            channels (:class:`~equivox.nn.InvariantPooling`): the features only move with the voxels under a
            rotation, so **any** ordinary layer may consume them. ``"hidden"``: the raw hidden fields (as
            :class:`~equivox.nets.EquivariantEncoder`); only equivariant layers may consume them (see the
            field-type rules in :mod:`equivox.nets.monai_blocks`).
        pooling: invariant pooling mode (``"group"``, ``"norm"``, ``None`` for the group's default).

    Attributes:
        feature_channels: tensor channels of each returned level.
        reductions: spatial downsampling factor of each level relative to the input.

    Forward: ``(B, in_channels, D, H, W)`` -> ``[(B, feature_channels[i], D / reductions[i], ...)]``; every spatial
    size must be divisible by ``prod(strides)``.
    """

    def __init__(self, spatial_dims: int = 3, in_channels: int = 1, channels: Sequence[int] = (4, 8, 16),
                 strides: Sequence[int] = (2, 2), group: str = "octa", kernel_size: int = 3,
                 norm: NormSpec = "batch", act: ActSpec = "elu", dropout: float = 0.0, convs_per_level: int = 2,
                 output: str = "invariant", pooling: Optional[str] = None):
        super().__init__(spatial_dims, in_channels, channels, strides, group, kernel_size, norm, act, dropout,
                         convs_per_level)
        if output not in ("invariant", "hidden"):
            raise ValueError(f"output must be 'invariant' or 'hidden', got {output!r}")
        self.output = output
        size = get_group(group).field_size
        if output == "invariant":
            self.pools = nn.ModuleList(InvariantPooling(group, n, pooling) for n in self.channels)
            self.feature_channels = tuple(p.out_channels for p in self.pools)
            self.out_specs = [p.out_spec for p in self.pools]
            self.out_spec = self.out_specs[-1]
        else:
            self.pools = nn.ModuleList(nn.Identity() for _ in self.channels)
            self.feature_channels = tuple(n * size for n in self.channels)
        red, reductions = 1, []
        for i in range(len(self.channels)):
            red *= self.strides[i - 1] if i else 1
            reductions.append(red)
        self.reductions = tuple(reductions)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        feats = self.features(x)
        out: List[torch.Tensor] = []
        for i, pool in enumerate(self.pools):
            out.append(pool(feats[i]))
        return out


class EncoderNetwork(EquivariantNetwork):
    """Base of networks built on an :class:`EquivariantEncoder` (``EquivariantUNet``, ``InvariantClassifier``)."""

    def _build_encoder(self, spatial_dims, in_channels, out_channels, channels, strides, group, kernel_size, norm,
                       act, dropout, convs_per_level, make_level=None) -> None:
        """Check the MONAI-style arguments, build ``self.encoder`` and take over its settings; the encoder's input
        check names this network in its messages."""
        self._check_args(spatial_dims, in_channels, out_channels, channels, strides, group,
                         len(tuple(channels)) - 1)
        self.encoder = EquivariantEncoder(spatial_dims, in_channels, channels, strides, group, kernel_size, norm, act,
                                          dropout, convs_per_level, make_level)
        self.group, self.in_channels, self.out_channels = group, in_channels, out_channels
        self.channels, self.strides = self.encoder.channels, self.encoder.strides
        self.encoder.input_check = self._make_input_check()
