"""The canonicalizer network: an exactly equivariant score for every grid-exact element of a group.

:class:`GroupScorer` maps a volume ``x`` to one logit per grid-exact element ``h`` of a group, arranged so that
rotating the input permutes the logits by left multiplication:

    scores(g.x)[g h] == scores(x)[h]     for every grid-exact g and h (float rounding),

so ``argmax`` (and every rule that treats all elements alike: a margin around the maximum, softmax weights) picks
``g h`` for ``g.x`` where it picked ``h`` for ``x``. It is built from equivox blocks: an
:class:`~equivox.nets.EquivariantEncoder` with regular hidden fields on a small pooled copy of the input, spatial
mean and max pooling (voxel permutations leave both unchanged), and one equivariant 1x1x1 map to a single regular
field, whose channels *are* the group's elements (the regular representation permutes them as the group
multiplies). The channels of the grid-exact elements are the logits.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..groups import GROUPS, GridElement, RegularFields, get_group, grid_elements_of_name, group_spec
from ..nets.encoder import EquivariantEncoder
from ..nn.conv import EquivariantConv3d
from ..nn.fields import FieldSpec
from ..nn.module import EquivariantModule

__all__ = ["GroupScorer", "scorer_group"]


def _element_set(elements: Sequence[GridElement]) -> frozenset:
    return frozenset(e.matrix for e in elements)


def scorer_group(group: str) -> str:
    """The registered group whose regular fields score the grid-exact elements of ``group``.

    A finite group with regular fields scores itself (``ico``: its 60 channels, of which the 12 grid-exact
    ones are read). Any other group (continuous ``so3`` / ``o3``, quotient fields ``octa_faces``) borrows a
    registered finite regular-field group with the same grid-exact elements (``so3`` -> ``octa``, ``o3`` ->
    ``full_octa``).

    Raises:
        ValueError: no registered regular-field group has the same grid-exact elements.
    """
    spec = group_spec(group)  # the registry's error for an unknown name
    if isinstance(spec.fields, RegularFields) and not spec.continuous:
        return group
    want = _element_set(grid_elements_of_name(group))
    for name, other in GROUPS.items():
        if isinstance(other.fields, RegularFields) and not other.continuous and other.frame == spec.frame:
            if _element_set(grid_elements_of_name(name)) == want:
                return name
    raise ValueError(f"no registered finite group with regular fields has the grid-exact elements of {group!r}; "
                     "canonicalize over one of the cube groups (octa, full_octa) or an axial group instead")


def _element_channels(net_group: str, elements: Sequence[GridElement]) -> List[int]:
    """Channel of one regular field that belongs to each element: ``rho(h) e_0 = e_{c(h)}``, so the regular
    representation maps channel ``c(h)`` to ``c(g h)`` under ``g``."""
    g = get_group(net_group)
    by_matrix = {e.matrix: e for e in g.grid_elements}
    out = []
    for e in elements:
        rho = np.asarray(g.hidden_repr(by_matrix[e.matrix].escnn_element))
        out.append(int(np.argmax(np.abs(rho[:, 0]))))
    if len(set(out)) != len(out):
        raise ValueError(f"group {net_group!r}: its hidden fields are not regular (elements share a channel)")
    return out


class GroupScorer(EquivariantModule):
    """One logit per grid-exact element of ``group``; the logits permute exactly with the input.

    Args:
        group: registered group whose grid-exact elements are scored (:func:`equivox.groups.grid_elements_of_name`
            order: identity first). The network runs on :func:`scorer_group` of it.
        in_channels: scalar input channels.
        channels: hidden (regular) fields per level of the encoder; strides: between levels.
        input_size: the input is average-pooled to ``input_size`` per axis first (``adaptive_avg_pool3d``, whose
            bins are symmetric under every axis flip and permutation, so it is exactly equivariant for any input
            size); ``None`` keeps the input as it is (then sizes must divide by ``prod(strides)``).
        kernel_size, norm, act, convs_per_level: as :class:`~equivox.nets.EquivariantEncoder`.

    Shapes: ``(B, in_channels, D, H, W) -> (B, n_elements)``.
    Exactness: ``scores(g.apply(x))[:, index[g h]] == scores(x)[:, index[h]]`` for all grid-exact ``g, h``.

    Example::

        >>> import torch
        >>> from equivox.canonicalization import GroupScorer
        >>> s = GroupScorer("octa", channels=(1, 2), input_size=8).eval()
        >>> s(torch.rand(2, 1, 12, 12, 12)).shape
        torch.Size([2, 24])
    """

    __jit_unused_properties__ = ["n_elements", "out_tensor_channels"]

    def __init__(self, group: str = "octa", in_channels: int = 1, channels: Sequence[int] = (2, 4),
                 strides: Sequence[int] = (2,), input_size: Optional[int] = 16, kernel_size: int = 3,
                 norm: Optional[str] = "batch", act="elu", convs_per_level: int = 1):
        super().__init__()
        self.group = get_group(group).name
        self.net_group = scorer_group(self.group)
        self.elements: List[GridElement] = grid_elements_of_name(self.group)
        self.input_size = None if input_size is None else int(input_size)
        self.encoder = EquivariantEncoder(3, in_channels, channels, strides, self.net_group, kernel_size, norm, act,
                                          0.0, convs_per_level)
        if self.input_size is not None and self.input_size % self.encoder.size_multiple:
            raise ValueError(f"GroupScorer: input_size {self.input_size} must be divisible by prod(strides) = "
                             f"{self.encoder.size_multiple}")
        n = self.encoder.channels[-1]
        self.scores = EquivariantConv3d(FieldSpec.hidden(self.net_group, 2 * n), FieldSpec.hidden(self.net_group, 1),
                                        1)
        self.register_buffer("element_channels", torch.tensor(_element_channels(self.net_group, self.elements)),
                             persistent=False)
        self.in_spec = FieldSpec.scalar(self.net_group, in_channels)
        self.out_spec = FieldSpec.hidden(self.net_group, 1)

    @property
    def n_elements(self) -> int:
        return len(self.elements)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size is not None:
            x = F.adaptive_avg_pool3d(x, self.input_size)
        h = self.encoder(x)[-1]
        pooled = torch.cat([h.mean(dim=(2, 3, 4)), h.amax(dim=(2, 3, 4))], 1)  # spatially invariant, fields kept
        b, c = pooled.shape
        n = c // 2
        size = n // self.encoder.channels[-1]
        # mean and max interleaved per field: [mean_0, max_0, mean_1, ...] keeps each field's channels contiguous
        pooled = torch.stack([pooled[:, :n].reshape(b, -1, size), pooled[:, n:].reshape(b, -1, size)], 2)
        logits = self.scores(pooled.reshape(b, c, 1, 1, 1)).reshape(b, -1)
        return logits.index_select(1, self.element_channels)

    def extra_repr(self) -> str:
        return f"group={self.group!r} (fields of {self.net_group!r}), {self.n_elements} elements, " \
               f"input_size={self.input_size}"
