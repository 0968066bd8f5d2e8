"""Equivariant drop-ins for the MONAI building blocks, with MONAI's constructor signatures.

=====================================================  ==================================================
MONAI                                                  equivox (this module)
=====================================================  ==================================================
``monai.networks.blocks.Convolution``                  :class:`EquivariantConvolution`
``monai.networks.blocks.ResidualUnit``                 :class:`EquivariantResidualUnit`
final ``Convolution(..., conv_only=True)`` of a UNet   :class:`EquivariantHead` (hidden -> scalar logits)
encoder / ``FeatureExtractor`` (multi-scale features)  :class:`~equivox.nets.EquivariantFeatureExtractor`
=====================================================  ==================================================

Every block takes and returns plain ``torch.Tensor`` s ``(B, C, D, H, W)`` (a MONAI ``MetaTensor`` is accepted
and returned as a plain tensor), so it can be put into ``torch.nn.Sequential``, a MONAI bundle config
(``"_target_": "equivox.nets.EquivariantResidualUnit"``) or any MONAI engine unchanged.

Field-type rules (read this before mixing equivox blocks with other layers)
---------------------------------------------------------------------------
An equivariant tensor is not just ``C`` channels: its channels are grouped into **fields**, and a rotation of the
input moves the voxels *and* acts on each field's channels. Two kinds of field occur:

* **scalar** fields (1 channel each): intensities, probabilities, logits, invariant features. A rotation only
  moves the voxels. Image inputs and segmentation logits are scalar.
* **hidden** fields (``field_size`` channels each: 24 ``octa``, 48 ``full_octa``, 60 ``ico``, 120 ``full_ico``,
  35 ``so3``, 70 ``o3``, 1 ``trivial``): a rotation moves the voxels and *permutes / mixes the field's channels*.
  Everything between the input and the output of an equivox network is hidden.

So ``in_channels`` / ``out_channels`` of these blocks count **fields**, not tensor channels:

* ``in_channels`` counts scalar channels when ``in_fields="scalar"`` (the default: the block reads an image)
  and hidden fields when ``in_fields="hidden"`` (the block follows another equivox block): the input tensor
  then has ``in_channels * field_size`` channels.
* ``out_channels`` counts hidden fields (tensor width ``out_channels * field_size``, also in
  ``block.out_tensor_channels``), except for :class:`EquivariantHead` and ``out_fields="scalar"`` where it counts
  scalar channels.

What you MAY do between equivox blocks, without breaking equivariance:

* anything on **scalar** tensors that is itself rotation-equivariant: pointwise functions, ``softmax`` over
  channels, per-channel normalisation, any ``1x1x1`` ``torch.nn.Conv3d`` (mixing scalar channels is fine),
  losses and metrics;
* on **hidden** tensors: equivox blocks; ``torch.cat`` of whole tensors along channels (a skip connection: the
  result's fields are the fields of both, in order, so the next block needs ``in_channels`` = the sum of field
  counts); sums of two tensors of the same field type (residuals); ``equivox.nn.EquivariantDownsample`` /
  ``EquivariantUpsample``; whole-field dropout (``Dropout3d`` on ``(B, fields, ...)``); and reading them out with
  ``equivox.nn.InvariantPooling`` (hidden -> scalar).

What you must NOT do on hidden tensors (each silently breaks equivariance):

* mix or permute channels with an ordinary layer (``nn.Conv3d``, ``nn.Linear``, ``BatchNorm3d`` with
  per-channel statistics, channel attention / squeeze-excitation, slicing ``x[:, :k]`` at a point that is not a
  field boundary);
* apply a non-pointwise function across a field's channels (``softmax`` over channels, per-channel affine
  rescaling) - for ``so3``/``o3`` even pointwise nonlinearities are wrong (the channels are Fourier
  coefficients; use :class:`equivox.nn.FieldNormAct`);
* convolve with an ordinary kernel, use an even kernel size, or downsample with strides / pooling on a spatial
  size that is not divisible by the stride (the pooling windows would not tile the grid symmetrically; equivox
  raises :class:`~equivox.nn.EquivarianceError`; pad with ``monai.transforms.DivisiblePad(k=...)``).

Resampling (``Spacingd``, ``Resized``), cropping and padding belong to the data pipeline, where they act on the
scalar image and label; they are fine.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Union

import torch
from torch import nn

from ..export import to_plain
from ..groups import get_group
from ..nn.blocks import FieldResidualUnit
from ..nn.conv import EquivariantConv3d
from ..nn.fields import FieldSpec
from ..nn.fieldwise import ActSpec, FieldNormAct, NormSpec, make_activation, make_norm
from ..nn.module import EquivariantModule, input_check
from ..nn.sampling import EquivariantDownsample, EquivariantUpsample

__all__ = [
    "EquivariantConvolution",
    "EquivariantResidualUnit",
    "EquivariantHead",
    "field_spec",
]

_KINDS = ("scalar", "hidden")


def field_spec(group: str, n: int, kind: str) -> FieldSpec:
    """``n`` fields of ``kind`` (``"scalar"`` or ``"hidden"``) of ``group`` as a :class:`~equivox.nn.FieldSpec`."""
    if kind not in _KINDS:
        raise ValueError(f"field kind must be 'scalar' or 'hidden', got {kind!r}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"number of {kind} fields must be a positive int, got {n!r}")
    return FieldSpec.scalar(group, n) if kind == "scalar" else FieldSpec.hidden(group, n)


def scalar_norm_act(channels: int, norm: NormSpec, act: ActSpec, dropout: float = 0.0) -> nn.Module:
    """Norm -> activation -> dropout on **scalar** channels (any per-channel norm and pointwise activation is
    equivariant there). ``(B, channels, D, H, W)`` -> same."""
    return nn.Sequential(make_norm(norm, channels), make_activation(act),
                         nn.Dropout3d(dropout) if dropout else nn.Identity())


def _check_spatial_dims(spatial_dims: int) -> None:
    if spatial_dims != 3:
        raise ValueError(f"equivox blocks are 3D: spatial_dims must be 3, got {spatial_dims}")


def _stride(strides) -> int:
    if isinstance(strides, (tuple, list)):
        vals = {int(s) for s in strides}
        if len(vals) != 1:
            raise ValueError(f"equivox blocks need the same stride on every axis (rotations swap axes), got {strides}")
        strides = vals.pop()
    strides = int(strides)
    if strides < 1:
        raise ValueError(f"strides must be a positive int, got {strides}")
    return strides


class _MonaiBlock(EquivariantModule):
    """A MONAI-signature block: one input check (rank, channel count explained in fields, divisibility by the
    stride), then a chain of layers; exports to ``nn.Sequential(check, *plain layers)``."""

    stride = 1  # input divisibility the block needs (set by subclasses)

    def _make_input_check(self):
        return input_check(self.in_spec, self.stride, type(self).__name__, detail=True)

    def _chain(self) -> List[nn.Module]:
        """The layers ``forward`` applies after the input check, in order."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_check(x)
        for layer in self._chain():
            x = layer(x)
        return x

    def _export(self) -> nn.Module:
        return nn.Sequential(to_plain(self.input_check), *(to_plain(m) for m in self._chain()))


