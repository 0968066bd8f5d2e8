"""Data loading and rotation transforms for equivox.

* :mod:`.registry`: the dataset registry (:func:`register_dataset`, :class:`DatasetSpec`): every named dataset
  the CLI, the training config and the training data code accept.
* :mod:`.meshes`: mesh files and their voxelization into occupancy grids.
* :mod:`.part_labels`: per-voxel part labels from a mesh's materials (``kicad_part_segments``).
* :mod:`.arrays` / :mod:`.binvox`: ``.npy`` / ``.npz`` arrays, binvox files and single volume files.
* :mod:`.medmnist`: MedMNIST-3D archives. :mod:`.mesh_folders`: ModelNet-style mesh folders (voxel cache).
* :mod:`.medical`: MONAI pipelines for 3D segmentation volumes (NIfTI, Decathlon), with input validation.
* :mod:`.rotations`: exact grid rotations and resampled SO(3) rotations as functions and MONAI transforms.
* :mod:`.bundled`: small real datasets shipped with equivox (registered on import).

Preparing data for a model (training and the benchmark harness read through these):

* :mod:`.sources`: a dataset's arrays as stored (registered name, ``.npz``, mesh folder; registered volumes).
* :mod:`.grids`: resizing cubic grids to the input size, centre crops, downsampled volumes, checked grids.
* :mod:`.patches`: in-memory datasets (classification grids, random segmentation patches, validation crops), the
  rotation augmentation, stratified subsampling.
* :mod:`.folders`: image/label NIfTI folders and Decathlon folders: found, checked, split, validation pipeline.
* :mod:`.intensity`: intensity rules (classification divisor, NIfTI ``ct`` / ``mri`` chosen from the images).
* :mod:`.labels`: label checks and the left/right class pairs of a dataset's class names.

Every bad-input problem raises :class:`DataError` (a ``ValueError``) naming the file and the problem; datasets of
many files skip unusable files with a :class:`DataWarning` naming each (``strict=True`` raises instead).
"""
from .errors import DataError, DataWarning, check_finite
from .registry import *  # noqa: F401,F403
from .registry import __all__ as _registry_all
from .rotations import *  # noqa: F401,F403
from .rotations import __all__ as _rot_all
from .binvox import *  # noqa: F401,F403
from .binvox import __all__ as _bv_all
from .meshes import *  # noqa: F401,F403
from .meshes import __all__ as _meshes_all
from .part_labels import *  # noqa: F401,F403
from .part_labels import __all__ as _part_labels_all
from .arrays import *  # noqa: F401,F403
from .arrays import __all__ as _arrays_all
from .medmnist import *  # noqa: F401,F403
from .medmnist import __all__ as _medmnist_all
from .mesh_folders import *  # noqa: F401,F403
from .mesh_folders import __all__ as _folders_all
from .medical import *  # noqa: F401,F403
from .medical import __all__ as _med_all
from .bundled import *  # noqa: F401,F403
from .bundled import __all__ as _bundled_all
from .labels import *  # noqa: F401,F403
from .labels import __all__ as _labels_all
from .intensity import *  # noqa: F401,F403
from .intensity import __all__ as _intensity_all
from .grids import *  # noqa: F401,F403
from .grids import __all__ as _grids_all
from .patches import *  # noqa: F401,F403
from .patches import __all__ as _patches_all
from .sources import *  # noqa: F401,F403
from .sources import __all__ as _sources_all
from .folders import *  # noqa: F401,F403
from .folders import __all__ as _data_folders_all

__all__ = (["DataError", "DataWarning", "check_finite"] + list(_registry_all) + list(_rot_all) + list(_bv_all)
           + list(_meshes_all) + list(_part_labels_all) + list(_arrays_all) + list(_medmnist_all)
           + list(_folders_all) + list(_med_all)
           + list(_bundled_all) + list(_labels_all) + list(_intensity_all) + list(_grids_all) + list(_patches_all)
           + list(_sources_all) + list(_data_folders_all))
