"""Field kinds: what a hidden field of a group is, and everything that depends on it.

Every :class:`~equivox.groups.GroupSpec` holds one :class:`FieldKind` instance (``spec.fields``); equivox's layers
ask it instead of switching on group names:

* :class:`RegularFields`: the regular representation of a finite group (pointwise nonlinearities are exact);
* :class:`QuotientFields`: a permutation representation on the cosets of a subgroup (cheaper, as exact);
* :class:`FourierFields`: band-limited Fourier coefficients on SO(3) / O(3), nonlinearity on grid samples;
* :class:`IrrepsFields`: e3nn irreps with gates (``so3_irreps``, ``o3_irreps``). Its options, validation and
  layout are here; its e3nn implementation (Wigner frame, spherical-harmonic kernels, gate and norm layers) lives in
  :mod:`equivox.irreps` and is imported only inside its hooks, when a group or a layer is built.

A field kind's dataclass fields are the options of a parameterised group name (:mod:`equivox.groups.names`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Dict, Optional, Tuple

import numpy as np
import torch

from .._escnn import ESCNN_VERSION, quiet
from ..cache import cached_tensors
from .elements import cube_rotations, cube_symmetries

__all__ = ["FieldKind", "FourierFields", "IrrepsFields", "QuotientFields", "RADIAL_BASES", "RegularFields"]

#: the ``basis`` names of ``e3nn.math.soft_one_hot_linspace`` (:attr:`IrrepsFields.radial_basis`)
RADIAL_BASES = ("gaussian", "cosine", "smooth_finite", "fourier", "bessel")


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
class IrrepsFields(FieldKind):
    """Hidden fields made of e3nn irreps, with gates (layout and layers: :mod:`equivox.irreps.fields`).

    Attributes:
        irreps: irreps of one field before the gates, e.g. ``"2x0e+1x1o+1x2e"``; scalars must be ``0e``; on SO(3)
            use the spherical-harmonic parities (``1o``, ``2e``).
        reflections: the group is O(3) (parity selection rules; 48 grid-exact elements) rather than SO(3).
        filter_lmax: largest ``l`` of the spherical harmonics in a kernel.
        radial: radial basis functions per path (>= 2; a 1x1x1 kernel uses 1); ``None``: ``2 * (kernel_size // 2)
            + 1`` (one per half voxel shell).
        radial_basis: ``soft_one_hot_linspace`` basis name (``"gaussian"``: overlapping, so every shell of
            voxel offsets gets its own profile; ``"smooth_finite"``, ``"cosine"``, ...).
        n_functionals, seed: functionals of the ``"group"`` pooling grid (default: the largest multiplicity).

    Every attribute but ``reflections`` is also an option of the group name:
    ``group="so3_irreps(irreps=4x0e+2x1o+1x2e, filter_lmax=3)"`` (:func:`equivox.groups.parse_group_name`).
    """

    irreps: str = "2x0e+1x1o+1x2e"
    reflections: bool = False
    filter_lmax: int = 2
    radial: Optional[int] = None
    radial_basis: str = "gaussian"
    n_functionals: Optional[int] = None
    seed: int = 5
    name: ClassVar[str] = "irreps"
    default_pooling: ClassVar[str] = "norm"
    fixed_by_group: ClassVar[Tuple[str, ...]] = ("reflections",)  # SO(3) or O(3) is the group's, not an option

    def validate(self) -> None:
        """One-line ``ValueError`` for option values that cannot build (checked before any layer is built)."""
        from e3nn import o3

        try:
            irreps = o3.Irreps(self.irreps)
        except (ValueError, AssertionError):
            raise ValueError(f"irreps {self.irreps!r} is not an e3nn irreps string (e.g. 2x0e+1x1o+1x2e)") from None
        if not self.reflections and any(p != (-1) ** l for _, (l, p) in irreps):
            raise ValueError(f"irreps {self.irreps!r} on SO(3): use the spherical-harmonic parities (0e, 1o, 2e, 3o)")
        self.parts()  # scalars 0e, not empty
        if self.filter_lmax < 0 or (self.radial is not None and self.radial < 2) or (
                self.n_functionals is not None and self.n_functionals < 1):  # e3nn's linspace basis needs 2 points
            raise ValueError(f"irreps fields need filter_lmax >= 0, radial >= 2 (or none) and n_functionals >= 1 "
                             f"(or none), got {self.filter_lmax}, {self.radial}, {self.n_functionals}")
        if self.radial_basis not in RADIAL_BASES:
            raise ValueError(f"radial_basis {self.radial_basis!r} is not one of e3nn's soft_one_hot_linspace bases: "
                             f"{', '.join(RADIAL_BASES)}")

    # ------------------------------------------------------------------ layout
    def parts(self) -> Tuple[object, object, object]:
        """``(scalars, gates, gated)`` as e3nn ``Irreps``."""
        from e3nn import o3

        irreps = o3.Irreps(self.irreps)
        scalars = o3.Irreps([(m, ir) for m, ir in irreps if ir.l == 0])
        gated = o3.Irreps([(m, ir) for m, ir in irreps if ir.l > 0])
        if any(ir.p != 1 for _, ir in scalars):
            raise ValueError(f"IrrepsFields({self.irreps!r}): scalars must be 0e (the gate's activation is not odd)")
        if scalars.dim == 0 and gated.dim == 0:
            raise ValueError("IrrepsFields: empty irreps")
        gates = o3.Irreps(f"{gated.num_irreps}x0e") if gated.num_irreps else o3.Irreps("")
        return scalars, gates, gated

    def field_irreps(self):
        """e3nn ``Irreps`` of one hidden field: ``scalars + gates + gated`` (not simplified: channel order)."""
        scalars, gates, gated = self.parts()
        return scalars + gates + gated

    def repr_name(self) -> str:
        return f"irreps_field[{self.field_irreps()}]"

    # ------------------------------------------------------------------ FieldKind
    # The hooks call the e3nn implementation in equivox.irreps (which imports this package): imported here, when a
    # group or a layer is built, never at import (tests/test_package_structure.py: DEFERRED_UPWARD).
    def hidden_repr(self, gspace):
        from ..irreps.bridge import irreps_repr

        return irreps_repr(gspace, self.field_irreps(), self.repr_name())

    def sampling_matrices(self, group) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(A (n * |cube group|, field_size), A_inv)``: rows ``v_r^T D(g)`` for ``n`` seeded random ``v_r`` and
        every cube symmetry ``g`` of the group (24 or 48); a grid-exact element permutes the rows."""
        from ..irreps.bridge import rotation_of

        irreps = self.field_irreps()
        n = self.n_functionals or max(m for m, _ in irreps.simplify())
        elements = cube_symmetries() if self.reflections else cube_rotations()
        v = torch.randn(n, irreps.dim, generator=torch.Generator().manual_seed(self.seed), dtype=torch.float64)
        a = torch.cat([v @ irreps.D_from_matrix(rotation_of(e)) for e in elements])
        return a.float(), torch.linalg.pinv(a).float()

    def kernel_basis(self, group, in_repr, out_repr, kernel_size: int) -> Dict[str, torch.Tensor]:
        from ..irreps.kernel import irreps_pair_basis

        return irreps_pair_basis(group, in_repr, out_repr, kernel_size, self)

    def norm_act(self, group, n_fields: int, norm, act):
        from ..irreps.layers import IrrepsGate, IrrepsNorm, field_layout

        layout = field_layout(self.field_irreps())
        name = group.name  # the layers' field types are this group's hidden fields
        gate = IrrepsGate(layout, n_fields, act, group=name) if act is not None else torch.nn.Identity()  # no act
        return IrrepsNorm(layout, n_fields, norm, group=name), gate
