"""Export any module tree of equivox blocks to plain PyTorch (only ``torch.nn`` layers, no escnn), and the plain
layers an export is made of.

``export(model)`` returns a module that computes the same function as ``model.eval()``. It walks the tree once,
with one rule per node (:func:`to_plain`), and knows no equivox class by name:

* a module with an ``_export()`` method (every :class:`equivox.nn.EquivariantModule`) is replaced by what that
  method returns: an ``EquivariantConv3d`` by its expanded ``Conv3d``, a field norm by ``BatchNorm3d`` /
  ``GroupNorm`` + activation (Fourier fields: grouped 1x1x1 convolutions to grid samples and back, pieces supplied
  by the group's field kind), down/upsampling by ``AvgPool3d`` / ``Upsample``, invariant pooling by
  :class:`FieldMax` / :class:`IrrepNorm`; a network by the *same class* with its children exported (its
  ``forward`` is written once, scriptable, and used by both);
* any other module with children (``nn.Sequential``, ``nn.ModuleList``, MONAI ``SkipConnection``, a user's own
  ``nn.Module``) is copied with each child replaced by its export, so a user network of equivox blocks exports
  without equivox knowing it;
* ``torch.nn`` / MONAI leaves are copied (dropout becomes ``nn.Identity``: the export is for inference); any other
  leaf, and any escnn module, raises :class:`ExportError` naming it.

With ``fold_batchnorm=True`` a pass over the plain result merges every eval-mode ``BatchNorm3d`` into the
``Conv3d`` before it (in each ``nn.Sequential``, across an ``Upsample``).

This module imports nothing else of equivox: every layer below it may use its plain layers (:class:`InputCheck`
is the one input validator of equivox models, eager and exported).
"""
from __future__ import annotations

import copy
from typing import List, Optional

import torch
from monai.networks import eval_mode
from torch import nn

__all__ = ["export", "to_plain", "export_children", "fold_batch_norms", "ExportError", "InputCheck", "FieldMax",
           "IrrepNorm", "Residual", "grouped_1x1", "bn_affine", "EquivarianceError"]


class ExportError(TypeError):
    """Raised for a module :func:`export` does not know how to convert (the message names it)."""


class EquivarianceError(ValueError):
    """Raised when an input would silently break exact equivariance (e.g. a size not divisible by the strides)."""


# --------------------------------------------------------------------------- the one input validator
def _shape_str(shape: List[int]) -> str:
    return "(" + ", ".join([str(s) for s in shape]) + ")"


def divisibility_message(where: str, shape: List[int], factor: int) -> str:
    """The message of a spatial size ``shape`` (``(D, H, W)``) not divisible by ``factor`` (scriptable)."""
    f = str(factor)
    return (where + " spatial size " + _shape_str(shape) + " is not divisible by " + f + ": pooling it would not be "
            "exactly equivariant under 90-degree rotations. Pad or crop each spatial size to a multiple of " + f
            + " (e.g. monai.transforms.DivisiblePad(k=" + f + ")).")


class InputCheck(nn.Module):
    """The input validator of every equivox network and block (eager, scripted, ``torch.export``-ed alike).

    Checks a ``(B, in_channels, D, H, W)`` input whose spatial sizes are divisible by ``multiple`` and returns it
    as a floating-point ``torch.Tensor`` (a MONAI ``MetaTensor`` becomes a plain tensor in eager mode).

    Args:
        in_channels: tensor channels expected.
        multiple: every spatial size must be a multiple of it (``prod(strides)``; 1: no check).
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

    def __init__(self, in_channels: int, multiple: int = 1, name: str = "model", field_size: int = 1,
                 group: str = "", hidden: bool = False, detail: bool = False):
        super().__init__()
        self.in_channels = int(in_channels)
        self.multiple = int(multiple)
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
        if self.multiple > 1:
            for i in range(2, 5):
                if shape[i] % self.multiple != 0:
                    raise EquivarianceError(divisibility_message(self.name + " input", shape[2:], self.multiple))
        if not x.is_floating_point():
            x = x.float()
        return x

    def extra_repr(self) -> str:
        return f"{self.name}: in_channels={self.in_channels}, multiple={self.multiple}"


# --------------------------------------------------------------------------- plain layers of an export
class FieldMax(nn.Module):
    """Max over each field's ``field_size`` channels: ``(B, F * field_size, D, H, W) -> (B, F, D, H, W)``."""

    def __init__(self, n_fields: int, field_size: int):
        super().__init__()
        self.n_fields = int(n_fields)
        self.field_size = int(field_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, d, h, w = x.shape[0], x.shape[2], x.shape[3], x.shape[4]
        return x.reshape(b, self.n_fields, self.field_size, d, h, w).amax(dim=2)

    def extra_repr(self) -> str:
        return f"{self.n_fields} fields x {self.field_size}"


class IrrepNorm(nn.Module):
    """Norms of irreducible components: ``sqrt(assign((Q_inv x)^2) + 1e-12)`` with two grouped 1x1x1 convolutions.

    ``(B, F * field_size, D, H, W) -> (B, F * n_irreps, D, H, W)``.
    """

    def __init__(self, to_irreps: nn.Conv3d, assign: nn.Conv3d):
        super().__init__()
        self.to_irreps = to_irreps
        self.assign = assign

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.assign(self.to_irreps(x).pow(2)) + 1e-12).sqrt()


