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

Spatial convention: a :class:`GridElement`'s 3x3 matrix ``M`` acts on tensor-axis coordinates ``(d, h, w)``
(axes ``D, H, W`` of a ``(B, C, D, H, W)`` tensor) and maps a scalar field ``f`` to ``f'(p) = f(M^{-1} p)`` about
the grid centre. escnn's own R^3 coordinates are ``(x, y, z) = (w, -h, -d)``; the registry converts.
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from ._escnn import ESCNN_VERSION, enn, gspaces, quiet
from .cache import cached_tensors

__all__ = [
    "GridElement",
    "Group",
    "GROUPS",
    "available_groups",
    "get_group",
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


@dataclass(frozen=True)
class GroupSpec:
    """Static description of a registry entry (cheap; nothing escnn is built)."""

    name: str
    description: str
    make_gspace: Callable[[], object]
    kind: str  # "regular" or "fourier"
    band_limit: Optional[int] = None
    grid: Tuple = ()
    continuous: bool = False


GROUPS: Dict[str, GroupSpec] = {
    spec.name: spec
    for spec in [
        GroupSpec("trivial", "no symmetry: a plain CNN on the same code path (baseline)",
                  lambda: gspaces.trivialOnR3(), "regular"),
        GroupSpec("octa", "octahedral group O: the 24 rotations of the cube (all grid-exact)",
                  lambda: gspaces.octaOnR3(), "regular"),
        GroupSpec("full_octa", "full octahedral group O_h: 48 elements, rotations and inversion (all grid-exact)",
                  lambda: gspaces.fullOctaOnR3(), "regular"),
        GroupSpec("ico", "icosahedral group I: 60 rotations (12 grid-exact)",
                  lambda: gspaces.icoOnR3(), "regular"),
        GroupSpec("full_ico", "full icosahedral group I_h: 120 elements (24 grid-exact)",
                  lambda: gspaces.fullIcoOnR3(), "regular"),
        GroupSpec("so3", "continuous rotations SO(3), band-limited fields (L=2) (24 grid-exact)",
                  lambda: gspaces.rot3dOnR3(maximum_frequency=2), "fourier", 2, ("cube_orbits", 3, 7), True),
        GroupSpec("o3", "continuous rotations and reflections O(3), band-limited fields (L=2) (48 grid-exact)",
                  lambda: gspaces.flipRot3dOnR3(maximum_frequency=2), "fourier", 2, ("cube_orbits", 3, 7), True),
    ]
}


def available_groups() -> List[str]:
    """Names accepted by ``group=``."""
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
            if spec.kind == "regular":
                self.hidden_repr = self.gspace.regular_repr
            else:
                self.hidden_repr = g.bl_regular_representation(spec.band_limit)
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
            for el in candidates:
                m = _escnn_to_tensor_frame(np.asarray(self.gspace.basespace_action(el)))
                try:
                    out.append(GridElement.from_matrix(m, el))
                except ValueError:
                    continue
        out.sort(key=lambda e: (not e.is_identity, e.name))
        return out

    @functools.cached_property
    def fourier_matrices(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """For ``kind == "fourier"``: ``(A, A_inv)`` mapping one field's band-limited coefficients to samples on a
        grid of group elements (``A``: ``(N, field_size)``) and back (``A_inv``: ``(field_size, N)``, pseudo-inverse).

        The grid is the orbit of ``spec.grid[1]`` fixed rotations under the 24 (or 48) cube symmetries, so it is
        closed under the grid-exact elements: the sampled nonlinearity is then exactly equivariant for them and
        approximately for other rotations. (escnn's ``thomson_cube`` grids need a long optimisation, and the
        48-point one is rank-deficient for band limit 2.) ``A`` follows escnn's ``FourierPointwise``.
        """
        if self.kind != "fourier":
            raise ValueError(f"group {self.name!r} uses regular fields; it has no Fourier sampling matrices")

        def build():
            from escnn.nn.modules.nonlinearities.fourier import _build_kernel
            from scipy.spatial.transform import Rotation

            g = self.gspace.fibergroup
            with quiet():
                kernel = _build_kernel(g, g.bl_irreps(self.spec.band_limit))
                kernel = kernel / np.linalg.norm(kernel)
                seeds = Rotation.random(self.spec.grid[1], random_state=self.spec.grid[2]).as_matrix()
                seeds = [g.element(m, "MAT") if self.name == "so3" else g.element((0, m), "MAT") for m in seeds]
                grid = [c @ s for s in seeds for c in g.grid("cube")]
                a = np.stack([self.hidden_repr(x) @ kernel for x in grid])
            return {"A": torch.from_numpy(a).float(), "Ainv": torch.from_numpy(np.linalg.pinv(a)).float()}

        key = f"fourier|escnn={ESCNN_VERSION}|{self.name}|L={self.spec.band_limit}|grid={self.spec.grid}"
        mats = cached_tensors(key, build)
        return mats["A"], mats["Ainv"]


_INSTANCES: Dict[str, Group] = {}


def group_of_field_type(field_type) -> Group:
    """The registered (already built) :class:`Group` whose gspace an escnn ``FieldType`` lives on."""
    for g in _INSTANCES.values():
        if g.gspace.fibergroup == field_type.gspace.fibergroup:
            return g
    raise TypeError(
        f"field type on {field_type.gspace} does not belong to an equivox group; build its gspace with "
        f"equivox.groups.get_group(name).gspace"
    )


def get_group(group) -> Group:
    """Return the :class:`Group` registered under ``group`` (a name, or a ``Group`` which is returned as is).

    Raises:
        ValueError: unknown name; the message lists the available groups.
    """
    if isinstance(group, Group):
        return group
    if not isinstance(group, str) or group not in GROUPS:
        lines = "\n".join(f"  {n:10s} {s.description}" for n, s in GROUPS.items())
        raise ValueError(f"unknown group {group!r}; available groups:\n{lines}")
    if group not in _INSTANCES:
        _INSTANCES[group] = Group(GROUPS[group])
    return _INSTANCES[group]
