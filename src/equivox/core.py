"""The small core every equivox layer may import: its errors, its one input validator and the plain-torch pieces
several layers' exports share. Imports only torch (no escnn, no MONAI), so :mod:`equivox.export` stays light.

* :class:`EquivarianceError`, :class:`ExportError`: the two error types of equivox models.
* :class:`InputCheck`: the input validator of every equivox network and MONAI-style block (eager, scripted and
  exported alike).
* :class:`PlainModule`: base of the plain-torch layers an export is made of (each defined next to the equivox
  layer it replaces, e.g. :class:`equivox.nn.pooling.FieldMax`); :func:`equivox.export.export` copies them.
* :func:`grouped_1x1`, :func:`bn_affine`: helpers of those exports.

>>> import torch
>>> check = InputCheck(in_channels=1, multiple=4, name="Net")
>>> check(torch.zeros(1, 1, 8, 8, 8)).shape
torch.Size([1, 1, 8, 8, 8])
>>> check(torch.zeros(1, 1, 8, 8, 6))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
equivox.core.EquivarianceError: Net input spatial size (8, 8, 6) is not divisible by 4: ...
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Union

import torch
from torch import nn

__all__ = ["EquivarianceError", "ExportError", "InputCheck", "PlainModule", "bn_affine", "divisibility_message",
           "grouped_1x1"]


class ExportError(TypeError):
    """Raised for a module :func:`equivox.export.export` does not know how to convert (the message names it)."""


class EquivarianceError(ValueError):
    """Raised when an input would silently break exact equivariance (e.g. a size not divisible by the strides)."""


class PlainModule(nn.Module):
    """Base of the plain-torch layers of an export (``torch`` operations only, no escnn, scriptable).

    :func:`equivox.export.to_plain` copies a leaf of this type as it copies a ``torch.nn`` leaf; one with children
    is copied with its children exported."""


def _shape_str(shape: List[int]) -> str:
    return "(" + ", ".join([str(s) for s in shape]) + ")"


def divisibility_message(where: str, shape: List[int], factor: List[int]) -> str:
    """The message of a spatial size ``shape`` (``(D, H, W)``) not divisible by ``factor`` (per axis; scriptable)."""
    same = factor[0] == factor[1] and factor[1] == factor[2]
    f = str(factor[0]) if same else _shape_str(factor)
    pad = ("monai.transforms.DivisiblePad(k=" + f + ")") if same else "monai.transforms.DivisiblePad(k=[d, h, w])"
    return (where + " spatial size " + _shape_str(shape) + " is not divisible by " + f + ": pooling it would not be "
            "exactly equivariant under 90-degree rotations. Pad or crop each spatial size to a multiple of " + f
            + " (e.g. " + pad + ").")


def as_axes(factor: Union[int, Sequence[int]], what: str = "factor") -> List[int]:
    """An int or a ``(d, h, w)`` sequence as three positive ints (``ValueError`` otherwise)."""
    vals = [int(factor)] * 3 if isinstance(factor, int) else [int(f) for f in factor]
    if len(vals) != 3 or min(vals) < 1:
        raise ValueError(f"{what} must be a positive int or three positive ints (d, h, w), got {factor!r}")
    return vals


class InputCheck(PlainModule):
    """The input validator of every equivox network and block (eager, scripted, ``torch.export``-ed alike).

    Checks a ``(B, in_channels, D, H, W)`` input whose spatial sizes are divisible by ``multiple`` and returns it
    as a floating-point ``torch.Tensor`` (a MONAI ``MetaTensor`` becomes a plain tensor in eager mode).

    Args:
        in_channels: tensor channels expected.
        multiple: every spatial size must be a multiple of it (``prod(strides)``; an int, or ``(d, h, w)`` for
            per-axis strides; 1: no check).
        name: who is checking (the module's class name), first word of every message.
        field_size: tensor channels per field of the input (1 for scalar inputs); with ``hidden=True`` the
            channel-count message explains fields (``in_channels`` counts hidden fields in equivox blocks).
        group: group name, for messages.
        hidden: the input is hidden fields (``field_size`` channels each) rather than scalar channels.
        detail: give the field-aware explanation of a wrong channel count (MONAI-style blocks).

    Raises:
        TypeError: not a tensor (eager). ValueError: wrong rank or channel count.
        EquivarianceError: a spatial size not divisible by ``multiple`` (``torch.jit.Error`` naming it when
        scripted).
    """

    def __init__(self, in_channels: int, multiple: Union[int, Sequence[int]] = 1, name: str = "model",
                 field_size: int = 1, group: str = "", hidden: bool = False, detail: bool = False):
        super().__init__()
        self.in_channels = int(in_channels)
        self.multiple: List[int] = as_axes(multiple, "multiple")
        self.name = str(name)
        self.field_size = int(field_size)
        self.group = str(group)
        self.hidden = bool(hidden)
        self.detail = bool(detail)

    def _channel_message(self, got: int, shape: List[int]) -> str:
        msg = (self.name + " was built for in_channels=" + str(self.in_channels) + ", got input with " + str(got)
               + " channels (shape " + _shape_str(shape) + ")")
        if not self.detail:
            return msg
        size = self.field_size
        if self.hidden:
            n = self.in_channels // size
            msg += ("; it expects " + str(n) + " hidden fields of group '" + self.group + "' x " + str(size)
                    + " channels = " + str(self.in_channels) + " channels (in_channels counts hidden FIELDS when "
                    "in_fields='hidden')")
            if got % size == 0:
                msg += "; the input looks like " + str(got // size) + " hidden fields"
            elif got < size:
                msg += "; the input looks like scalar channels: use in_fields='scalar'"
        else:
            msg += "; it expects " + str(self.in_channels) + " scalar channels (in_fields='scalar')"
            if size > 1 and got % size == 0:
                msg += ("; the input has a multiple of " + str(size) + " channels: if it comes from another "
                        "equivox block use in_fields='hidden', in_channels=" + str(got // size))
        return msg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting() and not torch.compiler.is_compiling():
            if hasattr(x, "as_tensor"):  # MONAI MetaTensor -> plain tensor (metadata is not needed inside)
                x = x.as_tensor()
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"{self.name} expects a torch.Tensor (B, C, D, H, W), got {type(x).__name__}")
        shape: List[int] = [int(s) for s in x.shape]
        if len(shape) != 5:
            raise ValueError(self.name + " expects a 5D tensor (B, C, D, H, W), got shape " + _shape_str(shape))
        if shape[1] != self.in_channels:
            raise ValueError(self._channel_message(shape[1], shape))
        for i in range(3):
            if shape[i + 2] % self.multiple[i] != 0:
                raise EquivarianceError(divisibility_message(self.name + " input", shape[2:], self.multiple))
        if not x.is_floating_point():
            x = x.float()
        return x

    def extra_repr(self) -> str:
        m = self.multiple
        return f"{self.name}: in_channels={self.in_channels}, multiple={m[0] if len(set(m)) == 1 else tuple(m)}"


def grouped_1x1(blocks: torch.Tensor, n_fields: int, bias: Optional[torch.Tensor] = None) -> nn.Conv3d:
    """``n_fields`` copies of the matrix ``blocks`` ``(out, in)`` as a grouped 1x1x1 convolution
    ``(B, n_fields * in, ...) -> (B, n_fields * out, ...)``; ``bias``: ``(n_fields * out,)`` or None."""
    out_f, in_f = blocks.shape
    conv = nn.Conv3d(n_fields * in_f, n_fields * out_f, 1, groups=n_fields, bias=bias is not None)
    conv = conv.to(device=blocks.device, dtype=blocks.dtype)
    with torch.no_grad():
        conv.weight.copy_(blocks.detach().repeat(n_fields, 1)[:, :, None, None, None])
        if bias is not None:
            conv.bias.copy_(bias)
    return conv


def bn_affine(bn: nn.BatchNorm3d):
    """Eval-mode batch norm as ``y = scale * x + shift`` per channel: ``(scale, shift)``, each ``(C,)``."""
    if bn.running_mean is None or bn.running_var is None:
        raise ExportError("batch norm without running statistics (track_running_stats=False) cannot be folded")
    scale = (bn.running_var + bn.eps).rsqrt()
    shift = -bn.running_mean * scale
    if bn.affine:
        scale, shift = scale * bn.weight, shift * bn.weight + bn.bias
    return scale.detach(), shift.detach()


def affine_batchnorm(scale: torch.Tensor, shift: torch.Tensor) -> nn.BatchNorm3d:
    """A per-channel ``y = scale * x + shift`` (each ``(C,)``) as an eval-mode ``nn.BatchNorm3d``, which torch's
    conv-bn fusion, ONNX and TorchScript know. ``eps`` stays positive (torch < 2.13 rejects ``eps = 0`` even in eval
    mode); the running variance ``1 - eps`` makes ``var + eps`` one, so the map is exact to float rounding."""
    bn = nn.BatchNorm3d(scale.numel(), affine=True).to(scale)
    with torch.no_grad():
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
        bn.weight.copy_(scale)
        bn.bias.copy_(shift)
    return bn.eval()
