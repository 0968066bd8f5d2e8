"""The registry of group names: :class:`GroupSpec` entries by name, the built-in ones, :func:`register_group`.

A spec is static (nothing escnn is built); :func:`equivox.groups.get_group` builds the :class:`~equivox.groups.Group`
of a name once per process. The registry's state lives here: :data:`GROUPS` (registered specs), ``_DERIVED`` (specs
of parameterised names, :mod:`.names`) and ``_INSTANCES`` (built groups, :mod:`.group`); other modules read them as
``registry.GROUPS`` at call time, so replacing the dict (a test's ``monkeypatch.setattr(registry, "GROUPS", ...)``)
reaches every function.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from .._escnn import gspaces
from .elements import AXIS_FRAMES, GridElement, cube_rotations, cube_symmetries
from .fields import FieldKind, FourierFields, IrrepsFields, QuotientFields, RegularFields

__all__ = ["GROUPS", "GroupSpec", "available_groups", "irreps_group_specs", "register_group"]


@dataclass(frozen=True)
class GroupSpec:
    """Static description of a registry entry (cheap; nothing escnn is built).

    Attributes:
        name, description: registry name and one line for listings.
        make_gspace: builds the escnn gspace on R^3.
        fields: the :class:`FieldKind` strategy of the hidden fields: :class:`RegularFields` (default; finite
            groups), :class:`QuotientFields` (a permutation representation on cosets: cheaper fields),
            :class:`FourierFields` (band-limited, nonlinearity on grid samples; SO(3)/O(3)) or
            :class:`IrrepsFields` (e3nn irreps with gates; SO(3)/O(3)).
        continuous: the group is infinite (SO(3), O(3)).
        frame: tensor-axis permutation (an involution, see :data:`AXIS_FRAMES`) applied to the escnn group's
            action: kernels are sampled with their spatial axes permuted and grid elements are conjugated, so an
            escnn group of rotations about its z axis (tensor axis D) becomes one about axis H or W.
        exact_spacing: which voxel spacings the group is exact for: ``"isotropic"`` (all three equal),
            ``"axial"`` (the two axes other than ``slice_axis`` equal) or ``"any"``.
        slice_axis: for axial groups, the tensor axis (0 = D, 1 = H, 2 = W) the rotations keep.
        listed_grid_elements: optional ``() -> [GridElement]`` giving the grid-exact elements without building
            escnn objects (the cube groups); must equal :attr:`Group.grid_elements` as a set.
    """

    name: str
    description: str
    make_gspace: Callable[[], object]
    fields: FieldKind = RegularFields()
    continuous: bool = False
    frame: Tuple[int, int, int] = (0, 1, 2)
    exact_spacing: str = "isotropic"
    slice_axis: Optional[int] = None
    listed_grid_elements: Optional[Callable[[], List["GridElement"]]] = None

    @property
    def kind(self) -> str:
        """Name of the field kind (``"regular"``, ``"fourier"``), for listings."""
        return self.fields.name


def _axial_specs() -> List[GroupSpec]:
    """``c4_axial`` / ``d4_axial`` about each tensor axis (suffix ``_d``, ``_h``; no suffix: W, the default)."""
    out = []
    for axis, suffix in (("w", ""), ("d", "_d"), ("h", "_h")):
        i = "dhw".index(axis)
        out.append(GroupSpec(f"c4_axial{suffix}", f"C4: the 4 rotations about the {axis.upper()} axis (slice axis; "
                             "exact on voxels anisotropic along it)", lambda: gspaces.rot2dOnR3(n=4),
                             frame=AXIS_FRAMES[axis], exact_spacing="axial", slice_axis=i))
        out.append(GroupSpec(f"d4_axial{suffix}", f"D4: the 8 rotations mapping the {axis.upper()} axis to itself "
                             "(C4 and in-plane half turns; exact on voxels anisotropic along it)",
                             lambda: gspaces.dihedralOnR3(n=4), frame=AXIS_FRAMES[axis], exact_spacing="axial",
                             slice_axis=i))
    return out


def irreps_group_specs() -> List[GroupSpec]:
    """The registry entries ``so3_irreps`` and ``o3_irreps`` (:class:`~equivox.groups.IrrepsFields`)."""
    return [
        GroupSpec("so3_irreps", "continuous rotations SO(3), e3nn irreps fields 2x0e+1x1o+1x2e with gates "
                  "(spherical-harmonic kernels, gated nonlinearity) (24 grid-exact)",
                  lambda: gspaces.rot3dOnR3(maximum_frequency=2), IrrepsFields("2x0e+1x1o+1x2e"), continuous=True,
                  listed_grid_elements=cube_rotations),
        GroupSpec("o3_irreps", "continuous rotations and reflections O(3), e3nn irreps fields 2x0e+1x1o+1x2e with "
                  "gates (48 grid-exact)", lambda: gspaces.flipRot3dOnR3(maximum_frequency=2),
                  IrrepsFields("2x0e+1x1o+1x2e", reflections=True), continuous=True,
                  listed_grid_elements=cube_symmetries),
    ]


GROUPS: Dict[str, GroupSpec] = {
    spec.name: spec
    for spec in [
        GroupSpec("trivial", "no symmetry: a plain CNN on the same code path (baseline)",
                  lambda: gspaces.trivialOnR3(), exact_spacing="any",
                  listed_grid_elements=lambda: [GridElement.from_matrix(np.eye(3))]),
        GroupSpec("octa", "octahedral group O: the 24 rotations of the cube (all grid-exact)",
                  lambda: gspaces.octaOnR3(), listed_grid_elements=cube_rotations),
        GroupSpec("octa_faces", "octahedral group O on cheaper fields: the 6 face directions (quotient O/C4, 6 "
                  "channels per field; 24 grid-exact)", lambda: gspaces.octaOnR3(), QuotientFields((False, 4)),
                  listed_grid_elements=cube_rotations),
        GroupSpec("octa_vertices", "octahedral group O on cheaper fields: the 8 vertex directions (quotient O/C3, "
                  "8 channels per field; 24 grid-exact)", lambda: gspaces.octaOnR3(), QuotientFields((False, 3)),
                  listed_grid_elements=cube_rotations),
        GroupSpec("full_octa", "full octahedral group O_h: 48 elements, rotations and inversion (all grid-exact)",
                  lambda: gspaces.fullOctaOnR3(), listed_grid_elements=cube_symmetries),
        GroupSpec("ico", "icosahedral group I: 60 rotations (12 grid-exact)",
                  lambda: gspaces.icoOnR3()),
        GroupSpec("full_ico", "full icosahedral group I_h: 120 elements (24 grid-exact)",
                  lambda: gspaces.fullIcoOnR3()),
        GroupSpec("so3", "continuous rotations SO(3), band-limited fields (L=2) (24 grid-exact)",
                  lambda: gspaces.rot3dOnR3(maximum_frequency=2),
                  FourierFields(band_limit=2, n_seeds=3, seed=7), continuous=True, listed_grid_elements=cube_rotations),
        GroupSpec("o3", "continuous rotations and reflections O(3), band-limited fields (L=2) (48 grid-exact)",
                  lambda: gspaces.flipRot3dOnR3(maximum_frequency=2),
                  FourierFields(band_limit=2, n_seeds=3, seed=7, reflections=True), continuous=True,
                  listed_grid_elements=cube_symmetries),
        *_axial_specs(),
        *irreps_group_specs(),
    ]
}

#: specs of parameterised names, by canonical name (built from the registered base spec on first use; :mod:`.names`)
_DERIVED: Dict[str, GroupSpec] = {}

#: the built :class:`~equivox.groups.Group` of each canonical name (one per process; :mod:`.group`)
_INSTANCES: Dict[str, "Group"] = {}


def register_group(spec: GroupSpec, replace: bool = False) -> GroupSpec:
    """Add a group to the registry from user code; afterwards every model accepts ``group=spec.name``.

    Args:
        spec: a :class:`GroupSpec`; ``make_gspace`` may build any escnn gspace on R^3 (finite groups with
            the default ``fields=RegularFields()``). Its grid-exact elements are found from the gspace (those acting
            as signed permutations), so equivariance tests and rotation sets work unchanged.
        replace: allow replacing an existing entry of the same name (its built instance is dropped).

    Raises:
        ValueError: the name exists (and ``replace`` is False), or ``fields``/``frame`` is not valid.
    """
    if any(c in spec.name for c in "(),=") or spec.name != spec.name.strip():
        raise ValueError(f"group name {spec.name!r} may not contain '(', ')', ',', '=' or surrounding spaces "
                         "(they write field options: base(option=value))")
    if spec.name in GROUPS and not replace:
        raise ValueError(f"group {spec.name!r} is already registered (pass replace=True to replace it)")
    if not isinstance(spec.fields, FieldKind):
        raise ValueError(f"GroupSpec.fields must be a FieldKind (RegularFields(), FourierFields(...)), got "
                         f"{spec.fields!r}")
    if spec.frame not in AXIS_FRAMES.values():
        raise ValueError(f"GroupSpec.frame must be one of {list(AXIS_FRAMES.values())}, got {spec.frame}")
    GROUPS[spec.name] = spec
    _INSTANCES.pop(spec.name, None)
    for derived in [n for n in _DERIVED if n.partition("(")[0] == spec.name]:  # built from the replaced spec
        _DERIVED.pop(derived)
        _INSTANCES.pop(derived, None)
    return spec


def available_groups() -> List[str]:
    """The registered names accepted by ``group=`` (each may also take field options, see
    :func:`parse_group_name`)."""
    return list(GROUPS)