class EquivariantConvolution(_MonaiBlock):
    """Equivariant analogue of ``monai.networks.blocks.Convolution``: [pool] -> conv -> norm -> act -> dropout.

    Args:
        spatial_dims: must be 3.
        in_channels: input fields: scalar channels (``in_fields="scalar"``) or hidden fields (``"hidden"``).
        out_channels: output fields: hidden (default) or scalar (``out_fields="scalar"``).
        group: registered group name (``"octa"``, ``"so3"``, ...).
        strides: downsampling factor (same on every axis). MONAI uses a strided convolution; equivox average-pools
            the input by ``strides`` first (exactly equivariant; spatial sizes must be divisible by it). With
            ``is_transposed=True`` it is an upsampling factor instead.
        kernel_size: odd kernel size.
        act, norm, dropout: MONAI-style activation, ``"batch"`` / ``"instance"`` / ``None``, field dropout.
            Ignored when ``conv_only``.
        in_fields, out_fields: ``"scalar"`` or ``"hidden"`` (see the module docstring).
        conv_only: only the convolution (as MONAI's ``conv_only=True``).
        bias: learn a bias on the invariant components of the output.
        is_transposed: upsample instead (MONAI's transposed convolution): convolve at the input resolution, then
            interpolate by ``strides`` (``upsample_mode``), then norm and activation. Same cost as MONAI's
            stride-``s`` transposed convolution and exactly equivariant for every input size (a transposed
            convolution with an odd kernel and ``output_padding`` is not, on even sizes).
        upsample_mode: ``"trilinear"`` or ``"nearest"`` (only with ``is_transposed``).

    Shapes: ``(B, in_tensor_channels, D, H, W) -> (B, out_tensor_channels, D / strides, ...)``
    (``D * strides`` when transposed).
    """

    def __init__(self, spatial_dims: int = 3, in_channels: int = 1, out_channels: int = 1, group: str = "octa",
                 strides: Union[int, Sequence[int]] = 1, kernel_size: int = 3, act: ActSpec = "elu",
                 norm: NormSpec = "batch", dropout: float = 0.0, in_fields: str = "scalar",
                 out_fields: str = "hidden", conv_only: bool = False, bias: bool = True, is_transposed: bool = False,
                 upsample_mode: str = "trilinear"):
        super().__init__()
        _check_spatial_dims(spatial_dims)
        self.group = get_group(group).name
        self.in_fields, self.out_fields = in_fields, out_fields
        self.in_spec = field_spec(self.group, in_channels, in_fields)
        self.out_spec = field_spec(self.group, out_channels, out_fields)
        self.in_channels, self.out_channels = in_channels, out_channels
        factor = _stride(strides)
        self.is_transposed = bool(is_transposed)
        self.stride = 1 if self.is_transposed else factor  # the input divisibility the block needs
        self.down = (EquivariantDownsample(factor, self.in_spec) if factor > 1 and not self.is_transposed
                     else nn.Identity())
        self.up = (EquivariantUpsample(factor, upsample_mode, self.out_spec) if factor > 1 and self.is_transposed
                   else nn.Identity())
        with_norm = (norm is not None) and not conv_only
        self.conv = EquivariantConv3d(self.in_spec, self.out_spec, kernel_size, bias=bias and not with_norm)
        if conv_only:
            self.adn = nn.Identity()
        elif out_fields == "hidden":
            self.adn = FieldNormAct(self.group, out_channels, norm, act, dropout)
        else:
            self.adn = scalar_norm_act(out_channels, norm, act, dropout)
        self.input_check = self._make_input_check()

    def _chain(self) -> List[nn.Module]:
        return [self.down, self.conv, self.up, self.adn]


