"""Export a trained equivox model to a plain PyTorch module (only ``torch.nn`` layers, no escnn, no equivox).

``export(model)`` returns a module that computes the same function as ``model.eval()``:

* every :class:`~equivox.nn.EquivariantConv3d` becomes a ``torch.nn.Conv3d`` (its expanded filter);
* eval-mode field batch norm becomes a per-channel ``BatchNorm3d`` (regular groups; with ``fold_batchnorm=True``
  it is merged into the preceding ``Conv3d``) or is folded into the first 1x1x1 sampling convolution
  (SO(3)/O(3)); instance norm becomes ``nn.GroupNorm`` with one group per field;
* the nonlinearity stays a ``torch.nn`` activation: pointwise on regular fields; for Fourier fields (``so3``,
  ``o3``) it is applied on grid samples: grouped 1x1x1 ``Conv3d`` (coefficients -> samples, norm folded in)
  -> activation -> grouped 1x1x1 ``Conv3d`` (samples -> coefficients);
* downsampling is ``nn.AvgPool3d``, upsampling ``nn.Upsample``, skips are ``torch.cat``;
* invariant pooling is a channel max over each field (group pooling) or the norms of irreducible components
  computed with grouped 1x1x1 convolutions (norm pooling); the classifier head is the same ``nn.Linear`` stack.

The result runs under ``torch.jit.script``, ``torch.jit.trace`` and ``torch.export.export`` and keeps the input
checks of the original (rank, channel count, spatial sizes divisible by ``prod(strides)``), with clear messages.
Dropout is dropped (the export is for inference). Supported: ``EquivariantUNet``, ``EquivariantMonaiUNet``
(MONAI ``SkipConnection`` s become plain ``cat`` / ``add`` skips), ``InvariantClassifier``,
``EquivariantEncoder`` / ``EquivariantFeatureExtractor`` and the blocks of :mod:`equivox.nets.monai_blocks`, for
every registered group and every norm (``"batch"``, ``"instance"``, ``None``) and MONAI activation.
"""
from __future__ import annotations

import copy
from contextvars import ContextVar
from typing import List

import torch
from monai.networks.layers import SkipConnection
from torch import nn

from .groups import get_group
from .nn.blocks import EquivariantConvBlock
from .nn.blocks import EquivariantResidualUnit as _FieldResidualUnit
from .nn.conv import EquivariantConv3d
from .nn.fieldwise import FieldNormAct
from .nn.pooling import InvariantPooling
from .nn.sampling import EquivariantDownsample, EquivariantUpsample

__all__ = ["export", "ExportError", "InputCheck", "FieldMax", "IrrepNorm", "ExportedUNet", "ExportedClassifier",
           "ExportedEncoder", "ExportedBlock"]


class ExportError(TypeError):
    """Raised for a module :func:`export` does not know how to convert (the message names it)."""


# --------------------------------------------------------------------------- plain modules of the export
class InputCheck(nn.Module):
    """Validate ``(B, in_channels, D, H, W)`` inputs with spatial sizes divisible by ``multiple``; returns ``x``.

    Works in eager mode, under ``torch.jit.script`` and under ``torch.export`` (static shapes).
    """

    def __init__(self, in_channels: int, multiple: int, name: str):
        super().__init__()
        self.in_channels = int(in_channels)
        self.multiple = int(multiple)
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(self.name + " expects a 5D tensor (B, C, D, H, W), got " + str(x.dim()) + " dims")
        if x.shape[1] != self.in_channels:
            raise ValueError(self.name + " was built for in_channels=" + str(self.in_channels) + ", got input with "
                             + str(x.shape[1]) + " channels")
        if self.multiple > 1:
            for i in range(2, 5):
                if x.shape[i] % self.multiple != 0:
                    raise ValueError(self.name + " input spatial size " + str(list(x.shape[2:])) + " is not "
                                     "divisible by " + str(self.multiple) + " (exact equivariance needs every "
                                     "spatial size to be a multiple of prod(strides)); pad or crop the input")
        if not x.is_floating_point():
            x = x.float()
        return x

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, multiple={self.multiple}"


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


class _Residual(nn.Module):
    def __init__(self, block: nn.Module, skip: nn.Module):
        super().__init__()
        self.block = block
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + self.skip(x)


class _Skip(nn.Module):
    """MONAI ``SkipConnection`` in plain torch: ``cat([x, sub(x)])`` along channels, or ``x + sub(x)``."""

    def __init__(self, submodule: nn.Module, add: bool):
        super().__init__()
        self.submodule = submodule
        self.add = add

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.submodule(x)
        return x + y if self.add else torch.cat([x, y], dim=1)


