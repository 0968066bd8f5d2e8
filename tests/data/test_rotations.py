"""equivox.data.rotations: rotation transforms of volumes and labels: exactness, label preservation, Haar sampler,
expand, dict transforms."""
import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from equivox.data import (
    GridRotated,
    GridRotatedd,
    RandGridRotated,
    RandGridRotatedd,
    RandSO3Rotated,
    RandSO3Rotatedd,
    SO3Rotated,
    SO3Rotatedd,
    grid_elements_of,
    random_rotation_matrices,
    rotate_volume,
)
from equivox.groups import GridElement, cube_rotations, cube_symmetries


def _blob(size=16, radius=3.0, centre=None):
    c = (size - 1) / 2.0 if centre is None else centre
    d, h, w = np.meshgrid(*[np.arange(size)] * 3, indexing="ij")
    r2 = (d - c) ** 2 + (h - c) ** 2 + (w - c) ** 2
    return torch.from_numpy(np.exp(-r2 / (2 * radius**2))).float()


def _rot(axis, deg):
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    i, j = [k for k in range(3) if k != axis]
    m = np.eye(3)
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_90_degree_matrix_matches_grid_element(mode):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 9, 9, 9, generator=g)
    for e in cube_symmetries():  # rotations and improper elements
        y = rotate_volume(x, e.matrix, mode=mode)
        torch.testing.assert_close(y, e.apply(x), atol=1e-5, rtol=0)
    # unbatched (C, D, H, W) and even size
    x4 = torch.randn(1, 8, 8, 8, generator=g)
    e = GridElement.from_matrix([[0, 0, 1], [0, 1, 0], [-1, 0, 0]])
    torch.testing.assert_close(rotate_volume(x4, e), e.apply(x4), atol=1e-5, rtol=0)


def test_convention_moves_voxel_like_matrix():
    # f'(p) = f(M^{-1} p): a point at offset v from the centre moves to offset M v
    x = torch.zeros(1, 1, 9, 9, 9)
    x[0, 0, 4 + 3, 4, 4] = 1.0  # offset (3, 0, 0) along d
    m = _rot(0, 90)  # rotation in the (h, w) plane leaves d alone
    assert torch.equal(rotate_volume(x, m, mode="nearest"), x)
    m = _rot(2, 90)  # (d, h) plane: d -> h
    y = rotate_volume(x, m, mode="nearest")
    v = m @ np.array([3, 0, 0])
    idx = tuple(int(round(c)) for c in (4 + v))
    assert y[0, 0][idx] == 1.0 and y.sum() == 1.0


def test_batched_matrices():
    x = torch.randn(3, 1, 7, 7, 7)
    els = cube_rotations()[:3]
    y = rotate_volume(x, np.stack([np.array(e.matrix) for e in els]))
    for i, e in enumerate(els):
        torch.testing.assert_close(y[i], e.apply(x[i]), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="2 matrices for a batch of 3"):
        rotate_volume(x, np.stack([np.eye(3)] * 2))


def test_nearest_preserves_label_set_and_dtype():
    g = torch.Generator().manual_seed(1)
    lab = torch.randint(0, 5, (1, 12, 12, 12), generator=g, dtype=torch.int64)
    for m in random_rotation_matrices(4, seed=3):
        y = rotate_volume(lab, m, mode="nearest")
        assert y.dtype == torch.int64
        assert set(y.unique().tolist()) <= {0, 1, 2, 3, 4}
    # inner voxels stay inside: every label value survives a small rotation
    y = rotate_volume(lab, _rot(1, 10), mode="nearest")
    assert set(y.unique().tolist()) == {0, 1, 2, 3, 4}
    # uint8 and bool too
    assert rotate_volume(lab.to(torch.uint8), _rot(0, 30), mode="nearest").dtype == torch.uint8
    yb = rotate_volume(lab > 2, _rot(0, 30), mode="nearest")
    assert yb.dtype == torch.bool and yb.any()


def test_haar_sampler_orthonormal_and_seeded():
    a = random_rotation_matrices(200, seed=7)
    assert a.shape == (200, 3, 3)
    np.testing.assert_allclose(a @ a.transpose(0, 2, 1), np.broadcast_to(np.eye(3), a.shape), atol=1e-10)
    np.testing.assert_allclose(np.linalg.det(a), 1.0, atol=1e-10)
    np.testing.assert_array_equal(a, random_rotation_matrices(200, seed=7))
    assert not np.allclose(a, random_rotation_matrices(200, seed=8))
    # uniformity sanity: E[R] = 0 and E[trace R] = 0 for the Haar measure
    b = random_rotation_matrices(4000, seed=0)
    assert np.abs(b.mean(0)).max() < 0.05
    assert abs(np.trace(b, axis1=1, axis2=2).mean()) < 0.06
    assert random_rotation_matrices(0).shape == (0, 3, 3)


