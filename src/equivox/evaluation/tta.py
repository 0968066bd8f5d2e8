"""Group test-time augmentation: make any model invariant / equivariant on grid-exact elements."""

import copy
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..data.rotations import grid_elements_of
from ..groups import GridElement, available_groups, get_group, grid_elements_of_name, move_voxels
from ..nn.fields import FieldSpec
from ..nn.module import EquivariantModule, wrapped_channels

__all__ = ["GroupTTA"]

_TASKS = ("classification", "segmentation")


def _spec_group(group, elements: Sequence[GridElement]) -> Tuple[str, bool]:
    """``(name, registered)``: the registered group whose grid-exact elements are ``elements`` (the name given, a
    ``Group``'s name, else the first registered group with the same set of matrices; ``registered=True``), or, for a
    set that is no registered group's, the registered group of the identity alone (``registered=False``:
    :meth:`GroupTTA.check_equivariance` then checks the set itself)."""
    if isinstance(group, str):
        return get_group(group).name, True
    if hasattr(group, "grid_elements") and hasattr(group, "name"):
        return group.name, True
    want = {e.matrix for e in elements}
    identity = {GridElement.from_matrix(np.eye(3)).matrix}
    alone = None
    for name in available_groups():
        try:
            have = {e.matrix for e in grid_elements_of_name(name)}
        except Exception:  # a group that cannot list its elements here (missing optional dependency)
            continue
        if have == want:
            return name, True
        if alone is None and have == identity:
            alone = name
    return alone, False


class GroupTTA(EquivariantModule):
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

    Contract (:class:`~equivox.nn.EquivariantModule`): ``in_spec``: ``C`` scalar (plain) fields of the group;
    ``out_spec``: ``K`` scalar fields of the group, invariant logits (classification) or equivariant per-voxel
    logits (segmentation); ``C`` and ``K`` are the model's (:func:`~equivox.nn.module.wrapped_channels`; 1 where
    the model does not say). A list of elements that is no registered group's gets specs of the trivial group
    (``registered_group`` False); :meth:`check_equivariance` then checks the elements averaged over by default.
    :meth:`export`: this class with the model exported (scriptable when the model's export is).
    """

    __jit_unused_properties__ = ["size_multiple", "out_tensor_channels"]
    __jit_ignored_attributes__ = EquivariantModule.__jit_ignored_attributes__ + ["elements"]
    # element actions as data, typed for TorchScript (the identity's empty flip list has no inferable type)
    axes: List[List[int]]
    flips: List[List[int]]
    inv_axes: List[List[int]]
    inv_flips: List[List[int]]

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
        self._set_contract(group)

    def _set_contract(self, group) -> None:
        """The element actions as data and the field types (``group`` as given to the constructor)."""
        moves = [e.axes_and_flips for e in self.elements]
        inverse = [e.inverse().axes_and_flips for e in self.elements]
        self.axes: List[List[int]] = [m[0] for m in moves]
        self.flips: List[List[int]] = [m[1] for m in moves]
        self.inv_axes: List[List[int]] = [m[0] for m in inverse]
        self.inv_flips: List[List[int]] = [m[1] for m in inverse]
        cin, cout = wrapped_channels(self.model)
        spec_group, self.registered_group = _spec_group(group, self.elements)
        self.in_spec = FieldSpec.scalar(spec_group, cin or 1)
        self.out_spec = FieldSpec.scalar(spec_group, cout or 1)

    def __setstate__(self, state):
        super().__setstate__(state)
        if "axes" not in self.__dict__:  # a whole model pickled before GroupTTA had field types
            self._set_contract(self.group if self.group is not None else self.elements)

    @property
    def size_multiple(self) -> int:
        return int(getattr(self.model, "size_multiple", 1) or 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError("GroupTTA expects (B, C, D, H, W), got shape " + _shape(x.shape))
        total = torch.zeros(0)
        for k in range(len(self.axes)):
            y = self.model(_move(x, self.axes[k], self.flips[k]))
            if self.task == "classification":
                if y.dim() != 2:
                    raise ValueError("GroupTTA(task='classification') needs logits (B, K), got " + _shape(y.shape))
                y = torch.softmax(y, dim=1)
            else:
                if y.dim() != 5:
                    raise ValueError("GroupTTA(task='segmentation') needs logits (B, K, D, H, W), got "
                                     + _shape(y.shape))
                y = _move(y, self.inv_axes[k], self.inv_flips[k])
            total = y if k == 0 else total + y
        mean = total / len(self.axes)
        if self.task == "classification":
            return torch.log(mean.clamp_min(_tiny(mean.dtype)))
        return mean

    def check_equivariance(self, x: Optional[torch.Tensor] = None, elements: Optional[Sequence] = None,
                           rtol: Optional[float] = None) -> List:
        """:meth:`EquivariantModule.check_equivariance`; default ``elements``: the grid-exact elements of the spec's
        group, or the averaged elements themselves when they are no registered group's."""
        if elements is None and not self.registered_group:
            elements = self.elements
        return super().check_equivariance(x, elements, rtol)

    def _export(self) -> nn.Module:
        from ..export import to_plain

        # the model exported; the elements kept as plain matrices (no escnn objects in an export)
        memo = {id(c): to_plain(c) for c in self.children()}
        memo[id(self.elements)] = [GridElement(e.name, e.matrix) for e in self.elements]
        return copy.deepcopy(self, memo)

    def extra_repr(self) -> str:
        return f"task={self.task!r}, elements={len(self.elements)}"


def _move(x: torch.Tensor, axes: List[int], flips: List[int]) -> torch.Tensor:
    """:meth:`GridElement.apply` (scriptable): the voxel move, contiguous."""
    return move_voxels(x, axes, flips).contiguous()


def _shape(shape: List[int]) -> str:
    return "(" + ", ".join([str(int(s)) for s in shape]) + ")"


def _tiny(dtype: torch.dtype) -> float:
    """``torch.finfo(dtype).tiny`` of the floating dtypes (scriptable)."""
    if dtype == torch.float64:
        return 2.2250738585072014e-308
    if dtype == torch.float16:
        return 6.103515625e-05
    return 1.1754943508222875e-38  # float32 and bfloat16
