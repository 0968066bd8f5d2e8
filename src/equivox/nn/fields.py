"""Picklable descriptions of escnn field types.

An equivox module never stores escnn objects (they do not pickle reliably and are slow to rebuild); it stores a
:class:`FieldSpec` — the group name and the names of the representations of its fields — and rebuilds the escnn
``FieldType`` on demand (cheap once the group exists in the process).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from .._escnn import enn
from ..groups import Group, get_group

__all__ = ["FieldSpec"]


@dataclass(frozen=True)
class FieldSpec:
    """A field type as plain data: ``group`` name and the representation name of every field.

    ``size`` is the number of tensor channels; ``FieldSpec.scalar(g, n)`` / ``FieldSpec.hidden(g, n)`` build the
    two kinds equivox networks use (trivial fields, and the group's default hidden fields).
    """

    group: str
    reprs: Tuple[str, ...]

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

    def __add__(self, other: "FieldSpec") -> "FieldSpec":
        """Direct sum (channel concatenation) of two field types of the same group."""
        if other.group != self.group:
            raise TypeError(f"cannot concatenate fields of groups {self.group!r} and {other.group!r}")
        return FieldSpec(self.group, self.reprs + other.reprs)

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
        """The escnn ``FieldType``."""
        return enn.FieldType(self.group_obj.gspace, self.representations())
