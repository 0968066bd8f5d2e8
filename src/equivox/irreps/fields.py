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

The class itself lives with the other field kinds in :mod:`equivox.groups.fields` (the registry builds
``so3_irreps`` / ``o3_irreps`` from it without importing this package; its hooks call :mod:`.bridge`,
:mod:`.kernel` and :mod:`.layers` when a group or a layer is built); this module keeps its names.
"""
from __future__ import annotations

from ..groups.fields import RADIAL_BASES, IrrepsFields
from ..groups.registry import irreps_group_specs

__all__ = ["IrrepsFields", "RADIAL_BASES", "irreps_group_specs"]
