"""Optional activation checkpointing for wide equivariant networks.

Regular fields make activations ``|G|`` times wider than a plain CNN's; at 96^3 - 128^3 the activations kept for
the backward pass dominate memory. :func:`enable_activation_checkpointing` makes the convolution blocks of any
equivox network recompute their activations during the backward pass (``torch.utils.checkpoint``, non-reentrant)
instead of storing them: peak memory falls to about one block's activations per level plus the block inputs, for
roughly one extra forward pass of compute.

It works on a built model in place, without changing its classes, parameters or ``state_dict``: each selected
block gets an instance-level ``forward`` that runs the class's forward under ``checkpoint``. Outputs and gradients
are those of the model without checkpointing (dropout sees the same random numbers: the RNG state is replayed),
and batch-norm running statistics are updated once per step, not twice (the recomputation restores them).
:func:`disable_activation_checkpointing` undoes it. Checkpointing is active only in training mode with autograd
enabled; ``eval()``/``no_grad`` forwards are unchanged.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterable, List, Optional

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = ["DEFAULT_BLOCKS", "enable_activation_checkpointing", "disable_activation_checkpointing",
           "checkpointed_modules"]

#: class names of the equivox blocks checkpointed by default (each holds one or more equivariant convolutions with
#: their norms and nonlinearities); the outermost matching module of a subtree is the checkpointed unit
DEFAULT_BLOCKS = ("EquivariantConvBlock", "FieldResidualUnit", "EquivariantResidualUnit", "EquivariantConvolution")

_STAT_NAMES = ("running_mean", "running_var", "num_batches_tracked")


class _CheckpointedForward:
    """Instance-level ``forward`` of a checkpointed block: the class's forward under ``torch.utils.checkpoint``.

    An object, not a closure, so a model with checkpointing enabled still deep-copies and pickles (the reference
    to the owning module is resolved through the copy/pickle memo)."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __call__(self, *args, **kwargs):
        module = self.module
        forward = type(module).forward
        if not (module.training and torch.is_grad_enabled()):
            return forward(module, *args, **kwargs)
        return checkpoint(forward, module, *args, use_reentrant=False,
                          context_fn=lambda: (contextlib.nullcontext(), _keep_running_stats(module)), **kwargs)


@contextlib.contextmanager
def _keep_running_stats(module: nn.Module):
    """Restore every running statistic (``running_mean``/``running_var``/``num_batches_tracked`` buffers) of
    ``module``'s subtree after the block: the recomputation must not count a batch a second time."""
    saved = [(b, b.detach().clone()) for name, b in module.named_buffers()
             if b is not None and name.rsplit(".", 1)[-1] in _STAT_NAMES]
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)


def _select(model: nn.Module, predicate: Callable[[nn.Module], bool]) -> List[nn.Module]:
    out: List[nn.Module] = []

    def visit(m: nn.Module):
        if predicate(m):
            out.append(m)  # outermost match: its children are inside the same checkpoint
            return
        for child in m.children():
            visit(child)

    for child in model.children():
        visit(child)
    return out


def enable_activation_checkpointing(model: nn.Module, blocks: Optional[Iterable] = None,
                                    predicate: Optional[Callable[[nn.Module], bool]] = None) -> nn.Module:
    """Checkpoint the activations of ``model``'s convolution blocks (in place; returns ``model``).

    Args:
        model: any module, typically an equivox network (``EquivariantUNet``, ``EquivariantMonaiUNet``, ...).
            Shapes are unchanged: ``(B, C_in, D, H, W) -> `` whatever the model returns.
        blocks: classes or class names to checkpoint (default :data:`DEFAULT_BLOCKS`); the outermost matching
            module of each subtree becomes one checkpointed unit.
        predicate: instead of ``blocks``, a function ``module -> bool`` choosing the units.

    Raises:
        ValueError: nothing in ``model`` matches (so a silent no-op cannot happen).
    """
    if predicate is None:
        wanted = tuple(DEFAULT_BLOCKS if blocks is None else blocks)
        names = {b for b in wanted if isinstance(b, str)}
        types = tuple(b for b in wanted if isinstance(b, type))

        def predicate(m):
            return type(m).__name__ in names or (bool(types) and isinstance(m, types))

    selected = _select(model, predicate)
    if not selected:
        raise ValueError(f"no module of {type(model).__name__} matches the blocks to checkpoint "
                         f"({blocks or DEFAULT_BLOCKS}); pass blocks= or predicate=")
    for m in selected:
        if not isinstance(m.__dict__.get("forward"), _CheckpointedForward):
            m.forward = _CheckpointedForward(m)
    return model


def disable_activation_checkpointing(model: nn.Module) -> nn.Module:
    """Undo :func:`enable_activation_checkpointing` (in place; returns ``model``)."""
    for m in model.modules():
        if isinstance(m.__dict__.get("forward"), _CheckpointedForward):
            del m.__dict__["forward"]
    return model


def checkpointed_modules(model: nn.Module) -> List[str]:
    """Qualified names of the submodules of ``model`` whose activations are checkpointed."""
    return [name for name, m in model.named_modules() if isinstance(m.__dict__.get("forward"), _CheckpointedForward)]
