"""User-facing equivariant networks (as ``monai.networks.nets``): plain tensors ``(B, C, D, H, W)`` in and out."""
from .classifier import InvariantClassifier
from .encoder import EquivariantEncoder, EquivariantFeatureExtractor
from .monai_blocks import EquivariantConvolution, EquivariantHead, EquivariantResidualUnit
from .monai_unet import EquivariantMonaiUNet
from .registry import register_model
from .unet import EquivariantUNet

for _cls in (EquivariantUNet, EquivariantMonaiUNet, InvariantClassifier, EquivariantEncoder,
             EquivariantFeatureExtractor):
    register_model(_cls.__name__, _cls)
del _cls

__all__ = ["EquivariantEncoder", "EquivariantUNet", "EquivariantMonaiUNet", "InvariantClassifier", "EquivariantConvolution",
           "EquivariantResidualUnit", "EquivariantHead", "EquivariantFeatureExtractor"]
