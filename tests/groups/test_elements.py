"""equivox.groups.elements: grid elements and the one voxel action (move_voxels) that GridElement.apply,
equivox.testing.voxel_action and equivox.canonicalization.Canonicalized share."""
import itertools

import numpy as np
import pytest
import torch

from equivox.groups import GridElement, cube_rotations, cube_symmetries, move_voxels
from equivox.groups.elements import _escnn_to_tensor_frame


def _reference_action(element: GridElement, x: np.ndarray) -> np.ndarray:
    """``f'(p) = f(M^{-1} p)`` about the grid centre, voxel by voxel (no permute / flip)."""
    m = np.array(element.matrix)
    shape_in = np.array(x.shape[-3:])
    shape_out = np.abs(m) @ shape_in
    out = np.zeros(x.shape[:-3] + tuple(shape_out), dtype=x.dtype)
    c_in, c_out = (shape_in - 1) / 2, (shape_out - 1) / 2
    for p in itertools.product(*(range(n) for n in shape_out)):
        q = np.rint(m.T @ (np.array(p) - c_out) + c_in).astype(int)  # M^{-1} = M^T
        out[(..., *p)] = x[(..., *q)]
    return out


def test_apply_is_the_voxel_permutation_f_of_m_inverse_p():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)  # non-cubic grid
    for g in cube_symmetries():
        assert np.array_equal(g.apply_numpy(x), _reference_action(g, x)), g.name


def test_axes_and_flips_read_the_matrix():
    assert GridElement.from_matrix(np.eye(3)).axes_and_flips == ([0, 1, 2], [])
    g = GridElement.from_matrix(np.array([[0, 0, -1], [1, 0, 0], [0, 1, 0]]))  # [-w,d,h]
    assert g.name == "[-w,d,h]" and g.axes_and_flips == ([2, 0, 1], [0])
    for g in cube_symmetries():
        axes, flips = g.axes_and_flips
        assert [g.matrix[i][axes[i]] for i in range(3)] == [-1 if i in flips else 1 for i in range(3)], g.name


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_move_voxels_is_scriptable_and_takes_any_leading_dims():
    scripted = torch.jit.script(move_voxels)
    for shape in [(4, 5, 6), (2, 3, 4, 5, 6), (1, 2, 3, 4, 5, 6)]:
        x = torch.randn(*shape)
        for g in cube_symmetries():
            axes, flips = g.axes_and_flips
            want = g.apply(x)
            assert torch.equal(move_voxels(x, axes, flips), want), g.name
            assert torch.equal(scripted(x, axes, flips), want), g.name


def test_testing_and_canonicalization_use_the_one_action():
    """No second copy of the permute / flip logic: equivox.testing and Canonicalized call move_voxels."""
    from equivox.canonicalization import wrapper
    from equivox.testing import voxel_action

    assert wrapper._move is move_voxels
    assert not hasattr(wrapper, "_axes_and_flips")
    x = torch.randn(1, 2, 3, 4, 5)
    for g in cube_symmetries():
        assert torch.equal(voxel_action(g, x), g.apply(x)), g.name


def test_cube_sets_and_element_algebra():
    rots, syms = cube_rotations(), cube_symmetries()
    assert rots[0].is_identity and syms[0].is_identity
    assert len({g.matrix for g in rots}) == 24 and all(g.determinant == 1 for g in rots)
    assert len({g.matrix for g in syms}) == 48 and sum(g.determinant == -1 for g in syms) == 24
    x = torch.randn(1, 1, 4, 5, 6)
    for g in rots:
        assert torch.equal(g.inverse().apply(g.apply(x)), x)
    with pytest.raises(ValueError, match="signed permutation"):
        GridElement.from_matrix(np.array([[0.6, 0.8, 0], [-0.8, 0.6, 0], [0, 0, 1]]))
    with pytest.raises(ValueError, match=r"\(\.\.\., D, H, W\)"):
        rots[1].apply(torch.zeros(3, 3))


def test_escnn_frame_conjugation():
    """escnn's (x, y, z) are the tensor axes (w, -h, -d): its matrix R becomes P R P^T in (d, h, w)."""
    p = np.array([[0, 0, -1], [0, -1, 0], [1, 0, 0]])  # (d, h, w) from (x, y, z)
    from scipy.spatial.transform import Rotation

    for r in Rotation.random(5, random_state=1).as_matrix():
        assert np.allclose(_escnn_to_tensor_frame(r), p @ r @ p.T)
