"""Rotation sets for rotation-augmented evaluation.

A :class:`Rotation` is a named function on ``(B, C, D, H, W)`` tensors, with a separate action for images
(trilinear for resampled rotations) and labels (nearest, values kept). Three kinds:

* ``"identity"``: the upright data, unchanged (exact).
* ``"grid"``: a grid-exact element of a group (a signed permutation of the voxel axes: 90-degree rotations and,
  for ``full_octa``/``o3``, improper elements). Exact: voxels are permuted, nothing is interpolated or lost.
  A model that is equivariant for the group gives the same score on all of them (to float rounding).
* ``"so3"``: a Haar-uniform random rotation, applied by resampling
  (:func:`equivox.data.rotations.rotate_volume`, same output size, zero padding). Not exact: images are
  interpolated (trilinear, slight blur), labels are resampled with nearest neighbour (values stay in the
  original label set but thin structures can lose or gain voxels), and the parts of the volume that rotate out
  of the box (near the 8 corners) are cut off while the corners of the output are filled with zeros
  (background). Content within the inscribed sphere of the box is never lost.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np
import torch

from ..data.rotations import grid_elements_of, random_rotation_matrices, rotate_volume
from ..groups import GridElement

__all__ = ["Rotation", "rotation_set", "rotations_for_spacing", "ROTATION_KINDS", "SET_KINDS"]

ROTATION_KINDS = ("identity", "grid", "so3")
SET_KINDS = ("identity", "grid", "so3", "standard")


@dataclass(frozen=True)
class Rotation:
    """One rotation of an evaluation set, acting on ``(B, C, D, H, W)`` tensors.

    Exactness: ``identity`` and ``grid`` rotations permute voxels (nothing interpolated, nothing lost). ``so3``
    rotations resample to the same size with zero padding: images are blurred by trilinear interpolation, labels
    use nearest neighbour (values stay in the label set), and whatever lies outside the sphere inscribed in the box
    can be rotated out and lost (at most the 8 corner regions), while the output's corners are filled with 0.

    Attributes:
        name: ``"identity"``, ``"grid:<element name>"`` (e.g. ``"grid:[d,-w,h]"``) or ``"so3:<i>"``.
        kind: ``"identity"``, ``"grid"`` or ``"so3"``.
        exact: True when applying it is a voxel permutation (identity, grid): no interpolation, nothing lost.
        matrix: the 3x3 matrix in the ``(d, h, w)`` tensor-axis frame (convention ``f'(p) = f(M^{-1} p)`` about
            the grid centre, as :class:`~equivox.groups.GridElement`).
        element: the :class:`~equivox.groups.GridElement` for exact kinds, else ``None``.
    """

    name: str
    kind: str
    exact: bool
    matrix: Tuple[Tuple[float, float, float], ...]
    element: Optional[GridElement] = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.kind not in ROTATION_KINDS:
            raise ValueError(f"Rotation kind must be one of {ROTATION_KINDS}, got {self.kind!r}")

    @property
    def matrix_array(self) -> np.ndarray:
        return np.array(self.matrix, dtype=np.float64)

    def _check(self, x: torch.Tensor, what: str) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 5:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"Rotation {self.name!r}: {what} must be a tensor (B, C, D, H, W), got {shape}")

    def apply_image(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate images ``(B, C, D, H, W)``.

        identity: returned as is; grid: exact voxel permutation (a non-cubic volume gets its spatial shape
        permuted); so3: trilinear resampling to the same size, zeros outside the input box (corners lost).
        """
        return self._rotate(x, "image", "bilinear")

    def apply_label(self, y: torch.Tensor) -> torch.Tensor:
        """Rotate label maps ``(B, 1, D, H, W)`` (any dtype) with the same matrix as :meth:`apply_image`.

        grid: exact permutation; so3: nearest-neighbour resampling (values stay within the input's label values,
        dtype kept), background (0) where the rotated box leaves the input (corners).
        """
        return self._rotate(y, "label", "nearest")

    def _rotate(self, x: torch.Tensor, what: str, mode: str) -> torch.Tensor:
        self._check(x, what)
        if self.kind == "identity":
            return x
        if self.element is not None:
            return self.element.apply(x)
        return rotate_volume(x, self.matrix_array, mode=mode, padding="zeros")

    def inverse_apply_label(self, y: torch.Tensor) -> torch.Tensor:
        """Map a label / prediction map ``(B, K, D, H, W)`` from the rotated frame back upright (inverse
        rotation; exact for grid kinds, nearest resampling for so3)."""
        self._check(y, "label")
        if self.kind == "identity":
            return y
        if self.element is not None:
            return self.element.inverse().apply(y)
        return rotate_volume(y, self.matrix_array.T, mode="nearest", padding="zeros")

    @staticmethod
    def identity() -> "Rotation":
        """The identity rotation (kind ``"identity"``)."""
        return Rotation("identity", "identity", True, tuple(tuple(float(v) for v in r) for r in np.eye(3)),
                        GridElement.from_matrix(np.eye(3)))

    @staticmethod
    def from_element(element: GridElement) -> "Rotation":
        """A grid-exact rotation (kind ``"grid"``) from a :class:`~equivox.groups.GridElement`."""
        return Rotation(f"grid:{element.name}", "grid", True,
                        tuple(tuple(float(v) for v in r) for r in element.matrix), element)

    @staticmethod
    def from_matrix(matrix, name: str) -> "Rotation":
        """A resampled rotation (kind ``"so3"``) from a 3x3 orthogonal matrix in the ``(d, h, w)`` frame."""
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape != (3, 3) or not np.allclose(m @ m.T, np.eye(3), atol=1e-6):
            raise ValueError(f"Rotation.from_matrix needs an orthogonal 3x3 matrix, got {m.tolist()}")
        return Rotation(name, "so3", False, tuple(tuple(float(v) for v in r) for r in m), None)


