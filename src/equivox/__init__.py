"""equivox: rotation-equivariant 3D CNNs for voxel grids and medical volumes (escnn inside, MONAI-compatible).

Main entry points: :func:`equivox.canonicalize` (any model, exactly rotation-robust), :mod:`equivox.groups`
(``get_group``), :mod:`equivox.nets` (``EquivariantUNet``, ``InvariantClassifier``, ``EquivariantEncoder``,
MONAI-style blocks), :mod:`equivox.export` (plain PyTorch), :mod:`equivox.testing` (``assert_equivariant``, ``equivariance_errors``),
:mod:`equivox.data` (loaders, bundled datasets, rotations), :mod:`equivox.training`, :mod:`equivox.evaluation` and
the ``equivox`` command (:mod:`equivox.cli`).
"""
__version__ = "0.1.0"

__all__ = ["canonicalize"]


def __getattr__(name):
    # ``equivox.canonicalize`` without importing escnn, torch and MONAI at ``import equivox``
    if name == "canonicalize":
        from .canonicalization import canonicalize

        return canonicalize
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