class StatsHead(nn.Module):
    """Plain form of :class:`~equivox.nn.GroupStatsHead`: ``classes(norm([mean(x), pool(x), -pool(-x)]))``."""

    def __init__(self, mean: nn.Module, pool: nn.Module, norm: nn.Module, classes: nn.Module):
        super().__init__()
        self.mean, self.pool, self.norm, self.classes = mean, pool, norm, classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classes(self.norm(torch.cat([self.mean(x), self.pool(x), -self.pool(-x)], 1)))


class CosetSwapHead(nn.Module):
    """Plain form of :class:`~equivox.nn.ClassSwapHead`: ``features(x)`` reshaped to fields, max over the two
    coset channel sets ``p``, ``q``, then a fixed 1x1x1 convolution of ``[p, q, |p - q|]``."""

    def __init__(self, features: nn.Module, n_fields: int, field_size: int, coset_a: torch.Tensor,
                 coset_b: torch.Tensor, classes: nn.Conv3d):
        super().__init__()
        self.features, self.classes = features, classes
        self.n_fields, self.field_size = int(n_fields), int(field_size)
        self.register_buffer("coset_a", coset_a.clone())
        self.register_buffer("coset_b", coset_b.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.features(x)
        b, d, h, w = y.shape[0], y.shape[2], y.shape[3], y.shape[4]
        y = y.reshape(b, self.n_fields, self.field_size, d, h, w)
        p = y.index_select(2, self.coset_a).amax(2)
        q = y.index_select(2, self.coset_b).amax(2)
        return self.classes(torch.cat([p, q, (p - q).abs()], 1))


class Residual(nn.Module):
    """``block(x) + skip(x)`` (plain residual unit): ``(B, C, D, H, W) -> (B, C', D, H, W)``."""

    def __init__(self, block: nn.Module, skip: nn.Module):
        super().__init__()
        self.block = block
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + self.skip(x)


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


# --------------------------------------------------------------------------- the walk
_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def _plain_library(m: nn.Module) -> bool:
    mod = type(m).__module__
    return mod.startswith("torch.nn") or mod.startswith("monai.") or mod == __name__


def to_plain(m: nn.Module) -> nn.Module:
    """The eval-mode plain-torch equivalent of ``m`` (a new module; ``m`` is not modified).

    Rules, in order: ``m._export()`` if ``m`` has it (equivox modules); escnn modules are refused; dropout becomes
    ``nn.Identity``; other ``torch.nn`` / MONAI / :mod:`equivox.export` leaves are copied; any module with children
    is copied with its children exported (:func:`export_children`); any other leaf is refused.

    Raises:
        ExportError: naming the module that cannot be converted.
    """
    hook = getattr(m, "_export", None)
    if callable(hook):
        return hook()
    if type(m).__module__.startswith("escnn"):
        raise ExportError(f"cannot export the escnn module {type(m).__name__}: build the model from equivox.nn "
                          "layers (EquivariantConv3d, FieldNormAct, ...) instead")
    if isinstance(m, _DROPOUT):
        return nn.Identity()
    if next(m.children(), None) is not None:
        return export_children(m)
    if _plain_library(m):
        return copy.deepcopy(m)
    raise ExportError(
        f"equivox.export does not know how to convert {type(m).__name__} ({type(m).__module__}): a leaf module "
        "that is neither torch.nn / MONAI nor an equivox.nn.EquivariantModule; give it an _export() method "
        "returning plain torch.nn layers"
    )


def export_children(m: nn.Module) -> nn.Module:
    """A copy of ``m`` (same class, same forward, own parameters and buffers copied) whose every child module is
    replaced by :func:`to_plain` of it. The export of containers and of equivox networks."""
    memo = {id(child): to_plain(child) for child in m.children()}
    return copy.deepcopy(m, memo)


def _fold_sequence(layers: List[nn.Module]) -> List[nn.Module]:
    out: List[nn.Module] = []
    for layer in layers:
        conv = None
        if isinstance(layer, nn.BatchNorm3d) and out:
            if type(out[-1]) is nn.Conv3d:
                conv = out[-1]
            elif len(out) > 1 and isinstance(out[-1], nn.Upsample) and type(out[-2]) is nn.Conv3d:
                conv = out[-2]  # interpolation weights sum to 1, so a per-channel affine map commutes with it
        if conv is not None:
            scale, shift = bn_affine(layer)
            if conv.bias is None:
                conv.bias = nn.Parameter(torch.zeros(conv.out_channels, dtype=conv.weight.dtype,
                                                     device=conv.weight.device))
            with torch.no_grad():
                conv.weight.mul_(scale[:, None, None, None, None])
                conv.bias.copy_(conv.bias * scale + shift)
            continue
        out.append(layer)
    return out


def _flat(seq: nn.Sequential) -> List[nn.Module]:
    out: List[nn.Module] = []
    for layer in seq:
        out += _flat(layer) if type(layer) is nn.Sequential else [layer]
    return out


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """Merge every eval-mode ``BatchNorm3d`` that directly follows a ``Conv3d`` (possibly with an ``Upsample``
    between) inside an ``nn.Sequential`` (nested ones flattened) into that convolution; returns the folded model
    (modified in place where possible). Only for plain (exported) models."""
    if type(model) is nn.Sequential:
        return nn.Sequential(*[fold_batch_norms(layer) for layer in _fold_sequence(_flat(model))])
    for name, child in list(model.named_children()):
        setattr(model, name, fold_batch_norms(child))
    return model


def export(model: nn.Module, fold_batchnorm: bool = False) -> nn.Module:
    """Convert a (trained) equivox model, block or any module tree of them into a plain PyTorch module computing
    ``model.eval()``'s function.

    Args:
        model: any ``nn.Module`` whose leaves are equivox modules or ``torch.nn`` / MONAI layers: the equivox
            networks and blocks, an ``nn.Sequential`` of them, or a network of your own. ``model`` is not
            modified (its training mode is restored).
        fold_batchnorm: merge eval-mode batch norm into the preceding convolution (one pass over the activations
            fewer per norm; outputs then differ from ``model.eval()`` by float32 rounding, e.g. 1e-4 absolute on
            logits of magnitude 30). Default False: batch norm stays a ``BatchNorm3d`` and the outputs are
            identical to ``model.eval()``'s for regular groups.

    Returns:
        An eval-mode ``nn.Module`` without parameters that require grad, made of ``torch.nn`` layers (``Conv3d``,
        ``BatchNorm3d``/``GroupNorm``, activations, ``AvgPool3d``, ``Upsample``, ``Linear``), the plain layers of
        this module and the containers of ``model`` (an equivox network stays its class, with plain children).
        Same shapes in and out; inputs are checked (rank, channels, divisibility by ``prod(strides)``).
        Scriptable (``torch.jit.script``) and exportable (``torch.export.export``) when ``model``'s own
        containers are.

    Raises:
        ExportError: for a module it cannot convert (named).
    """
    with eval_mode(model):  # eval mode and no_grad while converting; the training flags are restored
        out = to_plain(model)
        if fold_batchnorm:
            out = fold_batch_norms(out)
    ref = next(iter(model.parameters()), None)
    if ref is not None:
        out = out.to(device=ref.device)
    for p in out.parameters():
        p.requires_grad_(False)
    return out.eval()
