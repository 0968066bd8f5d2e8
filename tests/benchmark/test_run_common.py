"""equivox.benchmark.run_common: what both runs share: the canonicalizer rows (a frozen plain model wrapped by a
confidence or a calibrated canonicalizer: nothing trained but the calibrated head, fitted on validation items; 24
forward passes per item; exactly invariant, for classification and segmentation; pose rates), and the content a
random rotation of the voxels cuts off, which rotating the mesh instead keeps."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from equivox.benchmark import format_records, register_competitor, run_classification, run_segmentation
from equivox.benchmark.run_common import DEFAULT_COMPETITORS, SO3_PROTOCOLS, _scores_line, so3_content_lost
from equivox.data import voxelize_mesh
from equivox.data.rotations import random_rotation_matrices, rotate_volume
from equivox.evaluation import rotation_set


def test_confidence_canonicalization_row_fits_nothing_and_is_exact(tmp_path):
    """The confidence row wraps the trained plain model, trains nothing (no steps, the plain model's time), costs
    24 forward passes per item, and is exactly invariant: its worst cube rotation equals its upright score."""
    res = run_classification("furniture", ["plain (matched params)", "plain (frozen) + confidence canonicalization"],
                             (1.0,), (0,), input_size=8, channels=(1, 2), strides=(2,), convs_per_level=1,
                             hidden_features=(8,), epochs=1, batch_size=16, n_random=0, max_test=12,
                             out=tmp_path, verbose=False)
    plain, conf = res["records"]
    assert conf["train_steps"] == 0 and conf["train_seconds"] == plain["train_seconds"]
    assert conf["eval_cost"] == 24 and plain["eval_cost"] == 1 and conf["std_grid"] < 1e-9
    assert conf["equivariance_error"] < 1e-4 < plain["equivariance_error"]
    assert 0 <= conf["identity_rate"] <= conf["equivalent_rate"] <= 1
    assert "[24x inference]" in format_records(res["records"])
    with pytest.raises(ValueError, match="scorer must be"):
        register_competitor("bad confidence", arch="baseline", canonicalize="octa", scorer="confidence")


def test_calibrated_canonicalization_row_fits_its_head_on_validation_items_and_is_exact(tmp_path):
    """The calibrated row fits only its upright head (on the validation split, seconds added to the frozen plain
    model's time; no optimiser steps), costs 24 forward passes per item, and is exactly invariant."""
    res = run_classification("furniture", ["plain (matched params)", "plain (frozen) + calibrated canonicalization"],
                             (1.0,), (0,), input_size=8, channels=(1, 2), strides=(2,), convs_per_level=1,
                             hidden_features=(8,), epochs=1, batch_size=16, n_random=0, max_test=12,
                             out=tmp_path, verbose=False)
    plain, cal = res["records"]
    assert cal["train_steps"] == 0 and cal["train_seconds"] > plain["train_seconds"]
    assert cal["eval_cost"] == 24 and cal["std_grid"] < 1e-9 and cal["equivariance_error"] < 1e-4
    with pytest.raises(ValueError, match="scorer must be"):
        register_competitor("bad calibrated", arch="baseline", canonicalize="octa", scorer="calibrated")


def test_calibrated_canonicalization_segments_exactly(tmp_path):
    res = run_segmentation("kicad_part_segments", ["plain (matched params)",
                                                   "plain (frozen) + calibrated canonicalization"], (0,),
                           downsample=1, patch_size=16, val_crop=16, test_crop=None, channels=(1, 2), epochs=1,
                           patches_per_epoch=16, batch_size=8, n_random=0, max_test=6, out=tmp_path, verbose=False)
    plain, cal = res["records"]
    assert cal["train_steps"] == 0 and cal["train_seconds"] > plain["train_seconds"] and cal["eval_cost"] == 24
    assert abs(cal["worst_grid"] - cal["upright"]) < 1e-6 and cal["equivariance_error"] < 1e-4


def test_mesh_rotation_keeps_content_where_grid_resampling_loses_some():
    import trimesh

    box = trimesh.creation.box(extents=(3.0, 2.5, 2.0))  # fills the grid: its corners leave the sphere
    upright_box = voxelize_mesh(box, 24, placement="box")
    upright = voxelize_mesh(box, 24, placement="sphere")
    rots = rotation_set("so3", n_random=3, seed=5)
    lost_grid = so3_content_lost(torch.from_numpy(upright_box[None, None].astype(np.float32)), rots)
    assert max(lost_grid) > 0.02  # the box fills the grid: rotating the voxels cuts its ends off
    for m in random_rotation_matrices(3, seed=5):
        rotated = voxelize_mesh(box, 24, placement="sphere", rotation=m)
        assert abs(int(rotated.sum()) - int(upright.sum())) < 0.1 * upright.sum()  # same scale, nothing cut
        resampled = rotate_volume(torch.from_numpy(upright.astype(np.float32))[None, None], m)[0, 0] > 0.5
        # the mesh path agrees with rotating the voxels of the sphere placement (same convention)
        assert (resampled.numpy() & rotated).sum() > 0.7 * rotated.sum()


def test_content_lost_is_nothing_inside_the_sphere_and_the_corners_outside_it():
    c = torch.arange(16.0) - 7.5
    r2 = c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2
    ball = (r2 < 5.0 ** 2).float()[None, None]  # well inside the sphere every rotation keeps
    cube = torch.ones(1, 1, 16, 16, 16)  # fills the box: its corners leave it
    rotations = rotation_set("so3", n_random=3, seed=0)  # the identity, then 3 random rotations
    assert len(so3_content_lost(ball, rotations)) == 3  # one value per random rotation
    assert max(so3_content_lost(ball, rotations)) < 0.02 < min(so3_content_lost(cube, rotations))
    assert SO3_PROTOCOLS == ("grid", "mesh")
    assert DEFAULT_COMPETITORS == ("equivariant (octa)", "plain (matched params)", "plain + grid aug")


def test_scores_line_shows_every_score_and_a_dash_for_the_missing_ones():
    rec = {"metric": "dice", "upright": 0.75, "upright_ci": [0.5, 0.9], "mean_grid": 0.625, "worst_grid": 0.5,
           "mean_so3": None, "worst_so3": None, "train_seconds": 12.4, "n_test": 8}
    assert _scores_line(rec) == ("    dice upright 0.750 [0.500, 0.900]  cube mean 0.625 worst 0.500  so3 mean   -   "
                                 "worst   -    (12 s train, 8 test items)")
