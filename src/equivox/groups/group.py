"""The built group: :class:`Group` (escnn gspace, field types, grid-exact elements, sampling matrices) and
:func:`get_group`, one shared, lazily built instance per canonical name and process.
"""
from __future__ import annotations

import functools
from typing import List, Optional, Tuple

import numpy as np
import torch

from .._escnn import enn, quiet
from . import registry
from .elements import GridElement, _escnn_to_tensor_frame
from .names import group_spec
from .registry import GroupSpec

__all__ = ["Group", "get_group", "grid_elements_of_name", "group_of_field_type"]


class Group:
    """A registered symmetry group, with everything equivox needs to build models for it.

    Do not construct directly; use :func:`get_group` (one shared, lazily built instance per name and process).

    Attributes:
        name, description, kind (``"regular"`` or ``"fourier"``), continuous (bool)
        gspace: the escnn gspace.
        hidden_repr: escnn representation of one hidden field (regular, or band-limited regular).
        field_size: ``hidden_repr.size``, tensor channels per hidden field.
    """

    def __init__(self, spec: GroupSpec):
        self.spec = spec
        self.name = spec.name
        self.description = spec.description
        self.kind = spec.kind
        self.continuous = spec.continuous
        with quiet():
            self.gspace = spec.make_gspace()
            g = self.gspace.fibergroup
            self.hidden_repr = spec.fields.hidden_repr(self.gspace)
            g.representations.setdefault(self.hidden_repr.name, self.hidden_repr)  # found by name later
        self.field_size = self.hidden_repr.size

    def __repr__(self) -> str:
        return f"Group({self.name!r}: {self.description})"

    def __reduce__(self):  # pickles by name: the escnn objects are rebuilt (from cache) on load
        return get_group, (self.name,)

    @property
    def order(self) -> Optional[int]:
        """Number of elements (``None`` for continuous groups)."""
        return None if self.continuous else self.gspace.fibergroup.order()

    def scalar_type(self, n: int):
        """escnn ``FieldType`` of ``n`` scalar (trivial) fields: the network's input/output channels."""
        return enn.FieldType(self.gspace, [self.gspace.trivial_repr] * n)

    def hidden_type(self, n_fields: int):
        """escnn ``FieldType`` of ``n_fields`` hidden fields (``n_fields * field_size`` tensor channels)."""
        return enn.FieldType(self.gspace, [self.hidden_repr] * n_fields)

    @functools.cached_property
    def grid_elements(self) -> List[GridElement]:
        """The grid-exact elements (identity first): those whose action on R^3 is a signed permutation."""
        g = self.gspace.fibergroup
        with quiet():
            if self.continuous:
                grid = g.grid("cube")  # SO(3): the 24 cube rotations; O(3): those and their inversions
                candidates = list(grid)
            else:
                candidates = list(g.elements)
            out = []
            perm = np.eye(3)[list(self.spec.frame)]
            for el in candidates:
                m = perm @ _escnn_to_tensor_frame(np.asarray(self.gspace.basespace_action(el))) @ perm.T
                try:
                    out.append(GridElement.from_matrix(m, el))
                except ValueError:
                    continue
        out.sort(key=lambda e: (not e.is_identity, e.name))
        return out

    @functools.cached_property
    def sampling_matrices(self) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """The field kind's grid sampling ``(A, A_inv)`` of one hidden field, or ``None`` (regular fields); see
        :class:`FieldKind`."""
        return self.spec.fields.sampling_matrices(self)

    @property
    def default_pooling(self) -> str:
        """Invariant pooling mode used when a model does not choose (``"group"`` or ``"norm"``)."""
        return self.spec.fields.default_pooling



def get_group(group) -> Group:
    """Return the :class:`Group` of a name (a ``Group`` is returned as is): a registered name (``"octa"``) or one
    with field options (``"so3_irreps(irreps=4x0e+2x1o+1x2e, filter_lmax=3)"``, see :func:`parse_group_name`).
    One shared, lazily built instance per canonical name and process: every spelling gives the same instance.

    Raises:
        ValueError: one line: unknown name (close names listed), unknown option or bad value.
    """
    if isinstance(group, Group):
        return group
    hit = registry._INSTANCES.get(group) if isinstance(group, str) else None
    if hit is not None:
        return hit
    spec = group_spec(group)
    if spec.name not in registry._INSTANCES:
        registry._INSTANCES[spec.name] = Group(spec)
    return registry._INSTANCES[spec.name]


def group_of_field_type(field_type) -> Group:
    """The registered (already built) :class:`Group` whose gspace an escnn ``FieldType`` lives on.

    Every built group has its own gspace object, so the group is found exactly: the one whose gspace *is* the field
    type's (``so3_irreps`` and ``so3_irreps(filter_lmax=3)`` share their escnn group and their field names, but not
    their gspace), whichever was built first. Only a field type on a gspace no built group owns (an equal one built
    elsewhere) falls back to the escnn group: among the groups on it, the unpermuted one whose hidden field the type
    uses, a registered name before one with options (``so3_irreps`` before ``so3_irreps(filter_lmax=3)``), whatever
    the order they were built in; pass a :class:`~equivox.nn.FieldSpec` to choose.
    """
    built = list(registry._INSTANCES.values())
    exact = [g for g in built if g.gspace is field_type.gspace]
    if len(exact) == 1:
        return exact[0]
    matches = exact or [g for g in built if g.gspace.fibergroup == field_type.gspace.fibergroup]
    if matches:  # groups on one escnn group (so3, so3_irreps with options): the one whose hidden field is used
        names = {r.name for r in field_type.representations}
        return min(matches, key=lambda g: (g.spec.frame != (0, 1, 2), g.hidden_repr.name not in names,
                                           "(" in g.name, g.name))
    raise TypeError(
        f"field type on {field_type.gspace} does not belong to an equivox group; build its gspace with "
        f"equivox.groups.get_group(name).gspace"
    )


def grid_elements_of_name(name: str) -> List[GridElement]:
    """The grid-exact elements of the registered group ``name`` (identity first), from the spec's
    ``listed_grid_elements`` when it has them (no escnn object is built), else from :func:`get_group`.

    Raises:
        ValueError: unknown name.
    """
    spec = group_spec(name)
    if spec.listed_grid_elements is not None:
        out = list(spec.listed_grid_elements())
        out.sort(key=lambda e: (not e.is_identity, e.name))
        return out
    return list(get_group(name).grid_elements)
