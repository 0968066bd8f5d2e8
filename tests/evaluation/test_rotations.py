"""equivox.evaluation.rotations: the rotation sets (identity, grid-exact group elements, random SO(3)) and how a
rotation moves images and labels."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from equivox.evaluation import Rotation, rotation_set


def test_rotation_set_sizes_and_names():
    assert len(rotation_set("identity")) == 1
    assert len(rotation_set("grid", group="octa")) == 24
    assert len(rotation_set("grid", group="full_octa")) == 48
    assert len(rotation_set("grid", group="trivial")) == 1
    assert len(rotation_set("so3", n_random=5)) == 6
    std = rotation_set("standard", group="octa", n_random=3)
    assert len(std) == 1 + 24 + 3
    assert [r.kind for r in std] == ["identity"] + ["grid"] * 24 + ["so3"] * 3
    assert len({r.name for r in std}) == len(std)
    assert std[0].name == "identity" and std[1].name == "grid:[d,h,w]" and std[-1].name == "so3:2"
    assert all(r.exact for r in std[:25]) and not any(r.exact for r in std[25:])
    for r in std:  # every matrix is a rotation
        m = r.matrix_array
        assert np.allclose(m @ m.T, np.eye(3), atol=1e-9) and np.isclose(np.linalg.det(m), 1.0)
    # seeds: same seed same rotations, other seed other rotations
    a, b, c = (rotation_set("so3", n_random=3, seed=s) for s in (0, 0, 1))
    assert a == b and a != c
    with pytest.raises(ValueError, match="kind"):
        rotation_set("random")


def test_rotation_set_ico_has_12_grid_elements():
    rots = rotation_set("grid", group="ico")
    assert len(rots) == 12
    mats = {tuple(np.rint(r.matrix_array).astype(int).ravel()) for r in rots}
    assert len(mats) == 12  # 12 distinct signed permutations (the tetrahedral subgroup)


def test_grid_rotation_is_exact_permutation_and_matches_resampling():
    x = torch.randn(1, 2, 6, 6, 6, generator=torch.Generator().manual_seed(0))
    for r in rotation_set("grid", group="octa")[1:6]:
        y = r.apply_image(x)
        assert torch.equal(torch.sort(y.flatten())[0], torch.sort(x.flatten())[0])  # a permutation of voxels
        assert not torch.equal(y, x)
        # same convention as the resampled path: a 90-degree matrix resampled = the exact permutation
        as_so3 = Rotation.from_matrix(r.matrix_array, "as-so3")
        assert torch.allclose(as_so3.apply_image(x), y, atol=1e-5)
        assert torch.equal(r.inverse_apply_label(r.apply_label(x)), x)


def test_so3_label_rotation_keeps_label_values():
    lab = torch.zeros(1, 1, 10, 10, 10, dtype=torch.long)
    lab[0, 0, 2:7, 3:8, 1:5] = 2
    lab[0, 0, 5:9, 1:4, 4:9] = 5
    for r in rotation_set("so3", n_random=4, seed=3)[1:]:
        out = r.apply_label(lab)
        assert out.dtype == lab.dtype and out.shape == lab.shape
        assert set(out.unique().tolist()) <= {0, 2, 5}
        assert (out == 5).any() and (out == 2).any()
        img = r.apply_image(lab.float())  # trilinear: values in between appear (not exact)
        assert img.shape == lab.shape and img.dtype == torch.float32
        assert not set(img.unique().tolist()) <= {0.0, 2.0, 5.0}


def test_rotations_for_spacing():
    """The rotations exact for a voxel spacing: on anisotropic voxels the standard set becomes the axial group's
    grid elements (no random SO(3) rotations), and random rotations are refused."""
    from equivox.config import ConfigError
    from equivox.evaluation.rotations import rotations_for_spacing

    assert rotations_for_spacing("standard", "octa", None) == ("standard", "octa", None)
    assert rotations_for_spacing("so3", "octa", (1.0, 1.0, 1.0)) == ("so3", "octa", None)
    kind, group, note = rotations_for_spacing("standard", "octa", (0.7, 0.7, 3.0))
    assert (kind, group) == ("grid", "d4_axial") and "no random SO(3) rotations" in note and "0.7x0.7x3 mm" in note
    assert rotations_for_spacing("grid", "c4_axial", (0.7, 0.7, 3.0))[:2] == ("grid", "c4_axial")
    assert rotations_for_spacing("identity", "octa", (0.7, 0.7, 3.0)) == ("identity", "octa", None)
    with pytest.raises(ConfigError, match=r"anisotropic \(0.7x0.7x3 mm\)"):
        rotations_for_spacing("so3", "octa", (0.7, 0.7, 3.0))
