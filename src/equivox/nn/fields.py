"""Picklable descriptions of escnn field types.

An equivox module never stores escnn objects (they do not pickle reliably and are slow to rebuild); it stores a
:class:`FieldSpec` — the group name and the names of the representations of its fields — and rebuilds the escnn
``FieldType`` on demand (cheap once the group exists in the process).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from .._escnn import enn
from ..groups import Group, get_group

__all__ = ["FieldSpec"]


@dataclass(frozen=True)
class FieldSpec:
    """A field type as plain data: ``group`` name and the representation name of every field.

    ``size`` is the number of tensor channels; ``FieldSpec.scalar(g, n)`` / ``FieldSpec.hidden(g, n)`` build the
    two kinds equivox networks use (trivial fields, and the group's default hidden fields).

    ``class_permutation`` (label-permuting outputs, e.g. left/right classes): the permutation ``perm`` of the
    channels that improper elements (reflections, inversion) apply on top of the fields' representations, i.e.
    ``f(g . x) == (g . f(x))[:, perm]`` for improper ``g``; ``None`` (default): none. It is part of the type (two
    specs differing in it are different), read for any module by :func:`equivox.testing.output_class_permutation`
    and set with :meth:`with_class_swaps` / :meth:`with_class_permutation`; escnn's ``FieldType`` has no such
    notion (:meth:`to_escnn` drops it).

    >>> spec = FieldSpec.scalar("full_octa", 3).with_class_swaps([(1, 2)])
    >>> spec.class_permutation, spec.class_swaps
    ((0, 2, 1), ((1, 2),))
    """

    group: str
    reprs: Tuple[str, ...]
    class_permutation: Optional[Tuple[int, ...]] = None

    def __post_init__(self):
        if self.class_permutation is not None:
            perm = tuple(int(c) for c in self.class_permutation)
            if sorted(perm) != list(range(len(perm))):
                raise ValueError(f"class_permutation must be a permutation of 0 .. n-1, got {list(perm)}")
            object.__setattr__(self, "class_permutation", perm)

    @staticmethod
    def scalar(group, n: int) -> "FieldSpec":
        g = get_group(group)
        return FieldSpec(g.name, (g.gspace.trivial_repr.name,) * n)

    @staticmethod
    def hidden(group, n: int) -> "FieldSpec":
        g = get_group(group)
        return FieldSpec(g.name, (g.hidden_repr.name,) * n)

    @staticmethod
    def from_escnn(field_type, group) -> "FieldSpec":
        """From an escnn ``FieldType`` built on ``group``'s gspace."""
        g = get_group(group)
        if field_type.gspace.fibergroup != g.gspace.fibergroup:
            raise TypeError(
                f"field type lives on {field_type.gspace.fibergroup.name}, not on group {g.name!r} "
                f"({g.gspace.fibergroup.name})"
            )
        for r in field_type.representations:  # make sure every repr can be found by name later
            g.gspace.fibergroup.representations.setdefault(r.name, r)
        return FieldSpec(g.name, tuple(r.name for r in field_type.representations))

    def with_class_permutation(self, perm: Optional[Sequence[int]]) -> "FieldSpec":
        """This field type whose channels improper elements also permute by ``perm`` (``size`` entries; ``None``:
        no permutation)."""
        if perm is not None and len(perm) != self.size:
            raise ValueError(f"class_permutation has {len(perm)} entries, the fields have {self.size} channels")
        return dataclasses.replace(self, class_permutation=None if perm is None else tuple(int(c) for c in perm))

    def with_class_swaps(self, class_swaps: Optional[Sequence[Sequence[int]]]) -> "FieldSpec":
        """This field type whose channel pairs ``class_swaps`` (disjoint, e.g. ``[(1, 2)]`` for left and right)
        swap under improper elements (:func:`equivox.nn.class_permutation`); ``None`` / empty: none."""
        from ..testing import class_permutation

        return self.with_class_permutation(class_permutation(class_swaps, self.size) if class_swaps else None)

    @property
    def class_swaps(self) -> Optional[Tuple[Tuple[int, int], ...]]:
        """The disjoint channel pairs ``class_permutation`` swaps (``None`` without a permutation)."""
        perm = self.class_permutation
        return None if perm is None else tuple((c, p) for c, p in enumerate(perm) if c < p)

    def __add__(self, other: "FieldSpec") -> "FieldSpec":
        """Direct sum (channel concatenation) of two field types of the same group (class permutations
        concatenated, the identity on a side without one)."""
        if other.group != self.group:
            raise TypeError(f"cannot concatenate fields of groups {self.group!r} and {other.group!r}")
        perm = None
        if self.class_permutation is not None or other.class_permutation is not None:
            n = self.size
            a = self.class_permutation or tuple(range(n))
            b = other.class_permutation or tuple(range(other.size))
            perm = tuple(a) + tuple(n + c for c in b)
        return FieldSpec(self.group, self.reprs + other.reprs, perm)

    @property
    def group_obj(self) -> Group:
        return get_group(self.group)

    def representations(self):
        reps = self.group_obj.gspace.fibergroup.representations
        return [reps[name] for name in self.reprs]

    @property
    def size(self) -> int:
        """Number of tensor channels."""
        return sum(r.size for r in self.representations())

    def __len__(self) -> int:
        return len(self.reprs)

    def to_escnn(self):
        """The escnn ``FieldType`` (without ``class_permutation``)."""
        return enn.FieldType(self.group_obj.gspace, self.representations())
