"""equivox.data.bundled_volumes: the bundled NIfTI segmentation samples: the chest CT (shape, 3 mm spacing, the
affine of image and label, plausible Hounsfield units per organ), the Colin27 brain in MNI space (coarse classes
symmetric about the midline) and its left/right classes (each in its own hemisphere, refining the coarse map), and
heldout_regions' check of its grid."""
from __future__ import annotations

import numpy as np
import pytest

from equivox.data.bundled_volumes import (heldout_regions, load_brain_atlas_lr_sample, load_brain_atlas_sample,
                                          load_chest_ct_sample)


def test_chest_ct_sample():
    s = load_chest_ct_sample()
    img, lab = s["image"], s["label"]
    assert img.dtype == np.int16 and img.shape == lab.shape == (120, 120, 110)
    assert -1100 <= img.min() and img.max() <= 3071
    assert img.min() <= -900, "air should be present"
    assert set(np.unique(lab)) <= set(s["label_names"]) == set(range(6))
    assert s["label_names"] == {0: "background", 1: "lungs", 2: "heart", 3: "aorta",
                                4: "liver", 5: "vertebrae"}
    assert np.allclose(s["spacing"], (3.0, 3.0, 3.0))
    assert np.allclose(np.abs(np.diag(s["affine"])[:3]), 3.0)
    assert np.allclose(s["affine"], s["label_affine"])
    assert np.allclose(s["affine"], np.array(s["metadata"]["affine"]), atol=1e-4)
    # plausible HU per organ
    hu = {n: np.median(img[lab == k]) for k, n in s["label_names"].items() if k}
    assert hu["lungs"] < -600
    assert 0 < hu["liver"] < 200  # soft tissue
    # contrast-enhanced scan: blood pool of heart and aorta well above soft tissue
    assert 150 < hu["heart"] < 600 and 150 < hu["aorta"] < 600
    assert hu["vertebrae"] > 150
    # lungs are the biggest organ, every class present
    counts = np.bincount(lab.ravel(), minlength=6)
    assert counts.min() > 1000 and counts[1] == counts[1:].max()


def test_brain_atlas_sample():
    s = load_brain_atlas_sample()
    img, lab = s["image"], s["label"]
    assert img.shape == lab.shape == (90, 108, 90) and img.dtype == np.uint8
    assert set(np.unique(lab)) == set(range(8)) == set(s["label_names"])
    assert np.allclose(s["spacing"], 2.0)
    # MNI space: world origin (AC) lies inside the grid, near the brain centre
    ijk = np.linalg.solve(s["affine"], [0, 0, 0, 1])[:3]
    assert np.all(ijk > 20) and np.all(ijk < np.array(img.shape) - 20)
    # brain voxels are brighter than background air on average
    assert img[lab > 0].mean() > 2 * img[lab == 0].mean()
    # hemispheric symmetry of the coarse classes (x axis is left-right)
    for k in (1, 6, 7):
        m = lab == k
        xs = np.argwhere(m)[:, 0]
        xw = (s["affine"][0, 0] * xs + s["affine"][0, 3])
        assert abs(np.mean(xw)) < 6, f"class {k} not symmetric"


def test_brain_atlas_lr_left_and_right_never_share_a_class():
    s = load_brain_atlas_lr_sample()
    coarse = load_brain_atlas_sample()
    lab = s["label"]
    assert lab.shape == (90, 108, 90) and np.array_equal(s["image"], coarse["image"])
    assert set(np.unique(lab)) == set(range(16)) == set(s["label_names"])
    assert s["class_swaps"] == [[2 * g - 1, 2 * g] for g in range(1, 8)]
    names = s["label_names"]
    x = s["affine"][0, 0] * np.arange(lab.shape[0]) + s["affine"][0, 3]  # world x (mm, RAS): left < 0 < right
    for a, r in s["class_swaps"]:
        assert names[a].endswith("_L") and names[r].endswith("_R") and names[a][:-2] == names[r][:-2]
        xl, xr = x[np.argwhere(lab == a)[:, 0]], x[np.argwhere(lab == r)[:, 0]]
        # each lateral class lies in its own hemisphere (AAL's midline is within a few mm of x = 0)
        assert (xl < 0).mean() > 0.95 and xl.max() <= 6, names[a]
        assert (xr > 0).mean() > 0.95 and xr.min() >= -6, names[r]
        assert 0.8 < (lab == a).sum() / (lab == r).sum() < 1.25  # the hemispheres are of similar size
    assert names[15] == "vermis" and abs(x[np.argwhere(lab == 15)[:, 0]].mean()) < 4
    # refining the coarse map: group g -> 2g - 1 / 2g, vermis inside cerebellum (7)
    both = (lab > 0) & (coarse["label"] > 0)
    assert np.array_equal(np.where(lab == 15, 7, (lab + 1) // 2)[both], coarse["label"][both])


def test_heldout_regions_refuses_a_grid_without_test_tiles():
    with pytest.raises(ValueError, match="grid >= 2"):
        heldout_regions(np.zeros((4, 4, 4)), np.zeros((4, 4, 4)), "test", grid=1)