def rotation_set(kind: str = "standard", group="octa", n_random: int = 8, seed: int = 0) -> List[Rotation]:
    """Build a list of rotations to evaluate a model on.

    Args:
        kind: ``"identity"`` (1 rotation); ``"grid"``: the grid-exact elements of ``group`` (identity first;
            ``"octa"``/``"so3"``: 24 cube rotations, ``"full_octa"``/``"o3"``: 48 cube symmetries, ``"ico"``: 12,
            ``"full_ico"``: 24, ``"trivial"``: 1); ``"so3"``: identity + ``n_random`` Haar-uniform random rotations
            (resampled, not exact); ``"standard"``: identity, then the grid set, then the ``n_random`` random ones
            (``1 + len(grid) + n_random`` rotations; the grid set contains its own identity element again, so
            the grid statistics are over the whole group).
        group: group name, :class:`~equivox.groups.Group`, or list of ``GridElement`` for the grid part.
        n_random: number of random rotations for ``"so3"``/``"standard"``.
        seed: seed of the random rotations (same seed, same rotations).

    Returns:
        list of :class:`Rotation`.
    """
    if kind not in SET_KINDS:
        raise ValueError(f"rotation_set kind must be one of {SET_KINDS}, got {kind!r}")
    if int(n_random) < 0:
        raise ValueError(f"n_random must be >= 0, got {n_random}")
    out = [Rotation.identity()] if kind != "grid" else []
    if kind in ("grid", "standard"):
        out += [Rotation.from_element(e) for e in grid_elements_of(group)]
    if kind in ("so3", "standard"):
        mats = random_rotation_matrices(int(n_random), seed=seed)
        out += [Rotation.from_matrix(m, f"so3:{i}") for i, m in enumerate(mats)]
    return out


def rotations_for_spacing(kind: str, group: str, spacing) -> Tuple[str, str, Optional[str]]:
    """The rotation set to score data of voxel ``spacing`` with: ``(kind, grid group, note or None)``.

    Isotropic voxels (or ``spacing=None``): ``kind`` and ``group`` as asked. Anisotropic voxels: random SO(3)
    rotations of the voxel array are not rotations of the scan, and only the groups exact for the spacing
    (:func:`equivox.groups.exact_groups_for_spacing`) are physical: ``kind="so3"`` is refused, ``"standard"`` becomes
    ``"grid"`` (no random rotations; ``"identity"`` stays), and a ``group`` that is not exact for the spacing is
    replaced by the largest one that is (:func:`equivox.groups.auto_group`); the note says so (one line).

    Raises:
        ConfigError: ``kind="so3"`` on anisotropic voxels.
    """
    from ..config.errors import ConfigError
    from ..groups import auto_group, exact_groups_for_spacing, parse_group_name

    if kind == "identity" or spacing is None or len(set(round(float(v), 4) for v in spacing)) == 1:
        return kind, group, None
    sp = "x".join(f"{float(v):g}" for v in spacing)
    if kind == "so3":
        raise ConfigError(f"rotations 'so3': the voxels are anisotropic ({sp} mm), so random rotations of the "
                          "voxel array are not rotations of the scan; score the grid rotations (exact for this "
                          "spacing) or train on resampled data (spacing)")
    exact = exact_groups_for_spacing(spacing)
    grid_group = group if parse_group_name(group)[0] in exact else auto_group(spacing)[0]
    note = (f"anisotropic voxels ({sp} mm): only rotations exact for this spacing are physical; scoring the "
            f"{grid_group} grid rotations" + (", no random SO(3) rotations" if kind == "standard" else ""))
    return "grid", grid_group, note
