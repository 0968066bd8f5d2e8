"""Label-permuting equivariance: segmentation logits whose left/right classes swap under reflections.

A mirror image of a left lung looks like a right lung. For a group with improper elements (reflections, the
inversion; e.g. ``full_octa``) an invariant segmentation head must give a structure and its mirror image the same
class, so it cannot tell left from right. :class:`ClassSwapHead` instead makes the logits transform by a declared
permutation of the classes under every improper element (and not at all under rotations)::

    net(g.apply(x)) == g.apply(net(x))[:, perm]   for improper g,
    net(g.apply(x)) == g.apply(net(x))            for rotations g,

exactly (to float rounding) for every grid-exact element. Evaluation maps labels the same way
(:func:`permute_labels`): a reflected scan's left lung label becomes the right lung label.

Group assumption: a finite group with regular hidden fields that contains improper elements. Its proper
rotations form a subgroup of index 2; a regular field's channels split into the two cosets (rotations,
improper elements), which improper elements swap and rotations keep.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core import PlainModule
from ..export import to_plain
from ..groups import get_group
from ..testing import class_permutation  # defined with the checks that apply it (below equivox.nn); exported here
from .conv import EquivariantConv3d
from .fields import FieldSpec
from .fieldwise import ActSpec, FieldNormAct, NormSpec, per_field_activation
from .module import EquivariantModule

__all__ = ["ClassSwapHead", "CosetSwapHead", "class_permutation", "coset_channels", "groups_with_reflections",
           "permute_labels"]


def _improper_flags(group) -> Optional[np.ndarray]:
    g = get_group(group)
    if g.order is None or g.field_size != g.order:
        return None  # continuous or not regular: no channel <-> element correspondence
    els = list(g.gspace.fibergroup.elements)
    dets = np.array([np.linalg.det(np.asarray(g.gspace.basespace_action(e))) for e in els])
    return dets < 0


def groups_with_reflections() -> Tuple[str, ...]:
    """Registered finite groups with regular fields that contain improper elements (usable with class swaps)."""
    from ..groups import available_groups, GROUPS

    out = []
    for name in available_groups():
        if GROUPS[name].continuous:
            continue
        flags = _improper_flags(name)
        if flags is not None and flags.any():
            out.append(name)
    return tuple(out)


def coset_channels(group) -> Tuple[torch.Tensor, torch.Tensor]:
    """The two cosets of the rotation subgroup as channel indices of one regular field: ``(a, b)``, each of
    length ``|G| / 2``. Rotations permute channels within ``a`` and within ``b``; improper elements map ``a`` onto
    ``b``. (Which coset holds the identity does not matter to :class:`ClassSwapHead`.)

    Raises:
        ValueError: ``group`` is continuous, has no regular fields, or has no improper elements.
    """
    g = get_group(group)
    flags = _improper_flags(g)
    if flags is None or not flags.any():
        raise ValueError(f"class swaps need a finite group with reflections and regular fields; {g.name!r} has "
                         f"{'no improper elements' if flags is not None else 'no regular fields'}. Groups with "
                         f"reflections: {', '.join(groups_with_reflections())}")
    orbit = set()
    for e, improper in zip(g.gspace.fibergroup.elements, flags):
        if not improper:  # the regular representation permutes channels; follow channel 0 under rotations
            orbit.add(int(np.argmax(np.abs(np.asarray(g.hidden_repr(e))[:, 0]))))
    a = sorted(orbit)
    b = sorted(set(range(g.field_size)) - orbit)
    if len(a) != len(b):
        raise ValueError(f"group {g.name!r}: the rotations do not split its regular field into two cosets")
    return torch.tensor(a), torch.tensor(b)


def permute_labels(labels: torch.Tensor, permutation: Sequence[int]) -> torch.Tensor:
    """Map class indices through ``permutation`` (``out = permutation[labels]``), any shape, dtype kept."""
    table = torch.as_tensor(list(permutation), dtype=labels.dtype, device=labels.device)
    return table[labels.long()]


class CosetSwapHead(PlainModule):
    """Plain form of :class:`ClassSwapHead`: ``features(x)`` reshaped to fields, max over the two coset channel
    sets ``p``, ``q``, then a fixed 1x1x1 convolution of ``[p, q, |p - q|]``."""

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


class ClassSwapHead(EquivariantModule):
    """Per-voxel logits with label-permuting equivariance (left/right classes swap under improper elements).

    Lifts the input fields to ``hidden_fields`` regular fields (1x1x1 equivariant conv -> field norm ->
    nonlinearity), max-pools each field over the two cosets of the rotations (``p``: one coset, ``q``: the other;
    rotations keep both, improper elements swap them) and maps ``[p, q, |p - q|]`` to the classes with tied
    weights: a class ``c`` that swaps with ``c'`` reads ``(p, q)`` with the weights ``c'`` reads ``(q, p)`` with;
    a class that swaps with nothing reads ``p`` and ``q`` alike (it is invariant).

    Args:
        in_spec: input :class:`FieldSpec` of a group with reflections (e.g. ``full_octa``).
        out_channels: number of classes K. class_swaps: disjoint class pairs (:func:`class_permutation`).
        hidden_fields: regular fields of the lift. norm, act: as :class:`FieldNormAct`.

    Shapes: ``(B, in_spec.size, D, H, W) -> (B, K, D, H, W)``; ``out_spec``: ``K`` scalar fields whose
    ``class_permutation`` is the permutation improper elements apply to them (also the attributes
    ``class_permutation`` / ``permutation`` / ``class_swaps``, for old code).
    Exactness: for every grid-exact element ``g``, ``head(g.apply(x)) == g.apply(head(x))[:, perm]`` if ``g`` is
    improper, ``== g.apply(head(x))`` if it is a rotation (float rounding).
    """

    def __init__(self, in_spec: FieldSpec, out_channels: int, class_swaps: Sequence[Sequence[int]],
                 hidden_fields: int, norm: NormSpec = "batch", act: ActSpec = "elu"):
        super().__init__()
        group = in_spec.group
        self.in_spec = in_spec
        perm = class_permutation(class_swaps, out_channels)  # validated: disjoint pairs, not empty
        self.out_spec = FieldSpec.scalar(group, out_channels).with_class_permutation(perm)
        # the spec's permutation under the names old code reads (``output_class_permutation`` reads the spec)
        self.permutation = self.class_permutation = self.out_spec.class_permutation
        self.class_swaps = self.out_spec.class_swaps
        a, b = coset_channels(group)
        self.register_buffer("coset_a", a, persistent=False)
        self.register_buffer("coset_b", b, persistent=False)
        act = per_field_activation(act, hidden_fields)
        self.lift = EquivariantConv3d(in_spec, FieldSpec.hidden(group, hidden_fields), 1, bias=norm is None)
        self.norm_act = FieldNormAct(group, hidden_fields, norm, act)
        self.hidden_fields, self.field_size = int(hidden_fields), int(get_group(group).field_size)
        k = int(out_channels)
        rep = [min(c, p) for c, p in enumerate(self.permutation)]
        self.register_buffer("rep_index", torch.tensor(rep), persistent=False)
        self.register_buffer("is_partner", torch.tensor([c > p for c, p in enumerate(self.permutation)]),
                             persistent=False)
        self.register_buffer("is_fixed", torch.tensor([c == p for c, p in enumerate(self.permutation)]),
                             persistent=False)
        bound = 1.0 / (3 * hidden_fields) ** 0.5  # nn.Conv3d's default range for 3F inputs
        self.weight_p = nn.Parameter(torch.empty(k, hidden_fields).uniform_(-bound, bound))
        self.weight_q = nn.Parameter(torch.empty(k, hidden_fields).uniform_(-bound, bound))
        self.weight_diff = nn.Parameter(torch.empty(k, hidden_fields).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(k))

    def class_weights(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """The tied ``(weight (K, 3F), bias (K,))`` of the final 1x1x1 map on ``[p, q, |p - q|]``."""
        wp, wq = self.weight_p[self.rep_index], self.weight_q[self.rep_index]
        mean = 0.5 * (wp + wq)
        fixed, partner = self.is_fixed[:, None], self.is_partner[:, None]
        w_p = torch.where(fixed, mean, torch.where(partner, wq, wp))
        w_q = torch.where(fixed, mean, torch.where(partner, wp, wq))
        return torch.cat([w_p, w_q, self.weight_diff[self.rep_index]], 1), self.bias[self.rep_index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm_act(self.lift(x))
        b, _, d, h, w = y.shape
        y = y.reshape(b, self.hidden_fields, self.field_size, d, h, w)
        p = y.index_select(2, self.coset_a).amax(2)
        q = y.index_select(2, self.coset_b).amax(2)
        weight, bias = self.class_weights()
        feats = torch.cat([p, q, (p - q).abs()], 1)
        return F.conv3d(feats, weight[:, :, None, None, None], bias)

    def _export(self) -> nn.Module:
        weight, bias = (t.detach() for t in self.class_weights())
        classes = nn.Conv3d(weight.shape[1], weight.shape[0], 1)
        with torch.no_grad():
            classes.weight.copy_(weight[:, :, None, None, None])
            classes.bias.copy_(bias)
        features = nn.Sequential(to_plain(self.lift), to_plain(self.norm_act))
        return CosetSwapHead(features, self.hidden_fields, self.field_size, self.coset_a, self.coset_b, classes)

    def extra_repr(self) -> str:
        return f"class_swaps={list(self.class_swaps)}, {self.hidden_fields} fields"
