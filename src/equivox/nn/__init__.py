"""Equivariant building blocks on escnn kernel bases (plain tensors in and out).

Every layer here is an :class:`EquivariantModule` (``in_spec`` / ``out_spec``, ``export()``)."""
from .blocks import EquivariantConvBlock, FieldResidualUnit, invariant_voxel_head
from .canonical import CanonicalPose
from .conv import EquivariantConv3d
from ..core import EquivarianceError
from .fields import FieldSpec
from .fieldwise import FieldNormAct
from .heads import GroupStatsHead
from .label_swap import ClassSwapHead, class_permutation, permute_labels
from .module import EquivariantModule, as_field_spec
from .pooling import InvariantPooling
from .sampling import EquivariantDownsample, EquivariantUpsample, check_divisible

__all__ = [
    "CanonicalPose",
    "ClassSwapHead",
    "EquivariantConv3d",
    "EquivariantConvBlock",
    "EquivariantModule",
    "FieldResidualUnit",
    "EquivariantDownsample",
    "EquivariantUpsample",
    "EquivarianceError",
    "FieldNormAct",
    "FieldSpec",
    "GroupStatsHead",
    "InvariantPooling",
    "as_field_spec",
    "check_divisible",
    "class_permutation",
    "invariant_voxel_head",
    "permute_labels",
]

