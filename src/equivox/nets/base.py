"""Shared constructor checks and input validation for equivox networks."""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
from torch import nn

from ..groups import get_group
from ..nn.sampling import check_divisible

__all__ = ["EquivariantNetwork"]


class EquivariantNetwork(nn.Module):
    """Base of equivox networks: MONAI-style argument checks, plain-tensor input validation, export.

    Subclasses set ``self.group``, ``self.in_channels``, ``self.strides`` and implement ``_forward``.
    Inputs may be ``torch.Tensor`` or MONAI ``MetaTensor`` (treated as a plain tensor).
    """

    group: str
    in_channels: int
    strides: Tuple[int, ...]

    @staticmethod
    def _check_args(spatial_dims: int, in_channels: int, out_channels: int, channels: Sequence[int],
                    strides: Sequence[int], group: str, expected_strides: int) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
        if spatial_dims != 3:
            raise ValueError(f"equivox networks are 3D: spatial_dims must be 3, got {spatial_dims}")
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        channels, strides = tuple(int(c) for c in channels), tuple(int(s) for s in strides)
        if not channels or min(channels) < 1:
            raise ValueError(f"channels must be a non-empty sequence of positive field counts, got {channels}")
        if len(strides) != expected_strides:
            raise ValueError(
                f"strides must have {expected_strides} entries for channels={channels} (one per downsampling "
                f"between levels), got {strides}"
            )
        if strides and min(strides) < 1:
            raise ValueError(f"strides must be positive integers, got {strides}")
        get_group(group)  # clear error for unknown names
        return channels, strides

    def _build_encoder(self, spatial_dims, in_channels, out_channels, channels, strides, group, kernel_size, norm,
                       act, dropout, convs_per_level) -> None:
        """Check the MONAI-style arguments, build ``self.encoder`` and take over its settings (U-Net, classifier)."""
        from .encoder import EquivariantEncoder

        self._check_args(spatial_dims, in_channels, out_channels, channels, strides, group,
                         len(tuple(channels)) - 1)
        self.encoder = EquivariantEncoder(spatial_dims, in_channels, channels, strides, group, kernel_size, norm, act,
                                          dropout, convs_per_level)
        self.group, self.in_channels, self.out_channels = group, in_channels, out_channels
        self.channels, self.strides = self.encoder.channels, self.encoder.strides

    @property
    def size_multiple(self) -> int:
        """Every spatial input size must be a multiple of this (product of strides) for exact equivariance."""
        return int(math.prod(self.strides))

    def _validate(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(x, "as_tensor"):  # MONAI MetaTensor -> plain tensor (metadata is not needed inside)
            x = x.as_tensor()
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{type(self).__name__} expects a torch.Tensor (B, C, D, H, W), got {type(x).__name__}")
        if x.dim() != 5:
            raise ValueError(f"{type(self).__name__} expects a 5D tensor (B, C, D, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__} was built for in_channels={self.in_channels}, got input with "
                             f"{x.shape[1]} channels (shape {tuple(x.shape)})")
        if not x.is_floating_point():
            x = x.float()
        if not torch.jit.is_scripting() and not torch.compiler.is_compiling():
            check_divisible(x.shape[2:], self.size_multiple, f"{type(self).__name__} input")
        return x

    def export(self, fold_batchnorm: bool = False) -> nn.Module:
        """Plain PyTorch module (``torch.nn`` layers only) computing this network's eval-mode function.

        See :func:`equivox.export.export` (also for ``fold_batchnorm``): scriptable, ``torch.export``-able, same
        input checks.
        """
        from ..export import export

        return export(self, fold_batchnorm)

    @property
    def tensor_channels(self) -> Tuple[int, ...]:
        """Tensor channels per level (``channels[i] * field_size``), for comparing widths with plain CNNs."""
        return tuple(c * get_group(self.group).field_size for c in self.channels)
