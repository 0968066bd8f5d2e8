"""Equivariant U-Net for segmentation with per-voxel invariant logits."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from ..nn.blocks import EquivariantConvBlock, invariant_voxel_head
from ..nn.conv import EquivariantConv3d
from ..nn.fields import FieldSpec
from ..nn.fieldwise import ActSpec, NormSpec
from ..nn.heads import GroupStatsHead
from ..nn.label_swap import ClassSwapHead
from ..nn.module import output_class_permutation
from ..nn.sampling import EquivariantUpsample
from .encoder import EncoderNetwork

__all__ = ["EquivariantUNet"]


class EquivariantUNet(EncoderNetwork):
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
        head: how the last decoder fields become per-voxel logits (docs/segmentation.md has the measurements):
            ``"stats"`` (default): mean, max and min of every field over the group, normalized, then a 1x1x1 conv
            (:class:`~equivox.nn.GroupStatsHead`); ``"linear"`` (what checkpoints of spec version 1 are rebuilt
            with, :func:`equivox.baselines.upgrade_spec`): one 1x1x1 equivariant conv to the classes (it sees one
            invariant per regular field, the field's mean); ``"pool"``: a nonlinear invariant map
            (:func:`~equivox.nn.invariant_voxel_head`: 1x1x1 lift to ``head_fields`` fields, norm, nonlinearity,
            invariant pooling, 1x1x1 linear); ``"oriented"``: a plain 1x1x1 conv on all tensor channels, which reads
            the features' absolute orientation: **not** invariant (a choice for upright scans: equivariant features
            plus orientation; the equivariance check then reports the error).
        head_fields: hidden fields of the ``"pool"`` / class-swap head (default ``4 * channels[0]``).
        class_swaps: label-permuting equivariance for groups with reflections (e.g. ``full_octa``): disjoint class
            pairs, e.g. ``[(1, 2)]`` for left/right lung, that swap under every improper element
            (:class:`~equivox.nn.ClassSwapHead`; replaces ``head``). ``None``: all logits invariant.

    Forward: ``(B, in_channels, D, H, W)`` -> logits ``(B, out_channels, D, H, W)``.

    Equivariance: the logits are scalar (invariant) fields: for every grid-exact element ``g`` of ``group``,
    ``net(g.apply(x)) == g.apply(net(x))`` up to float rounding (use :func:`equivox.testing.equivariance_errors`).
    For ``ico``/``so3``/``o3`` the same holds exactly for the grid-exact elements and approximately for others.
    With ``class_swaps``, improper elements also permute the classes: ``net(g.apply(x)) ==
    g.apply(net(x))[:, net.class_permutation]`` (the evaluation permutes labels alike).

    Built as MONAI's ``UNet``: override :meth:`_get_down_layer`, :meth:`_get_bottom_layer`, :meth:`_get_up_layer`
    or :meth:`_get_head_layer` to change a layer kind (the state-dict layout stays as long as the layers do);
    check the result with ``net.check_equivariance()``.

    >>> import torch
    >>> net = EquivariantUNet(out_channels=2, channels=(1, 2), strides=(2,), group="c4_axial")
    >>> net(torch.randn(1, 1, 8, 8, 8)).shape
    torch.Size([1, 2, 8, 8, 8])
    >>> errors = net.check_equivariance()
    """

    #: the ``head`` choices
    HEADS = ("linear", "stats", "pool", "oriented")

    def __init__(self, spatial_dims: int = 3, in_channels: int = 1, out_channels: int = 2,
                 channels: Sequence[int] = (4, 8, 16), strides: Sequence[int] = (2, 2), group: str = "octa",
                 kernel_size: int = 3, norm: NormSpec = "batch", act: ActSpec = "elu", dropout: float = 0.0,
                 convs_per_level: int = 2, upsample_mode: str = "trilinear", head: str = "stats",
                 head_fields: Optional[int] = None, class_swaps: Optional[Sequence[Sequence[int]]] = None):
        super().__init__()
        if head not in self.HEADS:
            raise ValueError(f"head must be one of {self.HEADS}, got {head!r}")
        self.kernel_size, self.norm, self.act, self.dropout = kernel_size, norm, act, dropout
        self.convs_per_level, self.upsample_mode = convs_per_level, upsample_mode
        n_levels = len(tuple(channels))

        def level(i: int, spec: FieldSpec, fields: int) -> nn.Module:
            return self._get_bottom_layer(spec, fields) if i == n_levels - 1 else self._get_down_layer(spec, fields)

        self._build_encoder(spatial_dims, in_channels, out_channels, channels, strides, group, kernel_size, norm, act,
                            dropout, convs_per_level, level)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        spec = self.encoder.out_specs[-1]
        for i in range(len(self.channels) - 2, -1, -1):
            up, block = self._get_up_layer(spec, self.encoder.out_specs[i], self.channels[i], self.strides[i])
            self.ups.append(up)
            self.decoders.append(block)
            spec = block.out_spec
        self.head_kind = head
        self.head = self._get_head_layer(spec, head, int(head_fields or 4 * self.channels[0]), norm, act,
                                         class_swaps)
        perm = output_class_permutation(self.head)  # a label-permuting head's (its out_spec's)
        self.out_spec = FieldSpec.scalar(self.group, self.out_channels).with_class_permutation(perm)
        # the spec's permutation under the names old code and checkpoints read
        self.class_swaps = self.out_spec.class_swaps
        self.class_permutation = self.out_spec.class_permutation

    # ------------------------------------------------------------------ layer hooks (override to customise)
    def _get_down_layer(self, in_spec: FieldSpec, out_fields: int) -> nn.Module:
        """One encoder level: ``in_spec`` fields (the input's scalar channels at the top) -> ``out_fields`` hidden
        fields at the same resolution (the shared :class:`~equivox.nn.EquivariantDownsample` comes before it).
        Default: an :class:`~equivox.nn.EquivariantConvBlock` of ``convs_per_level`` convolutions. The module must
        set ``out_spec``."""
        return EquivariantConvBlock(in_spec, out_fields, self.kernel_size, self.norm, self.act, self.dropout,
                                    self.convs_per_level)

    def _get_bottom_layer(self, in_spec: FieldSpec, out_fields: int) -> nn.Module:
        """The bottom (coarsest) level; default: :meth:`_get_down_layer`."""
        return self._get_down_layer(in_spec, out_fields)

    def _get_up_layer(self, in_spec: FieldSpec, skip_spec: FieldSpec, out_fields: int,
                      stride: int) -> Tuple[nn.Module, nn.Module]:
        """One decoder level: ``(up, block)`` with ``up`` upsampling the ``in_spec`` fields by ``stride`` and
        ``block`` mapping ``[up(x), skip]`` (``in_spec + skip_spec`` fields) to ``out_fields`` hidden fields.
        Default: :class:`~equivox.nn.EquivariantUpsample` and an :class:`~equivox.nn.EquivariantConvBlock`."""
        up = EquivariantUpsample(stride, self.upsample_mode, in_spec)
        block = EquivariantConvBlock(in_spec + skip_spec, out_fields, self.kernel_size, self.norm, self.act,
                                     self.dropout, self.convs_per_level)
        return up, block

    def _get_head_layer(self, spec: FieldSpec, head: str, head_fields: int, norm, act,
                        class_swaps: Optional[Sequence[Sequence[int]]] = None) -> nn.Module:
        """Hidden fields of the last decoder level -> per-voxel logits (override to customise; a head whose
        ``out_spec`` has a ``class_permutation`` declares label-permuting equivariance,
        :func:`~equivox.nn.module.output_class_permutation`)."""
        if class_swaps:
            return ClassSwapHead(spec, self.out_channels, class_swaps, head_fields, norm, act)
        if head == "linear":
            return EquivariantConv3d(spec, FieldSpec.scalar(self.group, self.out_channels), kernel_size=1, bias=True)
        if head == "stats":
            return GroupStatsHead(spec, self.out_channels, norm)
        if head == "oriented":
            return nn.Conv3d(spec.size, self.out_channels, 1)
        return invariant_voxel_head(spec, self.out_channels, head_fields, norm, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        y = feats[-1]
        n = len(feats)
        for i, (up, dec) in enumerate(zip(self.ups, self.decoders)):  # scriptable: the export runs this forward
            y = dec(torch.cat([up(y), feats[n - 2 - i]], dim=1))
        return self.head(y)
