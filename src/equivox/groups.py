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
registered ``so3_irreps`` with those :class:`~equivox.irreps.IrrepsFields` options (:func:`parse_group_name`), one
instance per canonical name; this is how YAML, the CLI and checkpoints reach every field option.

Spatial convention: a :class:`GridElement`'s 3x3 matrix ``M`` acts on tensor-axis coordinates ``(d, h, w)``
(axes ``D, H, W`` of a ``(B, C, D, H, W)`` tensor) and maps a scalar field ``f`` to ``f'(p) = f(M^{-1} p)`` about
the grid centre. escnn's own R^3 coordinates are ``(x, y, z) = (w, -h, -d)``; the registry converts.
"""
from __future__ import annotations

import functools
import importlib
import itertools
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Dict, List, Optional, Tuple

import numpy as np
import torch

from ._escnn import ESCNN_VERSION, enn, gspaces, quiet
from .cache import cached_tensors

__all__ = [
    "AXIS_FRAMES",
    "FieldKind",
    "FourierFields",
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
]


def _axis_label(row: np.ndarray) -> str:
    (j,) = np.nonzero(row)[0]
    return ("-" if row[j] < 0 else "") + "dhw"[j]


@dataclass(frozen=True)
class GridElement:
    """A group element that maps the voxel grid onto itself.

    Attributes:
        name: readable signed-permutation name over tensor axes, e.g. ``"[d,-w,h]"``: output axis ``i`` is the
            input axis named at position ``i``, reversed where signed ``-``; ``"[d,h,w]"`` is the identity.
        matrix: the 3x3 signed-permutation matrix ``M`` (integers) in ``(d, h, w)`` coordinates.
        escnn_element: the matching escnn ``GroupElement`` of the group it came from (``None`` for elements
            made by :func:`cube_rotations` / :func:`cube_symmetries` outside any group).
    """

    name: str
    matrix: Tuple[Tuple[int, int, int], ...]
    escnn_element: object = field(default=None, compare=False, repr=False)

    @property
    def is_identity(self) -> bool:
        return self.matrix == ((1, 0, 0), (0, 1, 0), (0, 0, 1))

    @property
    def determinant(self) -> int:
        """+1 for rotations, -1 for improper elements (reflections, inversion)."""
        return int(round(np.linalg.det(np.array(self.matrix))))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the element to the spatial axes of ``x`` (shape ``(..., D, H, W)``): exact voxel permutation.

        Channels are left as they are, i.e. this is the action on scalar fields; the output has the spatial
        shape permuted accordingly (a ``(D, H, W)`` grid becomes e.g. ``(W, H, D)`` for a non-cubic volume).
        """
        if x.dim() < 3:
            raise ValueError(f"GridElement.apply expects a tensor (..., D, H, W), got shape {tuple(x.shape)}")
        m = np.array(self.matrix)
        lead = x.dim() - 3
        perm = list(range(lead)) + [lead + int(np.nonzero(m[i])[0][0]) for i in range(3)]
        y = x.permute(*perm)
        flips = [lead + i for i in range(3) if m[i].sum() < 0]
        return (y.flip(flips) if flips else y).contiguous()

    def apply_numpy(self, x: np.ndarray) -> np.ndarray:
        """Same as :meth:`apply` for a numpy array ``(..., D, H, W)`` (returns a contiguous copy)."""
        return self.apply(torch.from_numpy(np.ascontiguousarray(x))).contiguous().numpy()

    def inverse(self) -> "GridElement":
        """The inverse element (transpose matrix)."""
        return GridElement.from_matrix(np.array(self.matrix).T)

    @staticmethod
    def from_matrix(m: np.ndarray, escnn_element=None) -> "GridElement":
        """Build from a 3x3 signed-permutation matrix; raises ``ValueError`` for any other matrix."""
        r = np.rint(np.asarray(m, dtype=float))
        if r.shape != (3, 3) or not np.allclose(r, m, atol=1e-5) or not (
            (np.abs(r).sum(0) == 1).all() and (np.abs(r).sum(1) == 1).all()
        ):
            raise ValueError(f"not a signed permutation matrix (not grid-exact): {np.asarray(m).tolist()}")
        r = r.astype(int)
        name = "[" + ",".join(_axis_label(r[i]) for i in range(3)) + "]"
        return GridElement(name, tuple(tuple(int(v) for v in row) for row in r), escnn_element)


