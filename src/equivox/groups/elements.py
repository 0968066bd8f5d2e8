"""Grid geometry: the group elements that map the voxel grid onto itself, and their one action on tensors.

A :class:`GridElement`'s 3x3 signed-permutation matrix ``M`` acts on tensor-axis coordinates ``(d, h, w)`` (axes
``D, H, W`` of a ``(B, C, D, H, W)`` tensor) and maps a scalar field ``f`` to ``f'(p) = f(M^{-1} p)`` about the grid
centre: output axis ``i`` reads input axis ``axes[i]``, reversed where the row of ``M`` is negative. That action is
written once, :func:`move_voxels` (TorchScript-compatible, any leading dimensions); :meth:`GridElement.apply`,
:func:`equivox.testing.voxel_action` and :class:`~equivox.canonicalization.Canonicalized` all call it.
escnn's own R^3 coordinates are ``(x, y, z) = (w, -h, -d)`` (:func:`_escnn_to_tensor_frame` converts).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np
import torch

__all__ = ["AXIS_FRAMES", "GridElement", "cube_rotations", "cube_symmetries", "move_voxels"]


def move_voxels(x: torch.Tensor, axes: List[int], flips: List[int]) -> torch.Tensor:
    """The voxel action of a grid element on ``x`` ``(..., D, H, W)``, given as data
    (:attr:`GridElement.axes_and_flips`): output spatial axis ``i`` is input axis ``axes[i]``, then the output axes
    in ``flips`` are reversed. A view where no axis is flipped (call ``.contiguous()`` for a copy); scriptable."""
    lead = x.dim() - 3
    y = x.permute([i for i in range(lead)] + [lead + a for a in axes])
    if len(flips) > 0:
        y = y.flip([lead + f for f in flips])
    return y


def _axis_label(row: np.ndarray) -> str:
    (j,) = np.nonzero(row)[0]
    return ("-" if row[j] < 0 else "") + "dhw"[j]


@dataclass(frozen=True)
class GridElement:
    """A group element that maps the voxel grid onto itself.

    Attributes:
        name: readable signed-permutation name over tensor axes, e.g. ``"[d,-w,h]"``: output axis ``i`` is the
            input axis named at position ``i``, reversed where signed ``-``; ``"[d,h,w]"`` is the identity.
        matrix: the 3x3 signed-permutation matrix ``M`` (integers) in ``(d, h, w)`` coordinates.
        escnn_element: the matching escnn ``GroupElement`` of the group it came from (``None`` for elements
            made by :func:`cube_rotations` / :func:`cube_symmetries` outside any group).
    """

    name: str
    matrix: Tuple[Tuple[int, int, int], ...]
    escnn_element: object = field(default=None, compare=False, repr=False)

    @property
    def is_identity(self) -> bool:
        return self.matrix == ((1, 0, 0), (0, 1, 0), (0, 0, 1))

    @property
    def determinant(self) -> int:
        """+1 for rotations, -1 for improper elements (reflections, inversion)."""
        return int(round(np.linalg.det(np.array(self.matrix))))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the element to the spatial axes of ``x`` (shape ``(..., D, H, W)``): exact voxel permutation.

        Channels are left as they are, i.e. this is the action on scalar fields; the output has the spatial
        shape permuted accordingly (a ``(D, H, W)`` grid becomes e.g. ``(W, H, D)`` for a non-cubic volume).
        """
        if x.dim() < 3:
            raise ValueError(f"GridElement.apply expects a tensor (..., D, H, W), got shape {tuple(x.shape)}")
        axes, flips = self.axes_and_flips
        return move_voxels(x, axes, flips).contiguous()

    @property
    def axes_and_flips(self) -> Tuple[List[int], List[int]]:
        """The action as data for :func:`move_voxels`: output spatial axis ``i`` reads input axis ``axes[i]``, then
        the output axes ``flips`` are reversed (those whose matrix row is negative)."""
        axes = [next(j for j in range(3) if self.matrix[i][j] != 0) for i in range(3)]
        return axes, [i for i in range(3) if sum(self.matrix[i]) < 0]

    def apply_numpy(self, x: np.ndarray) -> np.ndarray:
        """Same as :meth:`apply` for a numpy array ``(..., D, H, W)`` (returns a contiguous copy)."""
        return self.apply(torch.from_numpy(np.ascontiguousarray(x))).contiguous().numpy()

    def inverse(self) -> "GridElement":
        """The inverse element (transpose matrix)."""
        return GridElement.from_matrix(np.array(self.matrix).T)

    @staticmethod
    def from_matrix(m: np.ndarray, escnn_element=None) -> "GridElement":
        """Build from a 3x3 signed-permutation matrix; raises ``ValueError`` for any other matrix."""
        r = np.rint(np.asarray(m, dtype=float))
        if r.shape != (3, 3) or not np.allclose(r, m, atol=1e-5) or not (
            (np.abs(r).sum(0) == 1).all() and (np.abs(r).sum(1) == 1).all()
        ):
            raise ValueError(f"not a signed permutation matrix (not grid-exact): {np.asarray(m).tolist()}")
        r = r.astype(int)
        name = "[" + ",".join(_axis_label(r[i]) for i in range(3)) + "]"
        return GridElement(name, tuple(tuple(int(v) for v in row) for row in r), escnn_element)


def _escnn_to_tensor_frame(m: np.ndarray) -> np.ndarray:
    """escnn acts on tensors whose spatial axes are ``(-z, -y, x)``: conjugate its matrix into ``(d, h, w)``."""
    t = np.asarray(m, dtype=float)[::-1, ::-1].copy()
    t[:-1, :] *= -1
    t[:, :-1] *= -1
    return t


def _signed_permutations(proper_only: bool) -> List[np.ndarray]:
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3), dtype=int)
            for i, (j, s) in enumerate(zip(perm, signs)):
                m[i, j] = s
            if proper_only and round(np.linalg.det(m)) != 1:
                continue
            out.append(m)
    out.sort(key=lambda m: (not np.array_equal(m, np.eye(3, dtype=int)), m.ravel().tolist()[::-1]))
    return out


def cube_rotations() -> List[GridElement]:
    """The 24 rotations of the cube (identity first), independent of any group: use them to test any model."""
    return [GridElement.from_matrix(m) for m in _signed_permutations(True)]


def cube_symmetries() -> List[GridElement]:
    """The 48 symmetries of the cube (rotations and improper elements), identity first."""
    return [GridElement.from_matrix(m) for m in _signed_permutations(False)]


#: axis permutations that conjugate a group rotating about escnn's z axis (tensor axis D) into one rotating about
#: another tensor axis: ``"d"`` (identity), ``"h"`` (swap D and H), ``"w"`` (swap D and W). Each is an involution.
AXIS_FRAMES: Dict[str, Tuple[int, int, int]] = {"d": (0, 1, 2), "h": (1, 0, 2), "w": (2, 1, 0)}

