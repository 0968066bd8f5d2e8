"""equivox.nnunet.evaluation with nnU-Net's own training and prediction (examples/nnunet/run_tiny.py, run once per
session by conftest's ``tiny_run``): the trained equivox network scores the same on every grid rotation, and
nnU-Net's whole inference on a rotated case gives the rotated prediction (rotations written with np.rot90)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("nnunetv2", reason="nnunetv2 not installed (pip install -e '.[nnunet]')")

from equivox.nnunet import NETWORK_CLASS  # noqa: E402

TOL = 1e-4  # relative; float32 rounding is ~1e-6


def test_run_tiny_trains_equivox_class_and_predicts(tiny_run):
    out, stdout, res = tiny_run
    assert f"trained network class: {NETWORK_CLASS}" in stdout
    assert res["network_class"] == NETWORK_CLASS
    pred = Path(res["prediction"])
    assert pred.is_file() and pred.name.endswith(".nii.gz") and "pred" in pred.parent.name
    import nibabel as nib

    seg = np.asarray(nib.load(str(pred)).dataobj)
    assert seg.shape == (16, 16, 16) and set(np.unique(seg)) <= {0, 1, 2}
    assert "equivariance error" in stdout
    assert len(res["equivariance_errors"]) == 2 and max(res["equivariance_errors"]) < TOL  # both DS outputs
    # nnU-Net's checkpoint records the plans' network class
    ckpt = torch.load(Path(res["model_folder"]) / "fold_0" / "checkpoint_final.pth", map_location="cpu",
                      weights_only=False)
    assert ckpt["init_args"]["configuration"] == "3d_fullres_equivox"


def test_run_tiny_rotation_scores_equal_on_grid_rotations(tiny_run):
    _, _, res = tiny_run
    grid = [v for k, v in res["dice"].items() if k.startswith("grid:")]
    assert len(grid) == 4
    assert max(grid) - min(grid) < 1e-6, res["dice"]


def test_nnunet_prediction_under_cube_rotation_equals_rotated_prediction(tiny_run):
    """nnU-Net's whole inference (its preprocessing, sliding window, mirroring TTA, export) on a rotated case gives
    the rotated probabilities and segmentation. Mirroring TTA keeps this exact (the set of flips is mapped onto
    itself by cube rotations); nnU-Net's Gaussian tile weighting does not (it is centred on voxel size // 2, off
    the centre of an even patch, and float16), so it is switched off here; logits are accumulated in float16,
    hence the 1e-3 tolerance."""
    from equivox.nnunet.evaluation import load_predictor

    _, _, res = tiny_run
    predictor = load_predictor(res["model_folder"], use_mirroring=True, use_gaussian=False)
    reader = predictor.plans_manager.image_reader_writer_class()
    img, props = reader.read_images([str(Path(res["raw"]) / "imagesTs" / "case_100_0000.nii.gz")])
    seg, prob = predictor.predict_single_npy_array(img, {"spacing": props["spacing"]}, None, None, True)
    assert prob.shape == (3, 16, 16, 16)
    assert prob.std(axis=(1, 2, 3)).max() > 1e-3  # not a constant prediction (a tiny_run CPU training may leave one
    # class nearly flat; the rotated comparison below is non-trivial as long as some class varies)
    for axes in ((1, 2), (2, 3), (1, 3)):  # quarter turns of the (C, D, H, W) image; outputs are (K, D, H, W)
        seg_r, prob_r = predictor.predict_single_npy_array(np.ascontiguousarray(np.rot90(img, 1, axes)),
                                                           {"spacing": props["spacing"]}, None, None, True)
        want_prob = np.rot90(prob, 1, axes)
        want_seg = np.rot90(seg, 1, (axes[0] - 1, axes[1] - 1))
        assert np.abs(prob_r - want_prob).max() < 1e-3, axes
        top2 = np.sort(want_prob, axis=0)[-2:]
        clear = (top2[1] - top2[0]) > 5e-3  # voxels whose argmax is not a float16 tie
        assert clear.mean() > 0.98
        assert np.array_equal(seg_r[clear], want_seg[clear]), axes
        # the check can fail: the un-rotated prediction differs from the rotated one
        assert np.abs(prob_r - prob).max() > 1e-2
