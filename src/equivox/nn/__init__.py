"""Equivariant building blocks on escnn kernel bases (plain tensors in and out)."""
from .blocks import EquivariantConvBlock, EquivariantResidualUnit, invariant_voxel_head
from .canonical import CanonicalPose
from .conv import EquivariantConv3d
from .fields import EquivarianceError, FieldSpec
from .fieldwise import FieldNormAct
from .pooling import InvariantPooling
from .sampling import EquivariantDownsample, EquivariantUpsample, check_divisible

__all__ = [
    "CanonicalPose",
    "EquivariantConv3d",
    "EquivariantConvBlock",
    "EquivariantResidualUnit",
    "EquivariantDownsample",
    "EquivariantUpsample",
    "EquivarianceError",
    "FieldNormAct",
    "FieldSpec",
    "InvariantPooling",
    "check_divisible",
    "invariant_voxel_head",
]
