"""The irreps field kind: hidden fields that are e3nn irreps (spherical-harmonic kernels, gated nonlinearity).

A hidden field of :class:`IrrepsFields` ``("2x0e+1x1o+1x2e")`` is the e3nn vector
``scalars + gates + gated`` = ``2x0e + 2x0e + 1x1o + 1x2e`` (12 channels, e3nn's basis, :mod:`~equivox.irreps.bridge`
frame): the ``0e`` scalars of the string, one extra ``0e`` gate per non-scalar irrep (as ``e3nn.nn.Gate`` wants
them), then the non-scalar irreps. Every part of a model asks this object:

* :meth:`kernel_basis`: e3nn's spherical harmonics on the kxkxk voxel offsets times a radial basis
  (``e3nn.math.soft_one_hot_linspace``), contracted with ``o3.wigner_3j`` for every allowed
  ``(l_in, l_filter, l_out)`` path (:mod:`equivox.irreps.kernel`);
* :meth:`norm_act`: e3nn-style batch norm (scalars centred and scaled, other irreps scaled by their mean squared
  norm) and the gate (scalars through the activation, gates through a sigmoid that multiplies the gated irreps;
  the sigmoid gates stay in the field as scalars) (:mod:`equivox.irreps.layers`);
* :meth:`sampling_matrices`: the field's values on the orbits, under the cube symmetries, of ``max multiplicity``
  random linear functionals: ``"group"`` pooling (max over them) is exact for the grid-exact elements; the default
  pooling is ``"norm"`` (the norm of every irrep: exact for every rotation).

The type system stays escnn's: :meth:`hidden_repr` is an escnn representation of SO(3) / O(3) acting in e3nn's
basis (:func:`equivox.irreps.bridge.irreps_repr`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Dict, List, Optional, Tuple

import torch

from ..groups import GROUPS, FieldKind, GroupSpec, cube_rotations, cube_symmetries

__all__ = ["IrrepsFields", "RADIAL_BASES", "irreps_group_specs"]

#: the ``basis`` names of ``e3nn.math.soft_one_hot_linspace``
RADIAL_BASES = ("gaussian", "cosine", "smooth_finite", "fourier", "bessel")


@dataclass(frozen=True)
class IrrepsFields(FieldKind):
    """Hidden fields made of e3nn irreps, with gates (see the module docstring).

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
    def hidden_repr(self, gspace):
        from .bridge import irreps_repr

        return irreps_repr(gspace, self.field_irreps(), self.repr_name())

    def sampling_matrices(self, group) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(A (n * |cube group|, field_size), A_inv)``: rows ``v_r^T D(g)`` for ``n`` seeded random ``v_r`` and
        every cube symmetry ``g`` of the group (24 or 48); a grid-exact element permutes the rows."""
        from .bridge import rotation_of

        irreps = self.field_irreps()
        n = self.n_functionals or max(m for m, _ in irreps.simplify())
        elements = cube_symmetries() if self.reflections else cube_rotations()
        v = torch.randn(n, irreps.dim, generator=torch.Generator().manual_seed(self.seed), dtype=torch.float64)
        a = torch.cat([v @ irreps.D_from_matrix(rotation_of(e)) for e in elements])
        return a.float(), torch.linalg.pinv(a).float()

    def kernel_basis(self, group, in_repr, out_repr, kernel_size: int) -> Dict[str, torch.Tensor]:
        from .kernel import irreps_pair_basis

        return irreps_pair_basis(group, in_repr, out_repr, kernel_size, self)

    def norm_act(self, group, n_fields: int, norm, act):
        from .layers import IrrepsGate, IrrepsNorm, field_layout

        layout = field_layout(self.field_irreps())
        gate = IrrepsGate(layout, n_fields, act) if act is not None else torch.nn.Identity()  # None: no nonlinearity
        return IrrepsNorm(layout, n_fields, norm), gate


def irreps_group_specs() -> List[GroupSpec]:
    """The registry entries ``so3_irreps`` and ``o3_irreps``."""
    from .._escnn import gspaces

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


for _spec in irreps_group_specs():  # the registry entries (equivox.groups imports this module at its end)
    GROUPS.setdefault(_spec.name, _spec)
