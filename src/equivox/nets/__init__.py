"""User-facing equivariant networks (as ``monai.networks.nets``): plain tensors ``(B, C, D, H, W)`` in and out."""
from .classifier import InvariantClassifier
from .encoder import EquivariantEncoder
from .monai_blocks import (EquivariantConvolution, EquivariantFeatureExtractor, EquivariantHead,
                           EquivariantResidualUnit)
from .monai_unet import EquivariantMonaiUNet
from .unet import EquivariantUNet

__all__ = ["EquivariantEncoder", "EquivariantUNet", "EquivariantMonaiUNet", "InvariantClassifier", "EquivariantConvolution",
           "EquivariantResidualUnit", "EquivariantHead", "EquivariantFeatureExtractor"]
