"""The accuracy suite (equivox.benchmark.run_classification) on tiny settings: real signals, not shapes."""
import numpy as np
import pytest
import torch

from equivox.benchmark import RECORD_KEYS, ClassificationData
from equivox.benchmark import nested_fractions, run_classification, so3_content_lost
from equivox.data.rotations import random_rotation_matrices, rotate_volume
from equivox.data import voxelize_mesh
from equivox.evaluation import rotation_set


def _bars(n_per_class: int, seed: int):
    """Class 0: a bar along D, class 1: a bar along H (the same shape up to a rotation), 16^3, jittered."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label in (0, 1):
        for _ in range(n_per_class):
            x = np.zeros((16, 16, 16), np.float32)
            c = rng.integers(6, 10, size=3)
            if label == 0:
                x[3:13, c[1] - 1:c[1] + 1, c[2] - 1:c[2] + 1] = 1
            else:
                x[c[0] - 1:c[0] + 1, 3:13, c[2] - 1:c[2] + 1] = 1
            xs.append(x)
            ys.append(label)
    return torch.from_numpy(np.stack(xs))[:, None], np.array(ys)


def test_invariant_model_scores_the_same_on_every_cube_rotation_and_plain_does_not(tmp_path):
    xtr, ytr = _bars(12, 0)
    xte, yte = _bars(6, 1)
    data = ClassificationData("bars", xtr, ytr, xte, yte, xte, yte, ["along D", "along H"])
    res = run_classification(data, ["equivariant (octa)", "plain (matched params)"], (1.0,), (0,), input_size=16,
                           channels=(2, 2), strides=(2,), hidden_features=(8,), epochs=8, batch_size=8, lr=1e-2,
                           n_random=1, out=tmp_path, verbose=False)
    eq, plain = res["records"]
    for r in res["records"]:
        assert set(RECORD_KEYS) <= set(r)
    # the two classes are one shape in two orientations: an octa-invariant model cannot tell them apart ...
    assert eq["std_grid"] == 0.0 and eq["worst_grid"] == eq["upright"] == pytest.approx(0.5)
    assert eq["equivariance_error"] < 1e-4
    # ... the plain CNN learns the orientation upright, and swaps the classes under quarter turns
    assert plain["upright"] >= 0.9 and plain["worst_grid"] <= 0.1 and plain["std_grid"] > 0.2


def test_fractions_are_nested_and_stratified():
    y = np.repeat(np.arange(3), [40, 20, 10])
    subsets = nested_fractions(y, (0.1, 0.5, 1.0), seed=3)
    assert set(subsets[0.1]) <= set(subsets[0.5]) <= set(subsets[1.0]) and len(subsets[1.0]) == 70
    assert np.bincount(y[subsets[0.5]]).tolist() == [20, 10, 5]
    assert np.bincount(y[subsets[0.1]]).tolist() == [4, 2, 1]
    assert not np.array_equal(subsets[0.5], nested_fractions(y, (0.5,), seed=4)[0.5])


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


def test_equal_steps_trains_every_fraction_for_the_steps_of_the_full_set(tmp_path):
    xtr, ytr = _bars(16, 0)
    xte, yte = _bars(2, 1)
    data = ClassificationData("bars", xtr, ytr, xte, yte, xte, yte, ["along D", "along H"])
    kw = dict(input_size=16, channels=(1, 1), strides=(2,), hidden_features=(4,), epochs=2, batch_size=8,
              n_random=0, out=tmp_path, verbose=False)
    steps = {}
    for equal in (False, True):
        res = run_classification(data, ["plain (matched params)"], (0.5, 1.0), (0,), equal_steps=equal, **kw)
        steps[equal] = {r["train_fraction"]: r["train_steps"] for r in res["records"]}
    assert steps[False][0.5] < steps[False][1.0]  # fixed epochs: half the data, fewer steps
    assert steps[True][0.5] == steps[True][1.0] == steps[False][1.0]