class ExportedBlock(nn.Module):
    """A converted MONAI-style equivox block: input check, then the plain layers."""

    def __init__(self, check: InputCheck, body: nn.Module):
        super().__init__()
        self.check = check
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.check(x))


class ExportedEncoder(nn.Module):
    """Plain encoder: ``(B, C, D, H, W)`` -> list of per-level features (hidden fields, or invariant channels)."""

    def __init__(self, check: InputCheck, downs: List[nn.Module], levels: List[nn.Module], pools: List[nn.Module]):
        super().__init__()
        self.check = check
        self.downs = nn.ModuleList(downs)
        self.levels = nn.ModuleList(levels)
        self.pools = nn.ModuleList(pools)

    def features(self, x: torch.Tensor) -> List[torch.Tensor]:
        feats: List[torch.Tensor] = []
        for down, level in zip(self.downs, self.levels):
            x = level(down(x))
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        feats = self.features(self.check(x))
        out: List[torch.Tensor] = []
        for i, pool in enumerate(self.pools):
            out.append(pool(feats[i]))
        return out


class ExportedUNet(nn.Module):
    """Plain U-Net: ``(B, in_channels, D, H, W)`` -> logits ``(B, out_channels, D, H, W)``."""

    def __init__(self, encoder: ExportedEncoder, ups: List[nn.Module], decoders: List[nn.Module], head: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.ups = nn.ModuleList(ups)
        self.decoders = nn.ModuleList(decoders)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder.features(self.encoder.check(x))
        y = feats[-1]
        n = len(feats)
        for i, (up, dec) in enumerate(zip(self.ups, self.decoders)):
            y = dec(torch.cat([up(y), feats[n - 2 - i]], dim=1))
        return self.head(y)


class ExportedClassifier(nn.Module):
    """Plain classifier: ``(B, in_channels, D, H, W)`` -> logits ``(B, out_channels)``."""

    def __init__(self, encoder: ExportedEncoder, pool: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.pool = pool
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder.features(self.encoder.check(x))
        inv = self.pool(feats[-1]).mean(dim=(2, 3, 4))
        return self.head(inv)


# --------------------------------------------------------------------------- converters
def _grouped_1x1(blocks: torch.Tensor, n_fields: int, bias=None) -> nn.Conv3d:
    """``n_fields`` copies of the matrix ``blocks`` (out, in) as a grouped 1x1x1 convolution."""
    out_f, in_f = blocks.shape
    conv = nn.Conv3d(n_fields * in_f, n_fields * out_f, 1, groups=n_fields, bias=bias is not None)
    with torch.no_grad():
        conv.weight.copy_(blocks.repeat(n_fields, 1)[:, :, None, None, None])
        if bias is not None:
            conv.bias.copy_(bias)
    return conv


def _bn_affine(bn: nn.BatchNorm3d):
    """Eval-mode batch norm as ``y = scale * x + shift`` per channel."""
    if bn.running_mean is None or bn.running_var is None:
        raise ExportError("batch norm without running statistics (track_running_stats=False) cannot be folded")
    scale = (bn.running_var + bn.eps).rsqrt()
    shift = -bn.running_mean * scale
    if bn.affine:
        scale, shift = scale * bn.weight, shift * bn.weight + bn.bias
    return scale.detach(), shift.detach()


def _activation(act: nn.Module, n_fields: int, per_field: int) -> nn.Module:
    act = copy.deepcopy(act)
    if isinstance(act, nn.PReLU) and act.num_parameters > 1:  # per-field slopes -> per-channel slopes
        new = nn.PReLU(n_fields * per_field)
        with torch.no_grad():
            new.weight.copy_(act.weight.detach().repeat_interleave(per_field))
        return new
    return act


def _norm_act(m: FieldNormAct) -> List[nn.Module]:
    """A FieldNormAct as plain layers (BatchNorm3d is returned unfolded; :func:`_fold` merges it into a conv)."""
    n, size = m.n_fields, m.field_size
    fourier = m.A is not None
    per_field = m.A.shape[0] if fourier else size
    layers: List[nn.Module] = []
    norm = m.norm
    if fourier:
        a, a_inv = m.A.detach(), m.A_inv.detach()
        if isinstance(norm, nn.BatchNorm3d):
            scale, shift = _bn_affine(norm)
            to_samples = _grouped_1x1(a, n, bias=shift.repeat_interleave(per_field))
            with torch.no_grad():
                to_samples.weight.mul_(scale.repeat_interleave(per_field)[:, None, None, None, None])
            layers.append(to_samples)
        else:
            layers.append(_grouped_1x1(a, n))
    if isinstance(norm, nn.BatchNorm3d) and not fourier:
        scale, shift = _bn_affine(norm)
        bn = nn.BatchNorm3d(n * per_field, eps=0.0, affine=True)
        with torch.no_grad():
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0)
            bn.weight.copy_(scale.repeat_interleave(per_field))
            bn.bias.copy_(shift.repeat_interleave(per_field))
        layers.append(bn.eval())
    elif isinstance(norm, nn.InstanceNorm3d):
        if norm.track_running_stats:
            raise ExportError("instance norm with running statistics is not supported by export")
        gn = nn.GroupNorm(n, n * per_field, eps=norm.eps, affine=True)
        with torch.no_grad():
            w = norm.weight.detach() if norm.affine else torch.ones(n)
            b = norm.bias.detach() if norm.affine else torch.zeros(n)
            gn.weight.copy_(w.repeat_interleave(per_field))
            gn.bias.copy_(b.repeat_interleave(per_field))
        layers.append(gn)
    elif not isinstance(norm, (nn.Identity, nn.BatchNorm3d)):
        raise ExportError(f"unsupported normalization {type(norm).__name__} in {m}")
    if not isinstance(m.act, nn.Identity):
        layers.append(_activation(m.act, n, per_field))
    if fourier:
        layers.append(_grouped_1x1(m.A_inv.detach(), n))
    return layers


_FOLD_BATCHNORM: ContextVar[bool] = ContextVar("equivox_fold_batchnorm", default=False)


def _fold(layers: List[nn.Module]) -> List[nn.Module]:
    """Merge every ``Conv3d`` directly followed by an eval-mode ``BatchNorm3d`` into one ``Conv3d`` (when
    :func:`export` is asked to fold)."""
    if not _FOLD_BATCHNORM.get():
        return layers
    out: List[nn.Module] = []
    for layer in layers:
        conv = None
        if isinstance(layer, nn.BatchNorm3d) and out:
            if isinstance(out[-1], nn.Conv3d):
                conv = out[-1]
            elif len(out) > 1 and isinstance(out[-1], nn.Upsample) and isinstance(out[-2], nn.Conv3d):
                conv = out[-2]  # interpolation weights sum to 1, so a per-channel affine map commutes with it
        if conv is not None:
            scale, shift = _bn_affine(layer)
            if conv.bias is None:
                conv.bias = nn.Parameter(torch.zeros(conv.out_channels, dtype=conv.weight.dtype,
                                                     device=conv.weight.device))
            with torch.no_grad():
                conv.weight.mul_(scale[:, None, None, None, None])
                conv.bias.copy_(conv.bias * scale + shift)
            continue
        out.append(layer)
    return out


def _flatten(m: nn.Module) -> List[nn.Module]:
    """Convert ``m`` to a list of plain layers to be run in sequence."""
    if isinstance(m, EquivariantConv3d):
        return [m.to_conv3d()]
    if isinstance(m, FieldNormAct):
        return _norm_act(m)
    if isinstance(m, EquivariantConvBlock):
        return [layer for sub in m.layers for layer in _flatten(sub)]
    if isinstance(m, nn.Sequential):
        return [layer for sub in m for layer in _flatten(sub)]
    if isinstance(m, EquivariantDownsample):
        return [nn.AvgPool3d(m.factor)] if m.factor > 1 else []
    if isinstance(m, EquivariantUpsample):
        if m.factor == 1:
            return []
        if m.mode == "nearest":
            return [nn.Upsample(scale_factor=float(m.factor), mode="nearest")]
        return [nn.Upsample(scale_factor=float(m.factor), mode="trilinear", align_corners=False)]
    if isinstance(m, InvariantPooling):
        return [_pooling(m)]
    if isinstance(m, _FieldResidualUnit):
        return [_Residual(_sequential(m.block), _sequential(m.skip))]
    if isinstance(m, SkipConnection):
        if m.mode not in ("cat", "add") or m.dim != 1:
            raise ExportError(f"SkipConnection(mode={m.mode!r}, dim={m.dim}) is not supported by export")
        return [_Skip(_sequential(m.submodule), m.mode == "add")]
    from .nets.base import EquivariantNetwork
    from .nets.monai_blocks import _MonaiBlock

    if isinstance(m, (EquivariantNetwork, _MonaiBlock)):
        return [_export_eval(m)]
    if isinstance(m, (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)):
        return []
    if type(m).__module__.startswith("torch.nn") or type(m).__module__.startswith("monai.networks.layers"):
        if any(isinstance(c, (EquivariantConv3d, FieldNormAct)) for c in m.modules()):
            raise ExportError(f"cannot export container {type(m).__name__} holding equivariant layers")
        return [copy.deepcopy(m).eval()]
    raise ExportError(f"equivox.export does not know how to convert {type(m).__name__} ({type(m).__module__})")


def _sequential(m: nn.Module) -> nn.Module:
    layers = _fold(_flatten(m))
    if not layers:
        return nn.Identity()
    return layers[0] if len(layers) == 1 else nn.Sequential(*layers)


def _pooling(m: InvariantPooling) -> nn.Module:
    if m.mode == "group":
        if m.A is None:
            return FieldMax(m.n_fields, m.field_size)
        samples = m.A.shape[0]
        return nn.Sequential(_grouped_1x1(m.A.detach(), m.n_fields), FieldMax(m.n_fields, samples))
    return IrrepNorm(_grouped_1x1(m.Q_inv.detach(), m.n_fields), _grouped_1x1(m.assign.detach(), m.n_fields))


def _encoder(enc, name: str, pools=None) -> ExportedEncoder:
    check = InputCheck(enc.in_channels, enc.size_multiple, name)
    downs = [_sequential(d) for d in enc.downs]
    levels = [_sequential(lv) for lv in enc.levels]
    pools = [nn.Identity() for _ in levels] if pools is None else [_sequential(p) for p in pools]
    return ExportedEncoder(check, downs, levels, pools)


def _export_eval(model: nn.Module) -> nn.Module:
    from .nets.classifier import InvariantClassifier
    from .nets.encoder import EquivariantEncoder
    from .nets.monai_blocks import EquivariantConvolution, EquivariantHead, EquivariantResidualUnit, _MonaiBlock
    from .nets.monai_unet import EquivariantMonaiUNet
    from .nets.unet import EquivariantUNet

    name = type(model).__name__
    if isinstance(model, EquivariantMonaiUNet):
        return ExportedBlock(InputCheck(model.in_channels, model.size_multiple, name), _sequential(model.model))
    if isinstance(model, EquivariantUNet):
        enc = _encoder(model.encoder, name)
        return ExportedUNet(enc, [_sequential(u) for u in model.ups], [_sequential(d) for d in model.decoders],
                            _sequential(model.head))
    if isinstance(model, InvariantClassifier):
        return ExportedClassifier(_encoder(model.encoder, name), _sequential(model.pool), _sequential(model.head))
    if isinstance(model, EquivariantEncoder):
        return _encoder(model, name, getattr(model, "pools", None))
    if isinstance(model, _MonaiBlock):
        check = InputCheck(model.in_spec.size, getattr(model, "stride", 1), name)
        if isinstance(model, EquivariantConvolution):
            body = _sequential(nn.Sequential(model.down, model.conv, model.up, model.adn))
        elif isinstance(model, EquivariantResidualUnit):
            body = _sequential(nn.Sequential(model.down, model.unit))
        elif isinstance(model, EquivariantHead):
            body = _sequential(model.conv)
        else:
            raise ExportError(f"equivox.export does not know the block {name}")
        return ExportedBlock(check, body)
    layers = _fold(_flatten(model))
    return nn.Sequential(*layers)


def export(model: nn.Module, fold_batchnorm: bool = False) -> nn.Module:
    """Convert a (trained) equivox model or block into a plain PyTorch module computing ``model.eval()``'s function.

    Args:
        model: an ``EquivariantUNet``, ``InvariantClassifier``, ``EquivariantEncoder`` /
            ``EquivariantFeatureExtractor``, a block of :mod:`equivox.nets.monai_blocks`, or an equivox layer /
            ``nn.Sequential`` of them. Any group, norm and activation the nets use. ``model`` is not modified.
        fold_batchnorm: merge eval-mode batch norm into the preceding convolution (one pass over the activations
            fewer per norm; outputs then differ from ``model.eval()`` by float32 rounding, e.g. 1e-4 absolute on
            logits of magnitude 30). Default False: batch norm stays a ``BatchNorm3d`` and the outputs are
            identical to ``model.eval()``'s for regular groups.

    Returns:
        An eval-mode ``nn.Module`` made of ``torch.nn`` layers (``Conv3d``, ``BatchNorm3d``/``GroupNorm``,
        activations, ``AvgPool3d``, ``Upsample``, ``Linear``) and small plain containers of this module. Same
        shapes in and out as ``model``; inputs are checked (rank, channels, divisibility by ``prod(strides)``).
        Scriptable (``torch.jit.script``) and exportable (``torch.export.export``).

    Raises:
        ExportError: for a module type it cannot convert.
    """
    was_training = model.training
    model.eval()
    token = _FOLD_BATCHNORM.set(bool(fold_batchnorm))
    try:
        with torch.no_grad():
            out = _export_eval(model)
    finally:
        _FOLD_BATCHNORM.reset(token)
        model.train(was_training)
    ref = next(iter(model.parameters()), None)
    if ref is not None:
        out = out.to(device=ref.device)
    for p in out.parameters():
        p.requires_grad_(False)
    return out.eval()
