"""Data loading and rotation transforms for equivox.

* :mod:`.voxel_grids` / :mod:`.binvox`: meshes, arrays, binvox, MedMNIST-3D and ModelNet-style folders as
  occupancy grids and classification datasets.
* :mod:`.medical`: MONAI pipelines for 3D segmentation volumes (NIfTI, Decathlon), with input validation.
* :mod:`.rotations`: exact grid rotations and resampled SO(3) rotations as functions and MONAI transforms.
* :mod:`.bundled` (when present): small real datasets shipped with equivox.

Every bad-input problem raises :class:`DataError` (a ``ValueError``) naming the file and the problem; datasets of
many files skip unusable files with a :class:`DataWarning` naming each (``strict=True`` raises instead).
"""
from .errors import DataError, DataWarning, check_finite
from .rotations import *  # noqa: F401,F403
from .rotations import __all__ as _rot_all

__all__ = ["DataError", "DataWarning", "check_finite"] + list(_rot_all)

try:
    from .binvox import *  # noqa: F401,F403
    from .binvox import __all__ as _bv_all

    __all__ += list(_bv_all)
except ImportError:  # pragma: no cover - while the module is being written
    pass

try:
    from .voxel_grids import *  # noqa: F401,F403
    from .voxel_grids import __all__ as _vg_all

    __all__ += list(_vg_all)
except ImportError:  # pragma: no cover
    pass

try:
    from .medical import *  # noqa: F401,F403
    from .medical import __all__ as _med_all

    __all__ += list(_med_all)
except ImportError:  # pragma: no cover
    pass

try:  # bundled real datasets (written separately; optional)
    from . import bundled as _bundled
    from .bundled import *  # noqa: F401,F403

    __all__ += list(getattr(_bundled, "__all__", [n for n in vars(_bundled) if not n.startswith("_")]))
except ImportError:
    pass
