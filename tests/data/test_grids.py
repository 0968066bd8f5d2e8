"""equivox.data.grids: resize plans and resized cubes checked by hand on small arrays, resizing that commutes with
the cube rotations (pool, crop, and auto: zero-pad, then pool, total mass kept), centre crops, downsampled volumes,
and the checks of classification grids."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from equivox.data import DataError, center_crop, classification_grids, describe_resize, downsample_volume
from equivox.data import resize_grids, resize_plan
from equivox.groups import cube_rotations


def test_resize_plan_and_its_description():
    assert resize_plan(28, 16) == (32, 2, None) and resize_plan(32, 16, "pool") == (32, 2, None)
    assert resize_plan(6, 8) == (8, 1, None)  # smaller than the input size: padded up
    assert resize_plan(28, 16, "crop") == (28, 1, 16) and resize_plan(16, None) == (16, 1, None)
    with pytest.raises(ValueError, match="must divide the stored grid size 28"):
        resize_plan(28, 16, "pool")
    with pytest.raises(ValueError, match="resize must be"):
        resize_plan(28, 16, "zoom")
    assert describe_resize(28, 16) == "28^3 -> zero-padded to 32^3 -> average-pooled x2 -> 16^3"
    assert describe_resize(16, 16) == "16^3 as stored" and describe_resize(28, 16, "crop") == "28^3 -> centre crop 16^3"


def test_resize_grids_by_hand():
    x = torch.arange(4 ** 3, dtype=torch.float32).reshape(1, 1, 4, 4, 4)
    pooled = resize_grids(x, 2)
    assert pooled.shape == (1, 1, 2, 2, 2) and pooled[0, 0, 0, 0, 0] == x[0, 0, :2, :2, :2].mean()
    ones = resize_grids(np.ones((1, 1, 3, 3, 3), np.uint8), 2)  # 3 -> padded to 4 (0 before, 1 after) -> pooled
    assert ones.dtype == torch.float32 and ones.shape == (1, 1, 2, 2, 2)
    assert ones[0, 0, 0, 0, 0] == 1.0 and ones[0, 0, 1, 1, 1] == 1 / 8
    crop = resize_grids(x, 2, "crop")
    assert torch.equal(crop, x[..., 1:3, 1:3, 1:3])
    with pytest.raises(ValueError, match="expects cubic grids"):
        resize_grids(torch.zeros(1, 1, 4, 4, 6), 2)


def test_resize_commutes_with_quarter_turns_on_even_padding():
    x = torch.randn(2, 1, 6, 6, 6, generator=torch.Generator().manual_seed(0))
    turn = lambda t: torch.rot90(t, 1, (2, 3))  # noqa: E731
    assert torch.allclose(resize_grids(turn(x), 4), turn(resize_grids(x, 4)))  # 6 -> 8 (1 + 1) -> pooled x2


def test_center_crop_and_downsample_volume():
    x = torch.arange(5 * 4 * 3, dtype=torch.float32).reshape(1, 5, 4, 3)
    out = center_crop(x, (3, 4, 5))
    assert out.shape == (1, 3, 4, 5)
    assert torch.equal(out[:, :, :, 1:4], x[:, 1:4])  # D cropped by 1 each side, W padded by 1 each side
    assert out[..., 0].abs().sum() == 0 and out[..., 4].abs().sum() == 0
    img = torch.arange(5 ** 3, dtype=torch.float32).reshape(1, 5, 5, 5)
    lab = (img > 60).long()
    small_img, small_lab = downsample_volume(img, lab, 2)
    assert small_img.shape == small_lab.shape == (1, 2, 2, 2)  # trimmed to 4 first
    assert small_img[0, 0, 0, 0] == img[0, :2, :2, :2].mean()
    assert small_lab[0, 1, 1, 1] == lab[0, 3, 3, 3] and small_lab.dtype == torch.long  # sampled, never averaged
    assert downsample_volume(img, lab, 1) == (img, lab)


def test_classification_grids_checks_and_scales():
    x = np.full((4, 4, 4, 4), 255, np.uint8)
    grids, y, names = classification_grids(x, np.array([0, 1, 1, 0]), None, "d [train]", 255.0, 2)
    assert grids.shape == (4, 1, 2, 2, 2) and float(grids.max()) == 1.0 and names == ["0", "1"]
    assert y.dtype == np.int64
    with pytest.raises(DataError, match=r"d \[train\]: 4 images but 3 labels"):
        classification_grids(x, np.array([0, 1, 1]), None, "d [train]")
    with pytest.raises(DataError, match="labels must be integer class indices, found \\[0.5\\]"):
        classification_grids(x, np.array([0, 0.5, 1, 0]), None, "d [train]")
    bad = x.astype(np.float32)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="d \\[train\\] images"):
        classification_grids(bad, np.zeros(4, int), None, "d [train]")
    with pytest.raises(DataError, match="are not cubic; input_size=2"):
        classification_grids(np.zeros((2, 4, 4, 3)), np.zeros(2, int), None, "d [train]", input_size=2)
    with pytest.raises(DataError, match="rotation augmentation \\('grid'\\)"):
        classification_grids(np.zeros((2, 4, 4, 3)), np.zeros(2, int), None, "d [train]", augment="grid")


def test_resize_grids_commutes_with_cube_rotations():
    x = torch.rand(2, 1, 16, 16, 16)
    for mode in ("pool", "crop"):
        small = resize_grids(x, 8, mode)
        assert small.shape == (2, 1, 8, 8, 8)
        for g in cube_rotations()[:6]:
            assert torch.allclose(resize_grids(g.apply(x), 8, mode), g.apply(small), atol=1e-6)
    with pytest.raises(ValueError, match="divide"):
        resize_grids(x, 5, "pool")


def test_resize_auto_pads_then_pools_and_says_so():
    x = torch.zeros(1, 1, 28, 28, 28)
    x[..., 2:26, 2:26, 2:26] = 1.0
    out = resize_grids(x, 16)  # default "auto": 28 -> zero-pad to 32 -> pool x2
    assert out.shape[-3:] == (16, 16, 16)
    assert float(out.sum()) * 8 == pytest.approx(float(x.sum()))  # padding adds zeros only: total mass kept
    assert describe_resize(28, 16) == "28^3 -> zero-padded to 32^3 -> average-pooled x2 -> 16^3"
    assert resize_plan(32, 16, "pool") == (32, 2, None)
    with pytest.raises(ValueError, match="must divide the stored grid size 28"):
        resize_grids(x, 16, "pool")
    y = torch.rand(1, 1, 28, 28, 28)
    for r in cube_rotations()[:6]:  # still commutes with the cube rotations
        assert torch.allclose(resize_grids(r.apply(y), 16), r.apply(resize_grids(y, 16)), atol=1e-6)