def test_expand_keeps_mass_of_centred_blob():
    x = _blob(12, radius=2.5)
    # move mass towards a corner so a 45-degree rotation would push it out of the unexpanded grid
    x = torch.roll(x, shifts=(3, 3, 0), dims=(0, 1, 2))[None]
    m = _rot(2, 45)
    y_exp = rotate_volume(x, m, expand=True)
    y_cut = rotate_volume(x, m, expand=False)
    side = math.ceil(math.sqrt(3) * 12)
    assert y_exp.shape[-3:] == (side + (side - 12) % 2,) * 3
    assert abs(y_exp.sum().item() - x.sum().item()) / x.sum().item() < 0.02
    assert y_cut.sum().item() < 0.9 * x.sum().item()
    # a centred blob keeps its centre of mass at the grid centre
    yc = rotate_volume(_blob(12, radius=2.0)[None], m, expand=True)[0]
    n = yc.shape[0]
    coords = torch.arange(n, dtype=torch.float32)
    com = [(yc.sum(dim=tuple(k for k in range(3) if k != a)) * coords).sum() / yc.sum() for a in range(3)]
    np.testing.assert_allclose([c.item() for c in com], [(n - 1) / 2] * 3, atol=1e-3)


def test_rotation_then_inverse_is_close_for_smooth_image():
    x = (_blob(16, radius=3.0, centre=6.0) - 0.5 * _blob(16, radius=2.0, centre=9.0))[None]  # not symmetric
    m = random_rotation_matrices(1, seed=5)[0]
    back = rotate_volume(rotate_volume(x, m), m.T)
    err = (back - x).abs()
    moved = (rotate_volume(x, m) - x).abs()
    assert moved.max() > 0.5  # the rotation itself moves things a lot
    # two trilinear resamplings blur the peaks slightly, nothing more
    assert err.max() < 0.2 * moved.max() and err.mean() < 0.1 * moved.mean()


def test_grid_rotated_exact_on_all_input_types():
    e = cube_rotations()[7]
    x = torch.randn(2, 6, 8, 10)
    np.testing.assert_array_equal(GridRotated(e)(x.numpy()), e.apply_numpy(x.numpy()))
    assert torch.equal(GridRotated(e.matrix)(x), e.apply(x))
    mt = MetaTensor(x.clone(), affine=torch.diag(torch.tensor([2.0, 3.0, 4.0, 1.0])))
    y = GridRotated(e)(mt)
    assert isinstance(y, MetaTensor) and torch.equal(y.as_tensor(), e.apply(x))
    # affine keeps world positions: world of output voxel p' == world of the input voxel it came from
    m = np.array(e.matrix, float)
    c_in, c_out = (np.array(x.shape[1:]) - 1) / 2, (np.array(y.shape[1:]) - 1) / 2
    for p_out in [(0, 0, 0), (1, 2, 3), (5, 9, 7)]:
        p_out = np.array(p_out, float)
        if (p_out > np.array(y.shape[1:]) - 1).any():
            continue
        q = m.T @ (p_out - c_out) + c_in
        world_in = mt.affine.numpy() @ np.r_[q, 1]
        world_out = y.affine.numpy() @ np.r_[p_out, 1]
        np.testing.assert_allclose(world_out, world_in, atol=1e-9)
        assert y.as_tensor()[(0, *p_out.astype(int))] == x[(0, *np.rint(q).astype(int))]
    with pytest.raises(ValueError, match="not a signed permutation"):
        GridRotated(np.array(_rot(0, 45)))


def _image_and_label(seed=0, size=12):
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(1, size, size, size, generator=g)
    img = img + 2.0 * torch.nn.functional.avg_pool3d(img[None], 3, 1, 1)[0]  # some structure
    lab = (img > img.median()).to(torch.int64)
    return img, lab


