"""Irreps rows for the benchmark harness (:func:`equivox.benchmark.register_competitor`).

Importing this module adds (``benchmarks/accuracy.py --import equivox.benchmark.irreps_competitors`` /
``benchmarks/segmentation.py --import ...``, then name them in ``--models``; the old module name
``equivox.irreps.competitors`` still works):

* ``"equivariant (so3_irreps)"`` (classification): :class:`~equivox.nets.InvariantClassifier` on ``so3_irreps``
  fields, fields per level matched to the reference's parameter count;
* ``"equivariant (irreps, MELBA layout)"`` (segmentation): the layout of the SE(3) U-Net of Diaz, Geiger & McKinley
  (MELBA 2024): 5x5x5 spherical-harmonic kernels, each field ``4x0e+2x1o+1x2e`` (+3 gates), so two fields are
  their top level's ``8x0e+4x1e+2x2e`` (their ``1e`` is our ``1o``: SO(3) does not see parity), gated
  nonlinearity, batch norm; the reference's levels and strides, fields per level matched to its parameters.
"""
from __future__ import annotations

from ..groups import IrrepsFields

__all__ = ["MELBA_FIELD", "MELBA_GROUP", "IRREPS_CLASSIFIER", "MELBA_UNET", "melba_group", "melba_unet",
           "register_irreps_competitors"]

MELBA_FIELD = "4x0e+2x1o+1x2e"
MELBA_GROUP = "so3_irreps_melba"
IRREPS_CLASSIFIER = "equivariant (so3_irreps)"
MELBA_UNET = "equivariant (irreps, MELBA layout)"


def melba_group() -> str:
    """Register (once) and return the group of the MELBA layout: SO(3) with fields ``4x0e+2x1o+1x2e``."""
    from .._escnn import gspaces
    from ..groups import GroupSpec, available_groups, cube_rotations, register_group

    if MELBA_GROUP not in available_groups():
        register_group(GroupSpec(MELBA_GROUP, f"SO(3), e3nn irreps fields {MELBA_FIELD} with gates (MELBA 2024 "
                                 "SE(3) U-Net layout) (24 grid-exact)", lambda: gspaces.rot3dOnR3(maximum_frequency=2),
                                 IrrepsFields(MELBA_FIELD), continuous=True, listed_grid_elements=cube_rotations))
    return MELBA_GROUP


def melba_unet(ctx):
    """Builder of the MELBA-layout competitor: an :class:`~equivox.nets.EquivariantUNet` on :func:`melba_group`
    with kernel 5 and the reference's other settings, fields per level matched to the reference's parameters."""
    import torch

    from ..baselines import count_parameters, match_channels
    from ..nets import EquivariantUNet

    group = melba_group()
    base = {k: v for k, v in dict(ctx.base_kwargs).items() if k not in ("channels", "kernel_size")}
    base.update(spatial_dims=3, in_channels=ctx.in_channels, out_channels=ctx.n_classes)

    def build(ch):
        return EquivariantUNet(**{**base, "channels": tuple(ch), "group": group, "kernel_size": 5})

    channels = match_channels(count_parameters(ctx.reference), list(ctx.base_kwargs["channels"]), build)
    torch.manual_seed(ctx.seed)
    return build(channels)


def register_irreps_competitors() -> None:
    """Add the two rows (idempotent)."""
    from . import competitors as registry

    if IRREPS_CLASSIFIER not in registry.COMPETITORS:
        registry.register_competitor(IRREPS_CLASSIFIER, arch="equivariant", group="so3_irreps", match_params=True,
                                     tasks=("classify",))
    if MELBA_UNET not in registry.COMPETITORS:
        registry.register_competitor(MELBA_UNET, melba_unet, tasks=("segment",))


register_irreps_competitors()
