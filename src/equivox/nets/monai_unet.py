"""Equivariant U-Net with the layout and constructor of ``monai.networks.nets.UNet``."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from monai.networks.layers import SkipConnection
from torch import nn

from ..nn.fields import FieldSpec
from ..nn.fieldwise import ActSpec, NormSpec
from .base import EquivariantNetwork
from .monai_blocks import EquivariantConvolution, EquivariantResidualUnit

__all__ = ["EquivariantMonaiUNet"]


class EquivariantMonaiUNet(EquivariantNetwork):
    """Rotation-equivariant counterpart of ``monai.networks.nets.UNet``: same arguments, same layout.

    As in MONAI, **every** level downsamples, the first one included: ``channels[i]`` lives at resolution
    ``1 / prod(strides[:i + 1])`` (the last, bottom level at the resolution of the one before it), skips are
    concatenated at reduced resolution and the last up layer brings the logits back to full resolution. A
    MONAI ``UNet(channels=(96, 192, 384), strides=(2, 2), num_res_units=2)`` and
    ``EquivariantMonaiUNet(channels=(4, 8, 16), strides=(2, 2), num_res_units=2, group="octa")`` (24 channels per
    octa field) have the same tensor widths and the same convolution FLOPs. Compared with
    :class:`~equivox.nets.EquivariantUNet` (two convolutions per level, first level at full resolution) it is
    about 8x cheaper per voxel and sees less full-resolution detail.

    Where MONAI uses a strided convolution, equivox average-pools by the stride and then convolves (the same
    number of multiply-adds, at the coarse resolution); where MONAI uses a transposed convolution, equivox
    convolves at the coarse resolution and then interpolates (:class:`EquivariantConvolution` with
    ``is_transposed=True``). Both keep exact equivariance for every spatial size divisible by ``prod(strides)``;
    MONAI's strided and transposed 3x3x3 convolutions on even sizes would not.

    Args:
        spatial_dims: must be 3.
        in_channels: scalar input channels.
        out_channels: number of classes (per-voxel logits, invariant fields).
        channels: **hidden fields** per level (tensor width ``channels[i] * field_size``), at least 2 levels.
        strides: ``len(channels) - 1`` downsampling factors (MONAI's rule).
        group: registered group name (``"octa"``, ``"full_octa"``, ``"ico"``, ``"so3"``, ...).
        kernel_size: odd kernel size of the down/bottom convolutions. up_kernel_size: odd, of the up convolutions.
        num_res_units: as MONAI: 0 = one convolution per layer; ``n > 0`` = residual units of ``n`` convolutions
            down, plus a one-convolution residual unit after each up convolution.
        act: MONAI-style activation (default ``"prelu"`` as MONAI), applied field-wise.
        norm: ``"instance"`` (default, as MONAI), ``"batch"`` or ``None``; statistics shared by each field's channels.
        dropout: field dropout probability.
        bias: learn biases on the invariant components (where no norm follows).
        upsample_mode: ``"trilinear"`` or ``"nearest"``.

    Forward: ``(B, in_channels, D, H, W)`` -> logits ``(B, out_channels, D, H, W)``; every spatial size must be
    divisible by ``prod(strides)`` (:class:`~equivox.nn.EquivarianceError` otherwise).

    Equivariance: ``net(g.apply(x)) == g.apply(net(x))`` to float rounding for every grid-exact element ``g`` of
    ``group`` (all elements of ``octa``/``full_octa``); approximately for the other elements of ``ico``/``so3``/``o3``.

    Built as MONAI's ``UNet``: override :meth:`_get_down_layer`, :meth:`_get_up_layer`, :meth:`_get_bottom_layer`
    or :meth:`_get_connection_block` to change a layer kind (the state-dict layout stays as long as the layers do).
    """

    def __init__(self, spatial_dims: int = 3, in_channels: int = 1, out_channels: int = 2,
                 channels: Sequence[int] = (4, 8, 16), strides: Sequence[int] = (2, 2), group: str = "octa",
                 kernel_size: int = 3, up_kernel_size: int = 3, num_res_units: int = 0, act: ActSpec = "prelu",
                 norm: NormSpec = "instance", dropout: float = 0.0, bias: bool = True,
                 upsample_mode: str = "trilinear"):
        super().__init__()
        channels, strides = self._check_args(spatial_dims, in_channels, out_channels, channels, strides, group,
                                             len(tuple(channels)) - 1)
        if len(channels) < 2:
            raise ValueError(f"channels must have at least 2 levels (as MONAI's UNet), got {channels}")
        if int(num_res_units) < 0:
            raise ValueError(f"num_res_units must be >= 0, got {num_res_units}")
        self.group, self.in_channels, self.out_channels = group, in_channels, out_channels
        self.channels, self.strides, self.num_res_units = channels, strides, int(num_res_units)
        self.kernel_size, self.up_kernel_size, self.bias, self.upsample_mode = kernel_size, up_kernel_size, bias, \
            upsample_mode
        self.act, self.norm, self.dropout = act, norm, dropout
        self.input_check = self._make_input_check()
        self.model = self._create_block(in_channels, out_channels, channels, strides, True)
        self.out_spec = FieldSpec.scalar(group, out_channels)

    def _common(self) -> dict:
        return dict(group=self.group, act=self.act, norm=self.norm, dropout=self.dropout)

    def _create_block(self, inc: int, outc: int, channels: Sequence[int], strides: Sequence[int],
                      is_top: bool) -> nn.Module:
        """One level (recursively the levels below it), as MONAI's ``UNet._create_block``: down layer, skip
        connection around the sub-block, up layer."""
        c, s = channels[0], strides[0]
        if len(channels) > 2:
            sub, up_in = self._create_block(c, c, channels[1:], strides[1:], False), 2 * c
        else:  # bottom layer: no downsampling
            sub, up_in = self._get_bottom_layer(c, channels[1]), c + channels[1]
        down = self._get_down_layer(inc, c, s, is_top)
        up = self._get_up_layer(up_in, outc, s, is_top)
        return self._get_connection_block(down, up, sub)

    def _get_connection_block(self, down_path: nn.Module, up_path: nn.Module, subblock: nn.Module) -> nn.Module:
        """``down -> SkipConnection(subblock) (concatenation) -> up`` (override for another skip)."""
        return nn.Sequential(down_path, SkipConnection(subblock), up_path)

    def _get_down_layer(self, in_channels: int, out_channels: int, strides: int, is_top: bool) -> nn.Module:
        """``in_channels`` fields (scalar channels at the top) -> ``out_channels`` hidden fields, downsampled by
        ``strides``: a residual unit of ``num_res_units`` convolutions, or one convolution."""
        in_fields = "scalar" if is_top else "hidden"
        if self.num_res_units > 0:
            return EquivariantResidualUnit(3, in_channels, out_channels, strides=strides, kernel_size=self.kernel_size,
                                           subunits=self.num_res_units, in_fields=in_fields, **self._common())
        return EquivariantConvolution(3, in_channels, out_channels, strides=strides, kernel_size=self.kernel_size,
                                      bias=self.bias, in_fields=in_fields, **self._common())

    def _get_bottom_layer(self, in_channels: int, out_channels: int) -> nn.Module:
        """The bottom level: a down layer without downsampling."""
        return self._get_down_layer(in_channels, out_channels, 1, False)

    def _get_up_layer(self, in_channels: int, out_channels: int, strides: int, is_top: bool) -> nn.Module:
        """Hidden fields -> ``out_channels`` fields upsampled by ``strides`` (scalar logits at the top):
        convolution at the coarse resolution then interpolation, plus (``num_res_units > 0``) a one-convolution
        residual unit as MONAI."""
        out_fields = "scalar" if is_top else "hidden"
        conv = EquivariantConvolution(3, in_channels, out_channels, strides=strides, kernel_size=self.up_kernel_size,
                                      bias=self.bias, in_fields="hidden", out_fields=out_fields, is_transposed=True,
                                      conv_only=is_top and self.num_res_units == 0,
                                      upsample_mode=self.upsample_mode, **self._common())
        if self.num_res_units == 0:
            return conv
        if is_top:  # MONAI: ResidualUnit(out, out, subunits=1, last_conv_only=True) = x + conv(x)
            tail = SkipConnection(EquivariantConvolution(3, out_channels, out_channels, kernel_size=self.kernel_size,
                                                         bias=self.bias, in_fields="scalar", out_fields="scalar",
                                                         conv_only=True, group=self.group), mode="add")
        else:
            tail = EquivariantResidualUnit(3, out_channels, out_channels, kernel_size=self.kernel_size, subunits=1,
                                           in_fields="hidden", **self._common())
        return nn.Sequential(conv, tail)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.input_check(x))
