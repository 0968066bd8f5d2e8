"""Down- and upsampling that keep exact equivariance, with the size rules enforced.

Size rules (for the grid-exact elements: 90-degree rotations, inversion):

* Downsampling by ``s`` uses average pooling with window and stride ``s`` (any field type: it acts on each
  channel alike). The pooling windows tile the grid symmetrically only when every spatial size is divisible by
  ``s``; otherwise the last voxels are dropped on one side and a rotated input would be pooled differently. Such
  inputs raise :class:`~equivox.nn.fields.EquivarianceError` instead of returning a non-equivariant result.
  (A strided 3x3x3 convolution with padding 1 would instead need odd sizes; equivox uses pooling.)
* Upsampling by ``s`` uses trilinear interpolation with ``align_corners=False`` (or nearest), which is symmetric
  about the grid centre for every size.

A network with strides ``(s1, s2, ...)`` therefore needs each spatial size divisible by ``s1 * s2 * ...``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..export import EquivarianceError, divisibility_message
from .module import EquivariantModule

__all__ = ["EquivariantDownsample", "EquivariantUpsample", "check_divisible"]


def check_divisible(shape, factor: int, where: str = "input") -> None:
    """Raise :class:`EquivarianceError` unless every spatial size in ``shape`` (``(D, H, W)``) divides by ``factor``."""
    sizes = [int(s) for s in shape]
    if any(s % factor for s in sizes):
        raise EquivarianceError(divisibility_message(where, sizes, int(factor)))


class EquivariantDownsample(EquivariantModule):
    """Average pooling by ``factor`` (window = stride = factor). ``(B, C, D, H, W) -> (B, C, D/f, H/f, W/f)``.

    Any field type (it acts on every channel alike). Raises :class:`EquivarianceError` if a spatial size is not
    divisible by ``factor``. Exports to ``nn.AvgPool3d`` (``nn.Identity`` for factor 1).
    """

    def __init__(self, factor: int = 2):
        super().__init__()
        self.factor = int(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor == 1:
            return x
        if not torch.jit.is_scripting() and not torch.compiler.is_compiling():
            check_divisible(x.shape[2:], self.factor, "feature map")
        return F.avg_pool3d(x, self.factor)

    def _export(self) -> nn.Module:
        return nn.AvgPool3d(self.factor) if self.factor > 1 else nn.Identity()

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class EquivariantUpsample(EquivariantModule):
    """Interpolation by ``factor`` (``"trilinear"``, align_corners=False, or ``"nearest"``); exact for any size.

    ``(B, C, D, H, W) -> (B, C, f*D, f*H, f*W)``; any field type. Exports to ``nn.Upsample``.
    """

    def __init__(self, factor: int = 2, mode: str = "trilinear"):
        super().__init__()
        if mode not in ("trilinear", "nearest"):
            raise ValueError(f"upsampling mode must be 'trilinear' or 'nearest', got {mode!r}")
        self.factor = int(factor)
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor == 1:
            return x
        if self.mode == "nearest":
            return F.interpolate(x, scale_factor=self.factor, mode="nearest")
        return F.interpolate(x, scale_factor=self.factor, mode="trilinear", align_corners=False)

    def _export(self) -> nn.Module:
        if self.factor == 1:
            return nn.Identity()
        if self.mode == "nearest":
            return nn.Upsample(scale_factor=float(self.factor), mode="nearest")
        return nn.Upsample(scale_factor=float(self.factor), mode="trilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, mode={self.mode!r}"