def _escnn_to_tensor_frame(m: np.ndarray) -> np.ndarray:
    """escnn acts on tensors whose spatial axes are ``(-z, -y, x)``: conjugate its matrix into ``(d, h, w)``."""
    t = np.asarray(m, dtype=float)[::-1, ::-1].copy()
    t[:-1, :] *= -1
    t[:, :-1] *= -1
    return t


def _signed_permutations(proper_only: bool) -> List[np.ndarray]:
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3), dtype=int)
            for i, (j, s) in enumerate(zip(perm, signs)):
                m[i, j] = s
            if proper_only and round(np.linalg.det(m)) != 1:
                continue
            out.append(m)
    out.sort(key=lambda m: (not np.array_equal(m, np.eye(3, dtype=int)), m.ravel().tolist()[::-1]))
    return out


def cube_rotations() -> List[GridElement]:
    """The 24 rotations of the cube (identity first), independent of any group: use them to test any model."""
    return [GridElement.from_matrix(m) for m in _signed_permutations(True)]


def cube_symmetries() -> List[GridElement]:
    """The 48 symmetries of the cube (rotations and improper elements), identity first."""
    return [GridElement.from_matrix(m) for m in _signed_permutations(False)]


#: axis permutations that conjugate a group rotating about escnn's z axis (tensor axis D) into one rotating about
#: another tensor axis: ``"d"`` (identity), ``"h"`` (swap D and H), ``"w"`` (swap D and W). Each is an involution.
AXIS_FRAMES: Dict[str, Tuple[int, int, int]] = {"d": (0, 1, 2), "h": (1, 0, 2), "w": (2, 1, 0)}


class FieldKind:
    """Strategy for what a hidden field of a group is; owns everything that depends on it.

    equivox's layers ask the group's field kind (``get_group(name).spec.fields``) instead of switching on names:

    * :meth:`hidden_repr`: the escnn representation of one hidden field;
    * :meth:`sampling_matrices`: ``None`` when a pointwise nonlinearity on the field's channels is exactly
      equivariant (regular fields), else ``(A, A_inv)``: samples of the field on a grid of group elements and
      back. :class:`~equivox.nn.FieldNormAct` normalises and applies the nonlinearity on ``A x`` and maps back
      with ``A_inv``; group pooling takes the max over ``A x``; the export uses the same two matrices as grouped
      1x1x1 convolutions;
    * ``default_pooling``: the invariant pooling (``"group"``: max over channels/samples; ``"norm"``: irrep norms)
      used when a model does not choose.

    Subclass it for a new kind of field; :func:`register_group` accepts any instance.
    """

    name: ClassVar[str] = "field kind"
    default_pooling: ClassVar[str] = "group"
    #: dataclass fields that belong to the group rather than to the user (e.g. ``reflections``, which must match
    #: the gspace): not options of a parameterised group name (:func:`parse_group_name`).
    fixed_by_group: ClassVar[Tuple[str, ...]] = ()

    def validate(self) -> None:
        """Raise ``ValueError`` (one line) when an option value cannot work; called on every parameterised group
        name (:func:`group_spec`) before anything is built. Default: no check."""

    def hidden_repr(self, gspace):
        """escnn representation of one hidden field on ``gspace``."""
        raise NotImplementedError

    def sampling_matrices(self, group: "Group") -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """``None``, or ``(A (N, field_size), A_inv (field_size, N))`` for ``group`` (see the class docstring)."""
        raise NotImplementedError

    def kernel_basis(self, group: "Group", in_repr, out_repr, kernel_size: int) -> Optional[Dict[str, torch.Tensor]]:
        """The convolution kernel basis between two fields (``{"basis": (n, out, in, k**3), "bias": (out, n_bias)}``,
        as :func:`equivox.nn.conv.pair_basis`), or ``None`` (default): escnn's ``R3Conv`` basis."""
        return None

    def norm_act(self, group: "Group", n_fields: int, norm, act) -> Optional[Tuple[torch.nn.Module, torch.nn.Module]]:
        """``(norm, nonlinearity)`` modules on whole ``(B, n_fields * field_size, D, H, W)`` tensors replacing
        :class:`~equivox.nn.FieldNormAct`'s per-field ones (e.g. the gated irreps fields), or ``None`` (default)."""
        return None