class EquivariantResidualUnit(_MonaiBlock):
    """Equivariant analogue of ``monai.networks.blocks.ResidualUnit``: ``subunits`` x (conv -> norm -> act) plus a
    skip connection (identity when the field types agree, else an equivariant 1x1x1 convolution).

    Args:
        spatial_dims: must be 3.
        in_channels: scalar channels (``in_fields="scalar"``, e.g. the image) or hidden fields
            (``in_fields="hidden"``, after another equivox block).
        out_channels: **hidden fields** of the output (tensor width ``out_channels * field_size``).
        group: registered group name.
        strides: downsampling factor; the input is average-pooled by it first (sizes must be divisible).
        kernel_size: odd kernel size. subunits: number of convolutions (>= 1).
        act, norm, dropout: as :class:`EquivariantConvolution`.
        in_fields: ``"scalar"`` or ``"hidden"``.

    Shapes: ``(B, in_tensor_channels, D, H, W) -> (B, out_channels * field_size, D / strides, ...)``.

    Example (a MONAI-style stack, equivariant end to end)::

        net = nn.Sequential(
            EquivariantResidualUnit(3, 1, 4, group="octa"),                         # image -> 4 fields (96 ch)
            EquivariantResidualUnit(3, 4, 8, group="octa", in_fields="hidden", strides=2),
            EquivariantHead(3, 8, 3, group="octa"),                                 # 8 fields -> 3 logits
        )
    """

    def __init__(self, spatial_dims: int = 3, in_channels: int = 1, out_channels: int = 1, group: str = "octa",
                 strides: Union[int, Sequence[int]] = 1, kernel_size: int = 3, subunits: int = 2, act: ActSpec = "elu",
                 norm: NormSpec = "batch", dropout: float = 0.0, in_fields: str = "scalar"):
        super().__init__()
        _check_spatial_dims(spatial_dims)
        if int(subunits) < 1:
            raise ValueError(f"subunits must be >= 1, got {subunits}")
        self.group = get_group(group).name
        self.in_fields, self.out_fields = in_fields, "hidden"
        self.in_spec = field_spec(self.group, in_channels, in_fields)
        field_spec(self.group, out_channels, "hidden")  # argument check
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride = _stride(strides)
        self.down = EquivariantDownsample(self.stride, self.in_spec) if self.stride > 1 else nn.Identity()
        self.unit = FieldResidualUnit(self.in_spec, out_channels, kernel_size, norm, act, dropout, int(subunits))
        self.out_spec = self.unit.out_spec
        self.input_check = self._make_input_check()

    def _chain(self) -> List[nn.Module]:
        return [self.down, self.unit]


class EquivariantHead(_MonaiBlock):
    """Hidden fields -> scalar channels (per-voxel logits), like the final ``conv_only`` convolution of a MONAI
    ``UNet``. The output is invariant per voxel (it only moves with the voxels under a rotation), so any
    ordinary layer, ``softmax``, loss or metric may follow.

    Args:
        spatial_dims: must be 3. in_channels: hidden fields in. out_channels: scalar channels out (classes).
        group: registered group name. kernel_size: odd kernel size (1 as MONAI's UNet head, default).
        bias: learn a per-class bias.
    """

    def __init__(self, spatial_dims: int = 3, in_channels: int = 1, out_channels: int = 2, group: str = "octa",
                 kernel_size: int = 1, bias: bool = True):
        super().__init__()
        _check_spatial_dims(spatial_dims)
        self.group = get_group(group).name
        self.in_fields, self.out_fields = "hidden", "scalar"
        self.in_spec = field_spec(self.group, in_channels, "hidden")
        self.out_spec = field_spec(self.group, out_channels, "scalar")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv = EquivariantConv3d(self.in_spec, self.out_spec, kernel_size, bias=bias)
        self.input_check = self._make_input_check()

    def _chain(self) -> List[nn.Module]:
        return [self.conv]
