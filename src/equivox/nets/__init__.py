"""User-facing equivariant networks (as ``monai.networks.nets``): plain tensors ``(B, C, D, H, W)`` in and out.

Importing this package registers every network class under its name (:mod:`equivox.nets.registry`), and MONAI's
``UNet`` as ``"monai.UNet"`` (the parameter-matched MONAI row, :func:`equivox.baselines.matched_monai_unet`)."""
from monai.networks.nets import UNet as _MonaiUNet

from .classifier import InvariantClassifier
from .encoder import EquivariantEncoder, EquivariantFeatureExtractor
from .monai_blocks import EquivariantConvolution, EquivariantHead, EquivariantResidualUnit
from .monai_unet import EquivariantMonaiUNet
from .registry import register_model
from .unet import EquivariantUNet

for _cls in (EquivariantUNet, EquivariantMonaiUNet, InvariantClassifier, EquivariantEncoder,
             EquivariantFeatureExtractor):
    register_model(_cls.__name__, _cls)
# registered here, not in equivox.baselines: building it from a spec (checkpoints, parameter matching) must not
# depend on which higher module happened to be imported first
register_model("monai.UNet", _MonaiUNet)
del _cls

__all__ = ["EquivariantEncoder", "EquivariantUNet", "EquivariantMonaiUNet", "InvariantClassifier", "EquivariantConvolution",
           "EquivariantResidualUnit", "EquivariantHead", "EquivariantFeatureExtractor"]
