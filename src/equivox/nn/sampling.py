"""Down- and upsampling that keep exact equivariance, with the size rules enforced.

Size rules (for the grid-exact elements: 90-degree rotations, inversion):

* Downsampling by ``s`` uses average pooling with window and stride ``s`` (any field type: it acts on each
  channel alike). The pooling windows tile the grid symmetrically only when every spatial size is divisible by
  ``s``; otherwise the last voxels are dropped on one side and a rotated input would be pooled differently. Such
  inputs raise :class:`~equivox.core.EquivarianceError` instead of returning a non-equivariant result.
  (A strided 3x3x3 convolution with padding 1 would instead need odd sizes; equivox uses pooling.)
* Upsampling by ``s`` uses trilinear interpolation with ``align_corners=False`` (or nearest), which is symmetric
  about the grid centre for every size.
* A factor may differ per axis (``(1, 2, 2)``: nnU-Net's anisotropic stages); it is then exact for the elements
  that keep it (those that only swap axes of equal factor, e.g. an axial group about the first axis).

A network with strides ``(s1, s2, ...)`` therefore needs each spatial size divisible by ``s1 * s2 * ...``.

>>> import torch
>>> from equivox.nn import FieldSpec
>>> down = EquivariantDownsample((1, 2, 2), FieldSpec.hidden("c4_axial_d", 1))
>>> down(torch.randn(1, 4, 4, 8, 8)).shape
torch.Size([1, 4, 4, 4, 4])
>>> down.out_spec == down.in_spec
True
"""
from __future__ import annotations

from typing import List, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..core import EquivarianceError, as_axes, divisibility_message
from .module import EquivariantModule, as_field_spec

__all__ = ["EquivariantDownsample", "EquivariantUpsample", "check_divisible"]

Factor = Union[int, Sequence[int]]


def check_divisible(shape, factor: Factor, where: str = "input") -> None:
    """Raise :class:`EquivarianceError` unless every spatial size in ``shape`` (``(D, H, W)``) divides by
    ``factor`` (an int or per-axis ``(d, h, w)``)."""
    sizes = [int(s) for s in shape]
    f = as_axes(factor)
    if any(s % a for s, a in zip(sizes, f)):
        raise EquivarianceError(divisibility_message(where, sizes, f))


def _factor_repr(f: List[int]):
    return f[0] if len(set(f)) == 1 else tuple(f)


class _Resample(EquivariantModule):
    def __init__(self, factor: Factor, in_type):
        super().__init__()
        self.factors: List[int] = as_axes(factor, "factor")
        self.factor = _factor_repr(self.factors)
        self.identity = self.factors == [1, 1, 1]
        self.in_spec = self.out_spec = as_field_spec(in_type) if in_type is not None else None


class EquivariantDownsample(_Resample):
    """Average pooling by ``factor`` (window = stride = factor). ``(B, C, D, H, W) -> (B, C, D/fd, H/fh, W/fw)``.

    Args:
        factor: an int, or per axis ``(fd, fh, fw)``.
        in_type: the fields it pools (:class:`~equivox.nn.FieldSpec` or escnn ``FieldType``); sets ``in_spec`` =
            ``out_spec``. Any field type works (pooling acts on every channel alike); without it the layer has no
            specs and cannot check its own equivariance.

    Raises :class:`EquivarianceError` if a spatial size is not divisible by its factor. Exports to
    ``nn.AvgPool3d`` (``nn.Identity`` for factor 1).
    """

    def __init__(self, factor: Factor = 2, in_type=None):
        super().__init__(factor, in_type)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.identity:
            return x
        if not torch.jit.is_scripting() and not torch.compiler.is_compiling():
            check_divisible(x.shape[2:], self.factors, "feature map")
        return F.avg_pool3d(x, self.factors)

    def _export(self) -> nn.Module:
        return nn.AvgPool3d(self.factor) if not self.identity else nn.Identity()

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class EquivariantUpsample(_Resample):
    """Interpolation by ``factor`` (``"trilinear"``, align_corners=False, or ``"nearest"``); exact for any size.

    Args:
        factor: an int, or per axis ``(fd, fh, fw)``.
        mode: ``"trilinear"`` or ``"nearest"``.
        in_type: the fields it interpolates (sets ``in_spec`` = ``out_spec``; any field type).

    ``(B, C, D, H, W) -> (B, C, fd*D, fh*H, fw*W)``. Exports to ``nn.Upsample``.
    """

    def __init__(self, factor: Factor = 2, mode: str = "trilinear", in_type=None):
        super().__init__(factor, in_type)
        if mode not in ("trilinear", "nearest"):
            raise ValueError(f"upsampling mode must be 'trilinear' or 'nearest', got {mode!r}")
        self.mode = mode
        self.scale: List[float] = [float(f) for f in self.factors]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.identity:
            return x
        if self.mode == "nearest":
            return F.interpolate(x, scale_factor=self.scale, mode="nearest")
        return F.interpolate(x, scale_factor=self.scale, mode="trilinear", align_corners=False)

    def _export(self) -> nn.Module:
        if self.identity:
            return nn.Identity()
        scale = tuple(self.scale) if len(set(self.factors)) > 1 else self.scale[0]
        if self.mode == "nearest":
            return nn.Upsample(scale_factor=scale, mode="nearest")
        return nn.Upsample(scale_factor=scale, mode="trilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, mode={self.mode!r}"
