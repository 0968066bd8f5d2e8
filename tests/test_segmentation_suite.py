"""Segmentation heads, the U-Net fix (a real learning signal) and the segmentation suite on tiny settings."""
import inspect
import json

import numpy as np
import pytest
import torch
from monai.losses import DiceCELoss

from equivox.benchmark import RECORD_KEYS, competitor_names, learning_curve, run_segmentation
from equivox.nets import EquivariantUNet

ROT = {  # cube rotations written independently of equivox
    "rot90(H,W)": lambda t: torch.rot90(t, 1, dims=(-2, -1)),
    "rot90(D,H)": lambda t: torch.rot90(t, 1, dims=(-3, -2)),
    "rot270(D,W)": lambda t: torch.rot90(t, 3, dims=(-3, -1)),
}


def _unet(head, group="octa", seed=0, channels=(2, 2)):
    torch.manual_seed(seed)
    return EquivariantUNet(in_channels=1, out_channels=3, channels=channels, strides=(2,), group=group, head=head)


@pytest.mark.parametrize("head", ["stats", "pool", "linear"])
@torch.no_grad()
def test_invariant_heads_are_exact_under_cube_rotations(head):
    net = _unet(head).eval()
    x = torch.randn(1, 1, 8, 8, 8)
    ref = net(x)
    for name, act in ROT.items():
        assert (net(act(x)) - act(ref)).abs().max() / ref.abs().max() < 1e-4, (head, name)


@torch.no_grad()
def test_oriented_head_reads_orientation_so_it_is_not_invariant():
    net = _unet("oriented").eval()
    x = torch.randn(1, 1, 8, 8, 8)
    ref = net(x)
    act = ROT["rot90(H,W)"]
    assert (net(act(x)) - act(ref)).abs().max() / ref.abs().max() > 1e-2


def test_unknown_head_is_rejected():
    with pytest.raises(ValueError, match="stats"):
        _unet("mean")


def test_default_head_learns_at_least_as_fast_as_the_old_linear_head():
    """The U-Net fix, a real learning signal: same seed, same real CT patches, same steps; the validation loss
    (eval mode, the centre crop of the scan) of the default head is at or below the old linear head's at every
    check and falls. (The linear head read only each field's mean, whose constant offset gave large class biases.)"""
    from equivox.training import TrainConfig
    from equivox.training.data import build_datasets

    cfg = TrainConfig(task="segment", dataset="chest_ct", downsample=2, patch_size=16, val_crop=32,
                      patches_per_epoch=96).validate()
    train, val, info = build_datasets(cfg)
    items = [train[i] for i in range(96)]
    x = torch.stack([i["image"] for i in items])
    y = torch.stack([i["label"] for i in items])
    vx, vy = val[0]["image"][None], val[0]["label"][None]
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    default = inspect.signature(EquivariantUNet).parameters["head"].default
    assert default != "linear"
    curves = {}
    for head in ("linear", default):
        torch.manual_seed(0)
        net = EquivariantUNet(in_channels=1, out_channels=info.num_classes, channels=(2, 4), strides=(2,), head=head)
        opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
        curves[head] = []
        for step in range(12):
            loss = loss_fn(net(x[step * 8:(step + 1) * 8]), y[step * 8:(step + 1) * 8])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 4 == 3:
                net.eval()
                with torch.no_grad():
                    curves[head].append(float(loss_fn(net(vx), vy)))
                net.train()
    old, new = curves["linear"], curves[default]
    assert all(n <= o for n, o in zip(new, old)), (old, new)
    assert new[-1] < new[0], new


def test_segmentation_suite_quick(tmp_path):
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


def test_learning_curve_reads_lightning_csv(tmp_path):
    p = tmp_path / "metrics.csv"
    p.write_text("epoch,step,train_loss,val_dice\n0,1,2.0,\n0,1,,0.25\n1,3,,0.5\n")
    assert learning_curve(p) == [(2, 0.25), (4, 0.5)]
    assert learning_curve(None) == [] and set(competitor_names("segment")) >= {"equivariant (octa)", "plain + so3 aug"}


def test_saved_specs_rebuild_the_head_of_their_time():
    """A spec saved before the head default changed (no version) rebuilds the linear head; a new one keeps its."""
    from equivox.baselines import build_from_spec, upgrade_spec

    old = {"cls": "EquivariantUNet", "kwargs": {"in_channels": 1, "out_channels": 3, "channels": [1, 2],
                                                "strides": [2]}}
    assert build_from_spec(upgrade_spec(old)).head_kind == "linear"
    assert build_from_spec(old).head_kind == inspect.signature(EquivariantUNet).parameters["head"].default
    new = build_from_spec({**old, "kwargs": {**old["kwargs"], "head": "stats"}})
    again = build_from_spec(upgrade_spec(new.equivox_spec))
    assert again.head_kind == "stats" and set(again.state_dict()) == set(new.state_dict())


def test_calibrated_canonicalization_segments_exactly(tmp_path):
    from equivox.benchmark import run_segmentation

    res = run_segmentation("kicad_part_segments", ["plain (matched params)",
                                                   "plain (frozen) + calibrated canonicalization"], (0,),
                           downsample=1, patch_size=16, val_crop=16, test_crop=None, channels=(1, 2), epochs=1,
                           patches_per_epoch=16, batch_size=8, n_random=0, max_test=6, out=tmp_path, verbose=False)
    plain, cal = res["records"]
    assert cal["train_steps"] == 0 and cal["train_seconds"] > plain["train_seconds"] and cal["eval_cost"] == 24
    assert abs(cal["worst_grid"] - cal["upright"]) < 1e-6 and cal["equivariance_error"] < 1e-4
