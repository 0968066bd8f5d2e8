"""Registry of the symmetry groups equivox models can be built for.

Every model takes ``group=<name>``; :func:`get_group` turns the name into a :class:`Group` that bundles

* the escnn gspace (the group acting on R^3),
* the scalar field type used for the network's input and output channels (trivial representation),
* the default hidden representation and the nonlinearity kind it needs
  (``"regular"``: permutation representation, pointwise nonlinearity is exact;
  ``"fourier"``: band-limited regular representation of SO(3)/O(3), nonlinearity applied on a sampling grid),
* the **grid-exact elements**: the group elements that map the cubic voxel grid onto itself (90-degree
  rotations and, for groups with reflections, the inversion), each with an exact action on
  ``(B, C, D, H, W)`` tensors (a permutation of voxels, no interpolation).

A name may carry options of the group's field kind: ``"so3_irreps(irreps=4x0e+2x1o+1x2e, filter_lmax=3)"`` is the
registered ``so3_irreps`` with those :class:`IrrepsFields` options (:func:`parse_group_name`), one instance per
canonical name; this is how YAML, the CLI and checkpoints reach every field option.

Spatial convention: a :class:`GridElement`'s 3x3 matrix ``M`` acts on tensor-axis coordinates ``(d, h, w)``
(axes ``D, H, W`` of a ``(B, C, D, H, W)`` tensor) and maps a scalar field ``f`` to ``f'(p) = f(M^{-1} p)`` about
the grid centre. escnn's own R^3 coordinates are ``(x, y, z) = (w, -h, -d)``; the registry converts.

The package, one job per module (each imports only those above it in this list):

* :mod:`.elements`: grid elements, the cube's rotations and symmetries, the one voxel action (:func:`move_voxels`);
* :mod:`.fields`: the field kinds (:class:`RegularFields`, :class:`QuotientFields`, :class:`FourierFields`,
  :class:`IrrepsFields`);
* :mod:`.registry`: :class:`GroupSpec`, the registered names (:data:`GROUPS`), :func:`register_group`;
* :mod:`.names`: the name language (:func:`parse_group_name`, :func:`canonical_group_name`, :func:`group_spec`);
* :mod:`.group`: the built :class:`Group` and :func:`get_group`;
* :mod:`.spacing`: which groups are exact for a voxel spacing (:func:`auto_group`, :func:`check_spacing`).
"""
from .elements import AXIS_FRAMES, GridElement, _escnn_to_tensor_frame, cube_rotations, cube_symmetries, move_voxels
from .fields import FieldKind, FourierFields, IrrepsFields, QuotientFields, RegularFields
from .group import Group, get_group, grid_elements_of_name, group_of_field_type
from .names import canonical_group_name, group_name_error, group_spec, parse_group_name
from .registry import _DERIVED, _INSTANCES, GROUPS, GroupSpec, available_groups, register_group
# _DERIVED, _INSTANCES (registry caches, cleared by tests) and _escnn_to_tensor_frame (equivox.irreps.bridge) are
# private names that other modules import from here
from .spacing import auto_group, check_spacing, exact_groups_for_spacing

__all__ = [
    "AXIS_FRAMES",
    "FieldKind",
    "FourierFields",
    "IrrepsFields",
    "QuotientFields",
    "RegularFields",
    "GridElement",
    "Group",
    "GroupSpec",
    "GROUPS",
    "auto_group",
    "check_spacing",
    "exact_groups_for_spacing",
    "register_group",
    "available_groups",
    "get_group",
    "group_spec",
    "group_name_error",
    "canonical_group_name",
    "parse_group_name",
    "grid_elements_of_name",
    "group_of_field_type",
    "cube_rotations",
    "cube_symmetries",
    "move_voxels",
]
