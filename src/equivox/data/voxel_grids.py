"""Former home of the voxel-grid loaders, kept so that ``from equivox.data.voxel_grids import ...`` goes on
working. The code now lives in one module per job:

* :mod:`equivox.data.meshes`: mesh files and voxelization (:func:`voxelize_mesh`, placement rule),
* :mod:`equivox.data.arrays`: ``.npy`` / ``.npz`` arrays and single volume files,
* :mod:`equivox.data.medmnist`: MedMNIST-3D archives,
* :mod:`equivox.data.mesh_folders`: ModelNet-style mesh folders with the voxel cache.

Import the names from :mod:`equivox.data` (or from those modules) in new code.
"""
from __future__ import annotations

from .arrays import __all__ as _arrays_all
from .arrays import load_array, load_voxel_file
from .medmnist import __all__ as _medmnist_all
from .medmnist import MedMNIST3D, load_medmnist3d
from .mesh_folders import __all__ as _folders_all
from .mesh_folders import MeshFolderVoxels, ModelNetVoxels, mesh_folder_items, voxelize_files
from .meshes import __all__ as _meshes_all
from .meshes import MESH_EXTENSIONS, load_mesh, mesh_to_grid_coordinates, voxelize_mesh

__all__ = list(_meshes_all) + list(_arrays_all) + list(_medmnist_all) + list(_folders_all)
