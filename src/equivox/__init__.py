"""equivox: rotation-equivariant 3D CNNs for voxel grids and medical volumes (escnn inside, MONAI-compatible).

Main entry points: :mod:`equivox.groups` (``get_group``), :mod:`equivox.nets` (``EquivariantUNet``,
``InvariantClassifier``), :mod:`equivox.testing` (``equivariance_errors``).
"""
__version__ = "0.1.0"
