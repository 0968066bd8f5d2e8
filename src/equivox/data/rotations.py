"""Rotations of voxel volumes: exact grid rotations and resampled SO(3) rotations, as functions and as
MONAI-compatible (dictionary) transforms, for training augmentation and rotation-robust evaluation.

Frame and convention (same as :class:`equivox.groups.GridElement`): a 3x3 matrix ``M`` acts on tensor-axis
coordinates ``(d, h, w)`` (the last three axes ``D, H, W``) and maps a scalar field ``f`` to
``f'(p) = f(M^{-1} p)``, rotating about the grid centre ``((D-1)/2, (H-1)/2, (W-1)/2)``. Voxels are taken to be
isotropic (unit spacing on every axis).

* **Exact** (no interpolation): :class:`GridRotated`, :class:`GridRotatedd`, :class:`RandGridRotated`,
  :class:`RandGridRotatedd` permute voxels with a grid-exact group element (90-degree rotations, and the
  inversion for groups with reflections). Values and dtypes are preserved bit for bit.
* **Resampled**: :func:`rotate_volume`, :class:`SO3Rotated`, :class:`SO3Rotatedd`, :class:`RandSO3Rotatedd`
  use ``torch.nn.functional.affine_grid`` + ``grid_sample`` (``align_corners=True``): trilinear
  (``"bilinear"``) for images, ``"nearest"`` for labels (label values and dtype kept exactly). For a
  90-degree matrix on a cubic volume the resampled result equals the exact permutation to float precision.

All transforms accept ``torch.Tensor``, MONAI ``MetaTensor`` (its affine is updated so every voxel keeps its
world position, as MONAI's own spatial transforms do) and ``numpy.ndarray`` (returned as numpy).
Dictionary transforms follow the MONAI convention: each value is channel-first without batch, ``(C, D, H, W)``.
"""
from __future__ import annotations

import math
from typing import Hashable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import MapTransform, RandomizableTransform, Transform
from monai.utils import ensure_tuple_rep
from scipy.spatial.transform import Rotation

from ..groups import GridElement, grid_elements_of_name

__all__ = [
    "random_rotation_matrices",
    "rotate_volume",
    "grid_elements_of",
    "GridRotated",
    "GridRotatedd",
    "RandGridRotated",
    "RandGridRotatedd",
    "SO3Rotated",
    "SO3Rotatedd",
    "RandSO3Rotated",
    "RandSO3Rotatedd",
]

_MODES = ("bilinear", "nearest")
_DEFAULT_DICT_MODE = ("bilinear", "nearest")
_PADDINGS = {"zeros": "constant", "border": "replicate", "reflection": "reflect"}