def test_rand_grid_rotated_dict_rotates_image_and_label_together():
    img, lab = _image_and_label()
    t = RandGridRotatedd(("image", "label"), group="octa").set_random_state(3)
    seen = set()
    for _ in range(10):
        out = t({"image": MetaTensor(img), "label": lab.numpy(), "other": 5})
        e = t.rand.last_element
        seen.add(e.name)
        assert torch.equal(out["image"].as_tensor(), e.apply(img))
        assert isinstance(out["label"], np.ndarray) and out["label"].dtype == np.int64
        # label still marks exactly the thresholded image voxels
        np.testing.assert_array_equal(out["label"], (out["image"].as_tensor() > img.median()).numpy())
        assert out["other"] == 5
    assert len(seen) > 3
    # reproducible
    a = [RandGridRotatedd("image").set_random_state(11)({"image": img})["image"] for _ in range(1)]
    b = [RandGridRotatedd("image").set_random_state(11)({"image": img})["image"] for _ in range(1)]
    assert torch.equal(a[0], b[0])
    # prob=0 is the identity; element sets of the groups
    assert RandGridRotatedd("image", prob=0.0)({"image": img})["image"] is img
    assert len(grid_elements_of("octa")) == 24 and len(grid_elements_of("full_octa")) == 48
    assert grid_elements_of("octa")[0].is_identity
    r = RandGridRotated(group=cube_rotations()[:2]).set_random_state(0)
    y = r(img)
    assert torch.equal(y, r.last_element.apply(img))


def test_grid_rotatedd_and_so3_dict_consistency():
    img, lab = _image_and_label(1, size=10)
    e = cube_rotations()[9]
    out = GridRotatedd(("image", "label"), e)({"image": img, "label": lab})
    assert torch.equal(out["label"], e.apply(lab)) and torch.equal(out["image"], e.apply(img))
    # resampled with a 90-degree matrix: identical to the exact version (image to float precision)
    out2 = SO3Rotatedd(("image", "label"), e.matrix)({"image": img, "label": lab})
    torch.testing.assert_close(out2["image"], out["image"], atol=1e-5, rtol=0)
    assert torch.equal(out2["label"], out["label"])


def test_rand_so3_dict_label_matches_thresholded_image():
    # binary image: with nearest for both keys, label == thresholded image voxel for voxel
    img, lab = _image_and_label(2, size=12)
    binary = (img > img.median()).float()
    t = RandSO3Rotatedd(("image", "label"), mode="nearest").set_random_state(0)
    out = t({"image": binary, "label": lab})
    assert torch.equal((out["image"] > 0.5).long(), out["label"])
    assert not np.allclose(t.last_matrix, np.eye(3))
    # default modes: trilinear image, nearest label; label agrees with the thresholded image almost everywhere
    t = RandSO3Rotatedd(("image", "label")).set_random_state(1)
    out = t({"image": binary, "label": lab})
    assert out["label"].dtype == torch.int64 and set(out["label"].unique().tolist()) <= {0, 1}
    agree = ((out["image"] > 0.5).long() == out["label"]).float().mean().item()
    assert agree > 0.9
    # seeded reproducibility and MetaTensor / numpy inputs
    m1 = RandSO3Rotatedd("image").set_random_state(4)
    m2 = RandSO3Rotatedd("image").set_random_state(4)
    a = m1({"image": MetaTensor(img)})["image"]
    b = m2({"image": img.numpy()})["image"]
    assert isinstance(a, MetaTensor) and isinstance(b, np.ndarray)
    np.testing.assert_allclose(a.as_tensor().numpy(), b, atol=1e-6)
    y = RandSO3Rotated(expand=True).set_random_state(0)(img)
    # expand: every side padded to ceil(sqrt(3) * 12) = 21, raised to 22 to keep the parity of 12 (symmetric pads)
    assert tuple(img.shape[-3:]) == (12, 12, 12) and tuple(y.shape[-3:]) == (22, 22, 22), y.shape
    z = SO3Rotated(_rot(0, 30), mode="nearest")(lab)
    assert z.dtype == lab.dtype


def test_bad_inputs():
    with pytest.raises(ValueError, match="mode"):
        rotate_volume(torch.zeros(1, 4, 4, 4), np.eye(3), mode="cubic")
    with pytest.raises(ValueError, match="shape"):
        rotate_volume(torch.zeros(4, 4, 4), np.eye(3))
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        rotate_volume(torch.zeros(1, 4, 4, 4), np.eye(4))
    with pytest.raises(ValueError, match="unknown group"):
        grid_elements_of("nope")