@dataclass(frozen=True)
class RegularFields(FieldKind):
    """Hidden fields carry the regular representation (finite groups): the group permutes a field's channels, so
    pointwise nonlinearities and per-field norms are exact, and the invariant is the max over the channels."""

    name: ClassVar[str] = "regular"
    default_pooling: ClassVar[str] = "group"

    def hidden_repr(self, gspace):
        return gspace.regular_repr

    def sampling_matrices(self, group: "Group") -> None:
        return None


@dataclass(frozen=True)
class FourierFields(FieldKind):
    """Hidden fields hold band-limited Fourier coefficients of a function on a continuous group (SO(3), O(3)).

    Attributes:
        band_limit: maximum frequency ``L`` of the band-limited regular representation.
        n_seeds, seed: the sampling grid is the orbit of ``n_seeds`` random rotations (``scipy``'s
            ``Rotation.random(n_seeds, random_state=seed)``) under the cube symmetries, so it is closed under the
            grid-exact elements: the sampled nonlinearity is exact for them and approximate for other rotations.
        reflections: the group's elements are ``(flip, rotation)`` pairs (O(3)) rather than rotations (SO(3)).
    """

    band_limit: int = 2
    n_seeds: int = 3
    seed: int = 7
    reflections: bool = False
    name: ClassVar[str] = "fourier"
    default_pooling: ClassVar[str] = "norm"
    fixed_by_group: ClassVar[Tuple[str, ...]] = ("reflections",)

    def validate(self) -> None:
        if self.band_limit < 0 or self.n_seeds < 1:
            raise ValueError(f"fourier fields need band_limit >= 0 and n_seeds >= 1, got band_limit={self.band_limit}, "
                             f"n_seeds={self.n_seeds}")
        coefficients = sum((2 * l + 1) ** 2 for l in range(self.band_limit + 1))  # per parity for O(3)
        if 24 * self.n_seeds < coefficients:  # fewer samples than coefficients: A is not invertible
            need = -(-coefficients // 24)
            raise ValueError(f"fourier fields of band_limit={self.band_limit} have {coefficients} coefficients per "
                             f"parity but n_seeds={self.n_seeds} gives {24 * self.n_seeds} samples (24 per seed): "
                             f"use n_seeds >= {need}")

    def hidden_repr(self, gspace):
        return gspace.fibergroup.bl_regular_representation(self.band_limit)

    def sampling_matrices(self, group: "Group") -> Tuple[torch.Tensor, torch.Tensor]:
        """``(A, A_inv)`` on the cube-orbit grid (cached on disk); ``A`` follows escnn's ``FourierPointwise``.

        (escnn's ``thomson_cube`` grids need a long optimisation, and the 48-point one is rank-deficient for band
        limit 2.)"""

        def build():
            from escnn.nn.modules.nonlinearities.fourier import _build_kernel
            from scipy.spatial.transform import Rotation

            g = group.gspace.fibergroup
            with quiet():
                kernel = _build_kernel(g, g.bl_irreps(self.band_limit))
                kernel = kernel / np.linalg.norm(kernel)
                seeds = Rotation.random(self.n_seeds, random_state=self.seed).as_matrix()
                seeds = [g.element((0, m) if self.reflections else m, "MAT") for m in seeds]
                grid = [c @ s for s in seeds for c in g.grid("cube")]
                a = np.stack([group.hidden_repr(x) @ kernel for x in grid])
            return {"A": torch.from_numpy(a).float(), "Ainv": torch.from_numpy(np.linalg.pinv(a)).float()}

        grid = ("cube_orbits", self.n_seeds, self.seed)  # part of the cache key of shipped and cached matrices
        key = f"fourier|escnn={ESCNN_VERSION}|{group.name}|L={self.band_limit}|grid={grid}"
        mats = cached_tensors(key, build)
        return mats["A"], mats["Ainv"]


@dataclass(frozen=True)
class QuotientFields(FieldKind):
    """Hidden fields carry the quotient representation ``G/H`` of a subgroup ``H`` (finite groups): the group
    permutes the cosets, e.g. ``octa / C4`` = the 6 face directions of the cube, ``octa / C3`` = its 8 vertex
    directions. Cheaper than the regular representation (6 or 8 channels per field instead of 24) and, being a
    permutation representation, as exact: pointwise nonlinearities and per-field norms commute with the group, and
    the max over a field's channels is invariant. Less expressive per field: a field cannot tell the rotations
    inside ``H`` apart (a face direction does not know its spin about that face).

    Attributes:
        subgroup: escnn subgroup id without the adjoint element, e.g. ``(False, 4)``: the rotations about one
            4-fold axis (see escnn's ``Group.subgroup``).
    """

    subgroup: Tuple = (False, 4)
    name: ClassVar[str] = "quotient"
    default_pooling: ClassVar[str] = "group"

    def hidden_repr(self, gspace):
        g = gspace.fibergroup
        return g.quotient_representation(tuple(self.subgroup) + (g.identity,))

    def sampling_matrices(self, group: "Group") -> None:
        return None


@dataclass(frozen=True)
class GroupSpec:
    """Static description of a registry entry (cheap; nothing escnn is built).

    Attributes:
        name, description: registry name and one line for listings.
        make_gspace: builds the escnn gspace on R^3.
        fields: the :class:`FieldKind` strategy of the hidden fields: :class:`RegularFields` (default; finite
            groups), :class:`QuotientFields` (a permutation representation on cosets: cheaper fields) or
            :class:`FourierFields` (band-limited, nonlinearity on grid samples; SO(3)/O(3)).
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
    ]
}


def register_group(spec: GroupSpec, replace: bool = False) -> GroupSpec:
    """Add a group to the registry from user code; afterwards every model accepts ``group=spec.name``.

    Args:
        spec: a :class:`GroupSpec`; ``make_gspace`` may build any escnn gspace on R^3 (finite groups with
            the default ``fields=RegularFields()``). Its grid-exact elements are found from the gspace (those acting as signed
            permutations), so equivariance tests and rotation sets work unchanged.
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


def exact_groups_for_spacing(spacing, rtol: float = 1e-3) -> List[str]:
    """Registered groups whose grid-exact elements stay exact on voxels of ``spacing`` (mm, per tensor axis
    ``(D, H, W)``): isotropic groups need three equal spacings, axial groups equal spacings off their slice axis."""
    sp = [float(v) for v in spacing]
    if len(sp) != 3 or min(sp) <= 0:
        raise ValueError(f"spacing must be 3 positive numbers (mm along D, H, W), got {spacing}")
    return [name for name, spec in GROUPS.items() if _exact_for_spacing(spec, sp, rtol)]


def _exact_for_spacing(spec: GroupSpec, sp: List[float], rtol: float) -> bool:
    def same(a, b):
        return abs(a - b) <= rtol * max(a, b)

    if spec.exact_spacing == "any":
        return True
    if spec.exact_spacing == "isotropic":
        return same(sp[0], sp[1]) and same(sp[1], sp[2])
    a, b = [sp[i] for i in range(3) if i != spec.slice_axis]
    return same(a, b)


#: preference of :func:`auto_group` (largest exact finite group first)
_AUTO_ORDER = ("octa", "d4_axial", "d4_axial_d", "d4_axial_h", "trivial")


def auto_group(spacing, rtol: float = 1e-3) -> Tuple[str, str]:
    """The largest rotation group exact for voxels of ``spacing`` ``(D, H, W)`` mm, and why.

    Isotropic -> ``"octa"`` (24 rotations); two equal spacings -> ``"d4_axial"`` about the odd axis (suffix for D
    or H); all different -> ``"trivial"``. Returns ``(name, reason)``.
    """
    exact = exact_groups_for_spacing(spacing, rtol)
    name = next(n for n in _AUTO_ORDER if n in exact)
    sp = tuple(float(v) for v in spacing)
    if name == "octa":
        why = f"spacing {sp} is isotropic: all 24 cube rotations map the voxel grid onto itself"
    elif name == "trivial":
        why = f"spacing {sp} has three different values: no rotation maps the physical grid onto itself"
    else:
        axis = "DHW"[GROUPS[name].slice_axis]
        why = (f"spacing {sp} is anisotropic along {axis}: only the 8 rotations keeping the {axis} axis map the "
               f"physical grid onto itself")
    return name, why


def check_spacing(group, spacing, rtol: float = 1e-3) -> None:
    """Warn (``UserWarning``) when ``group`` is not exact for voxels of ``spacing`` ``(D, H, W)`` mm, naming the
    spacing and the groups that would be exact. ``spacing=None`` (unknown) is not checked."""
    import warnings

    if spacing is None:
        return
    name = group.name if isinstance(group, Group) else str(group)
    exact = exact_groups_for_spacing(spacing, rtol)
    if not _exact_for_spacing(group_spec(name), [float(v) for v in spacing], rtol):
        warnings.warn(f"group {name!r} is not exact for voxel spacing {tuple(float(v) for v in spacing)} mm: its "
                      f"rotations do not map the physical grid onto itself. Exact groups for this spacing: "
                      f"{', '.join(exact)} (or resample to isotropic voxels).", UserWarning, stacklevel=2)


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


def available_groups() -> List[str]:
    """The registered names accepted by ``group=`` (each may also take field options, see
    :func:`parse_group_name`)."""
    return list(GROUPS)


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


_INSTANCES: Dict[str, Group] = {}


def group_of_field_type(field_type) -> Group:
    """The registered (already built) :class:`Group` whose gspace an escnn ``FieldType`` lives on.

    Groups that share an escnn group and differ only in their axis ``frame`` (``c4_axial`` and ``c4_axial_d``) cannot
    be told apart from a field type: the unpermuted one is returned (among groups on one escnn group, one whose hidden
    field the type uses); pass a :class:`~equivox.nn.FieldSpec` instead.
    """
    matches = [g for g in _INSTANCES.values() if g.gspace.fibergroup == field_type.gspace.fibergroup]
    if matches:  # groups on one escnn group (so3, so3_irreps with options): the one whose hidden field is used
        names = {r.name for r in field_type.representations}
        return min(matches, key=lambda g: (g.spec.frame != (0, 1, 2), g.hidden_repr.name not in names))
    raise TypeError(
        f"field type on {field_type.gspace} does not belong to an equivox group; build its gspace with "
        f"equivox.groups.get_group(name).gspace"
    )


# ------------------------------------------------------------------------------------------------------------
# parameterised group names: "so3_irreps(irreps=4x0e+2x1o+1x2e, filter_lmax=3)"

#: specs of parameterised names, by canonical name (built from the registered base spec on first use)
_DERIVED: Dict[str, GroupSpec] = {}


def _unknown_group_message(name) -> str:
    import difflib

    close = difflib.get_close_matches(str(name), list(GROUPS), n=3)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return f"unknown group {name!r}; {hint}available groups: {', '.join(GROUPS)}"


def _split_group_name(name: str) -> Tuple[str, List[Tuple[str, str]]]:
    """``"base(k=v, ...)"`` -> ``("base", [("k", "v"), ...])`` (syntax only; commas inside ``[...]`` stay)."""
    if "(" not in name and ")" not in name:
        return name, []
    base, _, rest = name.partition("(")
    base, rest = base.strip(), rest.strip()
    if not base or not rest.endswith(")"):
        raise ValueError(f"group name {name!r} must read base(option=value, ...), e.g. "
                         "so3_irreps(irreps=4x0e+2x1o+1x2e, filter_lmax=3)")
    items, depth, cur = [], 0, ""
    for ch in rest[:-1]:
        depth += (ch in "[(") - (ch in "])")
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    pairs = []
    for item in items:
        if not item.strip() and len(items) == 1:
            continue  # "base()"
        key, eq, value = item.partition("=")
        if not eq or not key.strip().isidentifier() or not value.strip():
            raise ValueError(f"group name {name!r}: options are option=value separated by commas, got {item.strip()!r}")
        pairs.append((key.strip(), value.strip()))
    return base, pairs


def _field_options(fields: FieldKind) -> Dict[str, object]:
    """The options of a field kind: its dataclass fields (less :attr:`FieldKind.fixed_by_group`) and their types."""
    import dataclasses
    import sys
    import typing

    if not dataclasses.is_dataclass(fields):
        return {}
    hints = typing.get_type_hints(type(fields), vars(sys.modules[type(fields).__module__]))
    return {f.name: hints.get(f.name, object) for f in dataclasses.fields(fields)
            if f.init and f.name not in type(fields).fixed_by_group}


def _describe_type(tp) -> str:
    import typing

    args = typing.get_args(tp)
    if typing.get_origin(tp) is typing.Union and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return " or ".join(_describe_type(a) for a in inner) + " or none"
    if typing.get_origin(tp) is tuple or tp is tuple:
        return "a list [a, b, ...]"
    return {int: "an integer", bool: "true or false", str: "a string", float: "a number"}.get(tp, str(tp))


def _parse_option(text: str, tp, where: str):
    """The value of an option written as ``text``, parsed by its dataclass type ``tp`` (``ValueError`` one line)."""
    import typing

    import yaml

    args = typing.get_args(tp)
    optional = typing.get_origin(tp) is typing.Union and type(None) in args
    inner = [a for a in args if a is not type(None)] if optional else [tp]
    bad = f"{where}: expected {_describe_type(tp)}, got {text!r}"
    if text.lower() in ("none", "null", "~"):
        if optional:
            return None
        raise ValueError(bad)
    if len(inner) != 1:
        raise ValueError(f"{where}: options of type {tp} cannot be given in a group name")
    (want,) = inner
    if want is str:
        value = text[1:-1] if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"" else text
        return "".join(value.split())  # a group name is a token: no spaces inside values ("4x0e + 1x1o")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ValueError(bad) from None
    if want is bool and isinstance(value, bool):
        return value
    if want is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if want is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if (typing.get_origin(want) is tuple or want is tuple) and isinstance(value, list):
        return tuple(value)
    raise ValueError(bad)


def _format_option(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ",".join(_format_option(v) for v in value) + "]"
    return str(value)


def parse_group_name(name) -> Tuple[str, Dict[str, object]]:
    """Split a group name into its registered base name and typed field options.

    ``"so3_irreps(irreps=4x0e+2x1o+1x2e, filter_lmax=3)"`` -> ``("so3_irreps", {"irreps": "4x0e+2x1o+1x2e",
    "filter_lmax": 3})``; a plain registered name -> ``(name, {})``. The options are the dataclass fields of the
    base group's field kind (``get_group(base).spec.fields``; ``FieldKind.fixed_by_group`` ones excluded), each
    value parsed by the field's type: integers, ``true``/``false``, strings (spaces removed), ``none`` for
    ``Optional`` fields, ``[a, b]`` for tuples. Options equal to the base group's own value are dropped, so every
    spelling of a group has one canonical name (:func:`canonical_group_name`).

    Raises:
        ValueError: one line: malformed name, unknown base group (close names listed), unknown option (the field
            kind's options listed), a value of the wrong type, or options on a field kind that has none.
    """
    if not isinstance(name, str):
        raise ValueError(_unknown_group_message(name))
    base, pairs = _split_group_name(name)
    spec = GROUPS.get(base)
    if spec is None:
        raise ValueError(_unknown_group_message(base))
    if not pairs:
        return base, {}
    kinds = _field_options(spec.fields)
    if not kinds:
        raise ValueError(f"group {base!r} takes no options: its {spec.fields.name} fields have none (options exist "
                         f"for groups with irreps, fourier or quotient fields, e.g. so3_irreps(filter_lmax=3))")
    options: Dict[str, object] = {}
    for key, text in pairs:
        if key in type(spec.fields).fixed_by_group:
            raise ValueError(f"{key!r} of group {base!r} is fixed by the group, not an option (pick the group "
                             f"that has it, e.g. so3_irreps or o3_irreps)")
        if key not in kinds:
            listed = ", ".join(f"{k} ({_describe_type(t)})" for k, t in kinds.items())
            raise ValueError(f"unknown option {key!r} for group {base!r} ({spec.fields.name} fields); "
                             f"options: {listed}")
        if key in options:
            raise ValueError(f"group name {name!r} gives option {key!r} twice")
        value = _parse_option(text, kinds[key], f"option {key}={text} of group {base!r}")
        if value != getattr(spec.fields, key):
            options[key] = value
    return base, options


def canonical_group_name(name) -> str:
    """The one spelling of a group name: the base alone when no option differs from it, else
    ``base(k1=v1, k2=v2)`` with the options sorted by name and values written canonically."""
    base, options = parse_group_name(name)
    if not options:
        return base
    return f"{base}(" + ", ".join(f"{k}={_format_option(options[k])}" for k in sorted(options)) + ")"


def group_spec(name) -> GroupSpec:
    """The :class:`GroupSpec` of a group name, registered or parameterised (see :func:`parse_group_name`; nothing
    escnn is built). A parameterised name gets the base spec with ``fields = dataclasses.replace(base.fields,
    **options)`` under its canonical name, checked with ``FieldKind.validate`` and kept for the process.

    Raises:
        ValueError: as :func:`parse_group_name`, or an option value the field kind cannot use.
    """
    import dataclasses

    if isinstance(name, str) and name in GROUPS:
        return GROUPS[name]
    canonical = canonical_group_name(name)
    if canonical in GROUPS:
        return GROUPS[canonical]
    if canonical not in _DERIVED:
        base, options = parse_group_name(canonical)
        spec = GROUPS[base]
        try:
            fields = dataclasses.replace(spec.fields, **options)
            fields.validate()
        except (TypeError, ValueError) as err:
            raise ValueError(f"group {canonical!r}: {err}") from None
        written = ", ".join(f"{k}={_format_option(v)}" for k, v in sorted(options.items()))
        _DERIVED[canonical] = dataclasses.replace(
            spec, name=canonical, fields=fields,
            description=f"{base} with its {spec.fields.name} fields' {written} (base: {spec.description})")
    return _DERIVED[canonical]


def group_name_error(value, what: str = "group", extra: Tuple[str, ...] = ()) -> Optional[str]:
    """``None`` when ``value`` is a usable group name (registered, parameterised, or one of ``extra`` such as
    ``"auto"``), else the one-line message for the user, starting with ``what`` (a config key or CLI flag)."""
    import difflib

    if value in extra:
        return None
    try:
        base = _split_group_name(value)[0] if isinstance(value, str) else None
    except ValueError as err:
        return f"{what} {value!r}: {err}"
    if base not in GROUPS:
        valid = available_groups() + list(extra)
        close = difflib.get_close_matches(str(base), valid, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"{what} {value!r} is not a group name; {hint}valid: {', '.join(valid)} (with field options: " \
               "e.g. so3_irreps(filter_lmax=3))"
    try:
        group_spec(value)
    except ValueError as err:
        return f"{what} {value!r}: {err}"
    return None


def get_group(group) -> Group:
    """Return the :class:`Group` of a name (a ``Group`` is returned as is): a registered name (``"octa"``) or one
    with field options (``"so3_irreps(irreps=4x0e+2x1o+1x2e, filter_lmax=3)"``, see :func:`parse_group_name`).
    One shared, lazily built instance per canonical name and process: every spelling gives the same instance.

    Raises:
        ValueError: one line: unknown name (close names listed), unknown option or bad value.
    """
    if isinstance(group, Group):
        return group
    hit = _INSTANCES.get(group) if isinstance(group, str) else None
    if hit is not None:
        return hit
    spec = group_spec(group)
    if spec.name not in _INSTANCES:
        _INSTANCES[spec.name] = Group(spec)
    return _INSTANCES[spec.name]


#: modules that register groups whose field kinds live above this module (they import it): loaded by name at its
#: end, so that ``get_group`` knows their groups whichever module is imported first. ``equivox.irreps.fields`` adds
#: ``so3_irreps`` and ``o3_irreps`` (e3nn itself is imported only when one is built).
_BUILTIN_PLUGINS = ("equivox.irreps.fields",)
for _plugin in _BUILTIN_PLUGINS:
    importlib.import_module(_plugin)
