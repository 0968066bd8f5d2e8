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

from .fields import EquivarianceError

__all__ = ["EquivariantDownsample", "EquivariantUpsample", "check_divisible"]


def check_divisible(shape, factor: int, where: str = "input") -> None:
    """Raise :class:`EquivarianceError` unless every spatial size in ``shape`` (``(D, H, W)``) divides by ``factor``."""
    bad = [int(s) for s in shape if int(s) % factor]
    if bad:
        raise EquivarianceError(
            f"{where} spatial size {tuple(int(s) for s in shape)} is not divisible by {factor}: pooling it would not "
            f"be exactly equivariant under 90-degree rotations. Pad or crop each spatial size to a multiple of "
            f"{factor} (e.g. monai.transforms.DivisiblePad(k={factor}))."
        )


class EquivariantDownsample(nn.Module):
    """Average pooling by ``factor`` (window = stride = factor). ``(B, C, D, H, W) -> (B, C, D/f, H/f, W/f)``.

    Raises :class:`EquivarianceError` if a spatial size is not divisible by ``factor``.
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

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class EquivariantUpsample(nn.Module):
    """Interpolation by ``factor`` (``"trilinear"``, align_corners=False, or ``"nearest"``); exact for any size.

    ``(B, C, D, H, W) -> (B, C, f*D, f*H, f*W)``.
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

    def extra_repr(self) -> str:
        return f"factor={self.factor}, mode={self.mode!r}"
