"""equivox.benchmark.segmentation_run: run_segmentation on tiny settings: every row's record (Dice, learning curve,
per-class Dice), the equivariant row the same on all 24 cube rotations and the plain one not; held-out tiles scored
whole with intervals over tiles; a label-permuting row on a left/right task scored with the labels swapped under
every reflection."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from equivox.benchmark import RECORD_KEYS, run_segmentation


def test_segmentation_run_quick(tmp_path):
    comps = ["equivariant (octa)", "plain (matched params)", "plain + grid aug"]
    res = run_segmentation("chest_ct", comps, (0,), downsample=4, patch_size=16, val_crop=16,
                           channels=(1, 2), epochs=2, patches_per_epoch=4, batch_size=2, n_random=1,
                           out=tmp_path, verbose=False)
    recs = {r["model"]: r for r in res["records"]}
    assert set(recs) == set(comps)
    for r in recs.values():
        assert set(RECORD_KEYS) <= set(r) and r["metric"] == "dice" and r["train_steps"] == 4
        assert len(r["curve"]) == 2 and all(0 <= d <= 1 for _, d in r["curve"])
        assert any(k.startswith("upright_dice_") for k in r)
    eq, plain = recs["equivariant (octa)"], recs["plain (matched params)"]
    assert eq["std_grid"] < 1e-9 and eq["equivariance_error"] < 1e-4  # same Dice on all 24 cube rotations
    assert plain["equivariance_error"] > 1e-3
    assert abs(eq["params"] - plain["params"]) / eq["params"] < 0.1
    assert json.dumps(res["records"])  # serialisable as written to segmentation.json


def test_heldout_tiles_are_scored_whole_with_intervals_over_tiles(tmp_path):
    from equivox.data import get_dataset
    from equivox.training.data import center_crop

    res = run_segmentation("chest_ct_heldout", ["MONAI UNet (matched params)"], (0,), downsample=1, patch_size=12,
                           val_crop=12, test_crop=None, channels=(1, 2), epochs=1, patches_per_epoch=2, batch_size=2,
                           n_random=1, out=tmp_path, verbose=False)
    (rec,) = res["records"]
    tiles = get_dataset("chest_ct_heldout").load_split("test")["volumes"]
    with_foreground = [lab for _, lab in tiles if bool((center_crop(lab, (56, 24, 24)) > 0).any())]
    assert len(with_foreground) < len(tiles)  # a background-only corner tile is not an item
    assert rec["n_test"] == len(with_foreground) >= 3 and len(rec["per_item"]["identity"]) == rec["n_test"]
    # scores are means of the per-tile Dice, the statistic the intervals resample (a class-first mean over the
    # tiles differs when tiles hold different classes)
    assert rec["upright"] == pytest.approx(np.mean(rec["per_item"]["identity"]))
    grid = [np.mean(v) for k, v in rec["per_item"].items() if k.startswith("grid:")]
    assert rec["worst_grid"] == pytest.approx(min(grid)) and rec["mean_grid"] == pytest.approx(np.mean(grid))
    lo, hi = rec["upright_ci"]
    assert lo < rec["upright"] < hi and rec["worst_grid_ci"][0] <= rec["worst_grid"] <= rec["worst_grid_ci"][1]
    # whole tiles (60, 30, 28), trimmed to multiples of 8 so that MONAI's deeper UNet takes them too
    assert tuple(res["volume"]["image"].shape[-3:]) == (56, 24, 24)


def _mirror_blobs(split):
    """One 16^3 volume: a bright blob in the low-W half labelled 1 (``blob_L``), a dimmer one mirrored to the
    high-W half labelled 2 (``blob_R``)."""
    img = torch.zeros(1, 16, 16, 16)
    lab = torch.zeros(1, 16, 16, 16, dtype=torch.long)
    img[0, 5:11, 5:11, 2:6], lab[0, 5:11, 5:11, 2:6] = 1.0, 1
    img[0, 5:11, 5:11, 10:14], lab[0, 5:11, 5:11, 10:14] = 0.6, 2
    return {"volumes": [(img, lab)], "label_names": {0: "background", 1: "blob_L", 2: "blob_R"}}


def test_class_swap_competitor_is_scored_with_labels_swapped_under_reflections(tmp_path):
    """The label-permuting row on a left/right task, scored under the 48 elements of full_octa: the data's
    left/right labels swap under every reflection for every model, and the class-swap net is exact there."""
    from equivox.data import DatasetSpec, register_dataset, unregister_dataset

    register_dataset(DatasetSpec("mirror_blobs_test", "segmentation", _mirror_blobs))
    try:
        res = run_segmentation("mirror_blobs_test", ["equivariant (full_octa) + class swaps",
                                                     "plain (matched params)"], (0,), downsample=1,
                               patch_size=16, val_crop=16, channels=(1, 2), epochs=1, patches_per_epoch=2,
                               batch_size=2, n_random=1, rotation_group="full_octa", out=tmp_path, verbose=False)
    finally:
        unregister_dataset("mirror_blobs_test")
    swap, plain = res["records"]
    assert res["config"]["class_swaps"] == [[1, 2]]
    assert sum(1 for n in swap["per_item"] if n.startswith("grid:")) == 48
    # exact up to argmax ties of a barely trained net; unswapped labels would score the mirrored blobs as wrong
    assert swap["equivariance_error"] < 1e-4 and swap["std_grid"] < 0.01, swap
    assert swap["upright"] > 0.05 and abs(swap["mean_grid"] - swap["upright"]) < 0.01, swap
    assert plain["equivariance_error"] > 1e-3