def random_rotation_matrices(n: int, seed: Optional[int] = None) -> np.ndarray:
    """``n`` rotation matrices drawn uniformly (Haar measure) from SO(3).

    Args:
        n: number of matrices (``>= 0``).
        seed: integer seed (same seed, same matrices), or ``None`` for fresh randomness.

    Returns:
        ``float64`` array ``(n, 3, 3)``: orthonormal, determinant +1, to be read in the tensor-axis
        ``(d, h, w)`` frame (the Haar measure is invariant under the change of frame, so the distribution is
        the same in any frame).
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n == 0:
        return np.zeros((0, 3, 3))
    return Rotation.random(n, random_state=seed).as_matrix().reshape(n, 3, 3)


def _as_matrix(matrix) -> np.ndarray:
    if isinstance(matrix, GridElement):
        return np.array(matrix.matrix, dtype=np.float64)
    if isinstance(matrix, Rotation):
        return matrix.as_matrix()
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().cpu().numpy()
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape[-2:] != (3, 3) or m.ndim not in (2, 3):
        raise ValueError(f"rotation matrix must have shape (3, 3) or (B, 3, 3), got {m.shape}")
    return m


def _expanded_size(n: int, target: int) -> int:
    """Smallest size >= target with the parity of ``n`` (so padding is symmetric and the centre stays put)."""
    return target if (target - n) % 2 == 0 else target + 1


def rotate_volume(
    x: torch.Tensor,
    matrix,
    mode: str = "bilinear",
    padding: str = "zeros",
    expand: bool = False,
) -> torch.Tensor:
    """Rotate a volume about its grid centre by a 3x3 matrix, by resampling.

    Args:
        x: ``(B, C, D, H, W)`` or ``(C, D, H, W)`` tensor, any real or integer/bool dtype.
        matrix: ``(3, 3)`` rotation (any orthogonal matrix works, reflections included) in the ``(d, h, w)``
            frame, or ``(B, 3, 3)`` for one matrix per batch item; array, tensor, scipy ``Rotation`` or
            :class:`~equivox.groups.GridElement`. Convention ``f'(p) = f(M^{-1} p)``, as ``GridElement``.
        mode: ``"bilinear"`` (trilinear interpolation, images) or ``"nearest"`` (labels: output values are a
            subset of input values; integer/bool dtypes are preserved exactly).
        padding: value outside the volume: ``"zeros"``, ``"border"`` or ``"reflection"`` (grid_sample names).
        expand: if True, first pad every side (centred, with ``padding``) to the smallest size
            ``>= ceil(sqrt(3) * max(D, H, W))`` with that side's parity, so nothing is cut off by any rotation.
            The output is then larger than the input.

    Returns:
        Tensor of the same rank, dtype and device as ``x``; spatial shape unchanged unless ``expand``.
        Resampled (not exact) in general; a 90-degree matrix on a cubic volume matches
        ``GridElement.apply`` to float precision (``align_corners=True`` puts the sample points on voxel centres).
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if padding not in _PADDINGS:
        raise ValueError(f"padding must be one of {tuple(_PADDINGS)}, got {padding!r}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"rotate_volume expects a torch.Tensor, got {type(x).__name__} (use SO3Rotated for numpy)")
    if x.dim() not in (4, 5):
        raise ValueError(f"rotate_volume expects (B, C, D, H, W) or (C, D, H, W), got shape {tuple(x.shape)}")
    unbatched = x.dim() == 4
    v = x.unsqueeze(0) if unbatched else x
    v = v.as_subclass(torch.Tensor) if type(v) is not torch.Tensor else v  # plain tensor math (MetaTensor-safe)
    m = _as_matrix(matrix)
    b = v.shape[0]
    if m.ndim == 3 and m.shape[0] != b:
        raise ValueError(f"got {m.shape[0]} matrices for a batch of {b} volumes")

    in_dtype = v.dtype
    work = torch.float64 if in_dtype == torch.float64 else torch.float32
    v = v.to(work)
    if expand:
        target = math.ceil(math.sqrt(3.0) * max(v.shape[2:]))
        pads: List[int] = []
        for n in reversed(v.shape[2:]):  # F.pad wants (w_lo, w_hi, h_lo, h_hi, d_lo, d_hi)
            extra = _expanded_size(n, target) - n
            pads += [extra // 2, extra - extra // 2]
        if padding == "reflection" and max(pads) >= min(v.shape[2:]):
            raise ValueError("expand=True with padding='reflection' needs pads smaller than the volume")
        if _PADDINGS[padding] == "constant":
            v = F.pad(v, pads)
        else:
            v = F.pad(v, pads, mode=_PADDINGS[padding])

    # Output voxel p (relative to the centre) samples input voxel M^{-1} p. In grid_sample's normalized
    # coordinates (align_corners=True: -1 and 1 are the centres of the first and last voxels) along axis i,
    # p_i = s_i * n_i with s_i = (size_i - 1) / 2, so n_in = S^{-1} M^{-1} S n_out.
    sizes = torch.tensor([max(n - 1, 1) / 2.0 for n in v.shape[2:]], dtype=torch.float64)
    minv = torch.from_numpy(np.ascontiguousarray(np.swapaxes(m, -1, -2)))  # inverse of an orthogonal matrix
    if minv.dim() == 2:
        minv = minv.expand(b, 3, 3)
    a = minv * sizes.view(1, 1, 3) / sizes.view(1, 3, 1)
    a = a.flip(-1).flip(-2)  # (d, h, w) order -> grid_sample's (x, y, z) = (w, h, d) order
    theta = torch.cat([a, torch.zeros(b, 3, 1, dtype=torch.float64)], dim=2).to(work).to(v.device)
    grid = F.affine_grid(theta, list(v.shape), align_corners=True)
    out = F.grid_sample(v, grid, mode=mode, padding_mode=padding, align_corners=True)
    if not in_dtype.is_floating_point:
        out = out.round().to(in_dtype) if in_dtype != torch.bool else out > 0.5
    elif out.dtype != in_dtype:
        out = out.to(in_dtype)
    return out[0] if unbatched else out


# ----------------------------------------------------------------------------------------------------------
# helpers shared by the transforms: numpy / tensor / MetaTensor in, same type out


def _to_tensor(img):
    if isinstance(img, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(img)), True
    if isinstance(img, torch.Tensor):
        return img, False
    raise TypeError(f"expected a numpy array or torch tensor, got {type(img).__name__}")


def _finish(out: torch.Tensor, img, was_numpy: bool, m: np.ndarray):
    """Return ``out`` in the input's type; for a MetaTensor, update its affine so voxels keep world positions."""
    if was_numpy:
        return out.contiguous().numpy()
    from monai.data import MetaTensor

    if isinstance(img, MetaTensor):
        in_shape = np.array(img.shape[-3:], dtype=np.float64)
        out_shape = np.array(out.shape[-3:], dtype=np.float64)
        c_in = (in_shape - 1) / 2.0
        c_out = (out_shape - 1) / 2.0
        minv = m.T
        # output voxel p' comes from input voxel M^{-1} (p' - c_out) + c_in (unpadded input indices)
        t = np.eye(4)
        t[:3, :3] = minv
        t[:3, 3] = c_in - minv @ c_out  # padding is symmetric about the centre, so it cancels out
        meta = MetaTensor(out.as_subclass(torch.Tensor), meta=dict(img.meta), applied_operations=list(img.applied_operations))
        aff = img.affine.to(torch.float64) @ torch.from_numpy(t)
        meta.affine = aff
        return meta
    return out


def _modes_for(keys, mode, name="mode"):
    """Per-key modes; the default ``("bilinear", "nearest")`` means: first key (the image) trilinear, every
    other key (labels) nearest, whatever the number of keys."""
    if isinstance(mode, (tuple, list)) and tuple(mode) == _DEFAULT_DICT_MODE and len(keys) != 2:
        return ("bilinear",) + ("nearest",) * (len(keys) - 1)
    return ensure_tuple_rep(mode, len(keys))


# ----------------------------------------------------------------------------------------------------------
# exact grid rotations


def grid_elements_of(group) -> List[GridElement]:
    """The grid-exact elements of ``group`` (identity first).

    ``group`` is a registry name (:func:`equivox.groups.grid_elements_of_name`: groups whose spec lists its
    elements, e.g. the cube groups, need no escnn object), a ``Group``, or a sequence of :class:`GridElement`.
    """
    if isinstance(group, str):
        return grid_elements_of_name(group)
    if hasattr(group, "grid_elements"):
        return list(group.grid_elements)
    els = list(group)
    if not els or not all(isinstance(e, GridElement) for e in els):
        raise ValueError("group must be a group name, a Group, or a non-empty sequence of GridElement")
    return els


def _apply_element(element: GridElement, img):
    x, was_numpy = _to_tensor(img)
    if x.dim() < 3:
        raise ValueError(f"expected an array (..., D, H, W), got shape {tuple(x.shape)}")
    out = element.apply(x.as_subclass(torch.Tensor) if type(x) is not torch.Tensor else x).contiguous()
    return _finish(out, img, was_numpy, np.array(element.matrix, dtype=np.float64))


class GridRotated(Transform):
    """Apply one grid-exact element to an array ``(..., D, H, W)`` (e.g. ``(C, D, H, W)``): exact voxel
    permutation, values and dtype preserved; non-cubic volumes get their spatial shape permuted.

    Args:
        element: a :class:`~equivox.groups.GridElement` or a 3x3 signed permutation matrix.
    """

    def __init__(self, element):
        self.element = element if isinstance(element, GridElement) else GridElement.from_matrix(_as_matrix(element))

    def __call__(self, img):
        return _apply_element(self.element, img)


class GridRotatedd(MapTransform):
    """Dictionary version of :class:`GridRotated`: the same element applied to every key (exact)."""

    def __init__(self, keys, element, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.rotator = GridRotated(element)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.rotator(d[key])
        return d


class RandGridRotated(RandomizableTransform):
    """With probability ``prob``, apply a uniformly random grid-exact element of ``group`` (exact).

    Args:
        group: see :func:`grid_elements_of` (default ``"octa"``: the 24 rotations of the cube).
        prob: probability of rotating at all (otherwise the input is returned unchanged).

    ``set_random_state(seed)`` makes the sequence reproducible; ``last_element`` is the element drawn last.
    """

    def __init__(self, group="octa", prob: float = 1.0):
        RandomizableTransform.__init__(self, prob)
        self.elements = grid_elements_of(group)
        self.last_element: GridElement = self.elements[0]

    def randomize(self, data=None) -> None:
        super().randomize(None)
        if self._do_transform:
            self.last_element = self.elements[self.R.randint(len(self.elements))]
        else:
            self.last_element = GridElement.from_matrix(np.eye(3))

    def __call__(self, img, randomize: bool = True):
        if randomize:
            self.randomize()
        return _apply_element(self.last_element, img) if self._do_transform else img


class RandGridRotatedd(RandomizableTransform, MapTransform):
    """Dictionary version of :class:`RandGridRotated`: ONE random element per call, applied to every key
    (image and label rotate together, exactly)."""

    def __init__(self, keys, group="octa", prob: float = 1.0, allow_missing_keys: bool = False):
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.rand = RandGridRotated(group, prob=1.0)

    def set_random_state(self, seed=None, state=None):
        super().set_random_state(seed, state)
        self.rand.set_random_state(seed, state)
        return self

    def randomize(self, data=None) -> None:
        super().randomize(None)
        self.rand.randomize()

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        self.randomize()
        d = dict(data)
        if not self._do_transform:
            return d
        for key in self.key_iterator(d):
            d[key] = _apply_element(self.rand.last_element, d[key])
        return d


# ----------------------------------------------------------------------------------------------------------
# resampled SO(3) rotations


def _rotate_any(img, m: np.ndarray, mode: str, padding: str, expand: bool):
    x, was_numpy = _to_tensor(img)
    if x.dim() != 4:
        raise ValueError(f"expected a channel-first volume (C, D, H, W), got shape {tuple(x.shape)}")
    out = rotate_volume(x, m, mode=mode, padding=padding, expand=expand)
    return _finish(out, img, was_numpy, m)


class SO3Rotated(Transform):
    """Rotate a ``(C, D, H, W)`` volume by a fixed matrix, by resampling (see :func:`rotate_volume`).

    Args:
        matrix: 3x3 rotation in the ``(d, h, w)`` frame (array, tensor, scipy ``Rotation`` or ``GridElement``).
        mode: ``"bilinear"`` (images) or ``"nearest"`` (labels). padding, expand: as :func:`rotate_volume`.
    """

    def __init__(self, matrix, mode: str = "bilinear", padding: str = "zeros", expand: bool = False):
        self.matrix = _as_matrix(matrix)
        if self.matrix.shape != (3, 3):
            raise ValueError(f"SO3Rotated takes one (3, 3) matrix, got {self.matrix.shape}")
        self.mode, self.padding, self.expand = mode, padding, expand

    def __call__(self, img):
        return _rotate_any(img, self.matrix, self.mode, self.padding, self.expand)


class SO3Rotatedd(MapTransform):
    """Dictionary version of :class:`SO3Rotated`: one matrix for every key, one ``mode`` per key.

    The default ``mode=("bilinear", "nearest")`` means trilinear for the first key (the image) and nearest for
    every other key (labels, exact values), whatever the number of keys; pass a tuple to choose per key."""

    def __init__(self, keys, matrix, mode=("bilinear", "nearest"), padding="zeros", expand: bool = False,
                 allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.matrix = _as_matrix(matrix)
        self.mode = _modes_for(self.keys, mode)
        self.padding = ensure_tuple_rep(padding, len(self.keys))
        self.expand = expand

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key, mode, pad in self.key_iterator(d, self.mode, self.padding):
            d[key] = _rotate_any(d[key], self.matrix, mode, pad, self.expand)
        return d


class RandSO3Rotated(RandomizableTransform):
    """With probability ``prob``, rotate a ``(C, D, H, W)`` volume by a Haar-random rotation (resampled).
    ``set_random_state(seed)`` makes it reproducible; ``last_matrix`` is the matrix used last."""

    def __init__(self, mode: str = "bilinear", padding: str = "zeros", expand: bool = False, prob: float = 1.0):
        RandomizableTransform.__init__(self, prob)
        self.mode, self.padding, self.expand = mode, padding, expand
        self.last_matrix = np.eye(3)

    def randomize(self, data=None) -> None:
        super().randomize(None)
        self.last_matrix = Rotation.random(random_state=self.R).as_matrix() if self._do_transform else np.eye(3)

    def __call__(self, img, randomize: bool = True):
        if randomize:
            self.randomize()
        if not self._do_transform:
            return img
        return _rotate_any(img, self.last_matrix, self.mode, self.padding, self.expand)


class RandSO3Rotatedd(RandomizableTransform, MapTransform):
    """Dictionary version of :class:`RandSO3Rotated`: ONE Haar-random rotation per call for every key, with a
    ``mode`` per key (default: trilinear for the first key, nearest for the others, as :class:`SO3Rotatedd`).
    ``expand`` as
    :func:`rotate_volume`. Use ``set_random_state(seed)`` for reproducible augmentation."""

    def __init__(self, keys, mode=("bilinear", "nearest"), padding="zeros", expand: bool = False,
                 prob: float = 1.0, allow_missing_keys: bool = False):
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.mode = _modes_for(self.keys, mode)
        self.padding = ensure_tuple_rep(padding, len(self.keys))
        self.expand = expand
        self.last_matrix = np.eye(3)

    def randomize(self, data=None) -> None:
        super().randomize(None)
        self.last_matrix = Rotation.random(random_state=self.R).as_matrix() if self._do_transform else np.eye(3)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        self.randomize()
        d = dict(data)
        if not self._do_transform:
            return d
        for key, mode, pad in self.key_iterator(d, self.mode, self.padding):
            d[key] = _rotate_any(d[key], self.last_matrix, mode, pad, self.expand)
        return d
