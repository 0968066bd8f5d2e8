"""Export any module tree of equivox blocks to plain PyTorch (only ``torch.nn`` layers, no escnn): the tree walk.

``export(model)`` returns a module that computes the same function as ``model.eval()``. It walks the tree once,
with one rule per node (:func:`to_plain`), and knows no equivox class by name:

* a module with an ``_export()`` method (every :class:`equivox.nn.EquivariantModule`) is replaced by what that
  method returns; each layer defines its plain form next to itself (an ``EquivariantConv3d`` becomes its expanded
  ``Conv3d``, ``InvariantPooling`` a :class:`~equivox.nn.pooling.FieldMax`, ...); a network becomes the *same
  class* with its children exported (its ``forward`` is written once, scriptable, and used by both);
* any other module with children (``nn.Sequential``, ``nn.ModuleList``, MONAI ``SkipConnection``, a user's own
  ``nn.Module``) is copied with each child replaced by its export, so a user network of equivox blocks exports
  without equivox knowing it;
* ``torch.nn`` / MONAI / :class:`~equivox.core.PlainModule` leaves are copied (dropout becomes ``nn.Identity``:
  the export is for inference); any other leaf, and any escnn module, raises :class:`ExportError` naming it.

With ``fold_batchnorm=True`` a pass over the plain result merges every eval-mode ``BatchNorm3d`` into the
``Conv3d`` before it (in each ``nn.Sequential``, across an ``Upsample``).

Imports only torch and :mod:`equivox.core` (no escnn, no MONAI).

>>> import torch
>>> from equivox.nn import EquivariantConvBlock, FieldSpec
>>> block = EquivariantConvBlock(FieldSpec.scalar("c4_axial", 1), out_fields=2)
>>> plain = export(block)
>>> x = torch.randn(1, 1, 8, 8, 8)
>>> bool(torch.allclose(plain(x), block.eval()(x), atol=1e-5))
True
"""
from __future__ import annotations

import copy
from typing import List

import torch
from torch import nn

from .core import ExportError, PlainModule, bn_affine

__all__ = ["export", "to_plain", "export_children", "fold_batch_norms", "ExportError"]


# --------------------------------------------------------------------------- the walk
_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def _plain_library(m: nn.Module) -> bool:
    mod = type(m).__module__
    return mod.startswith("torch.nn") or mod.startswith("monai.") or isinstance(m, PlainModule)


def to_plain(m: nn.Module) -> nn.Module:
    """The eval-mode plain-torch equivalent of ``m`` (a new module; ``m`` is not modified).

    Rules, in order: ``m._export()`` if ``m`` has it (equivox modules); escnn modules are refused; dropout becomes
    ``nn.Identity``; other ``torch.nn`` / MONAI / :class:`~equivox.core.PlainModule` leaves are copied; any module with children
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
    from monai.networks import eval_mode  # here, not at import: MONAI takes seconds to import

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
