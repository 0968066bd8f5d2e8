"""Group test-time augmentation: make any model invariant / equivariant on grid-exact elements."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..data.rotations import grid_elements_of

__all__ = ["GroupTTA"]

_TASKS = ("classification", "segmentation")


class GroupTTA(nn.Module):
    """Average a model over the grid-exact elements of a group (a symmetrisation baseline).

    Args:
        model: any ``nn.Module``: classifier ``(B, C, D, H, W) -> (B, K)`` or segmenter
            ``(B, C, D, H, W) -> (B, K, D, H, W)``.
        group: group name (its grid-exact elements: ``"octa"`` 24, ``"full_octa"`` 48, ``"ico"`` 12, ...),
            a :class:`~equivox.groups.Group`, or a list of :class:`~equivox.groups.GridElement` forming a group.
        task: ``"classification"``: returns ``log(mean_g softmax(model(g x)))`` ``(B, K)``: log of the averaged
            probabilities, usable as logits (its softmax is the averaged probability); ``"segmentation"``: returns
            ``mean_g g^{-1}(model(g x))`` ``(B, K, D, H, W)``: per-voxel logits mapped back and averaged.

    The result is exactly invariant (classification) / equivariant (segmentation, scalar fields) under every
    element of the set when the set is closed under composition (a group), at ``len(elements)`` times the cost.
    It is not invariant to other rotations. Attributes ``group``, ``size_multiple``, ``out_channels``
    and ``in_channels`` mirror the wrapped model where it has them.
    """

    def __init__(self, model: nn.Module, group="octa", task: str = "classification"):
        super().__init__()
        if task not in _TASKS:
            raise ValueError(f"task must be one of {_TASKS}, got {task!r}")
        self.model = model
        self.task = task
        self.elements = grid_elements_of(group)
        self.group = group if isinstance(group, str) else None
        for attr in ("out_channels", "in_channels"):
            if hasattr(model, attr):
                setattr(self, attr, getattr(model, attr))

    @property
    def size_multiple(self) -> int:
        return int(getattr(self.model, "size_multiple", 1) or 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"GroupTTA expects (B, C, D, H, W), got shape {tuple(x.shape)}")
        total = None
        for g in self.elements:
            y = self.model(g.apply(x))
            if self.task == "classification":
                if y.dim() != 2:
                    raise ValueError(f"GroupTTA(task='classification') needs logits (B, K), got {tuple(y.shape)}")
                y = torch.softmax(y, dim=1)
            else:
                if y.dim() != 5:
                    raise ValueError(f"GroupTTA(task='segmentation') needs logits (B, K, D, H, W), got "
                                     f"{tuple(y.shape)}")
                y = g.inverse().apply(y)
            total = y if total is None else total + y
        mean = total / len(self.elements)
        if self.task == "classification":
            return torch.log(mean.clamp_min(torch.finfo(mean.dtype).tiny))
        return mean

    def extra_repr(self) -> str:
        return f"task={self.task!r}, elements={len(self.elements)}"
