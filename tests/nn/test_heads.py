"""equivox.nn.heads: GroupStatsHead maps hidden fields to per-voxel logits from the mean, max and min of every field
over the group: invariant logits that move only with the voxels under the cube rotations (torch.rot90, written
here); its export (StatsHead) computes the same function. The U-Net's heads: the invariant ones (stats, pool,
linear) exact under cube rotations, the oriented one not, an unknown name refused, and the default head learning at
least as fast as the linear one on real CT patches."""
from __future__ import annotations

import inspect

import pytest
import torch

from equivox.nets import EquivariantUNet
from equivox.nn import EquivariantConv3d, FieldSpec, GroupStatsHead
from equivox.nn.heads import StatsHead


@pytest.mark.parametrize("group", ["octa", "c4_axial", "so3"])
def test_logits_move_only_with_the_voxels(group, cube_rotation_ops):
    torch.manual_seed(0)
    lift = EquivariantConv3d(FieldSpec.scalar(group, 1), FieldSpec.hidden(group, 2), 3).eval()
    head = GroupStatsHead(lift.out_spec, 4).eval()
    assert head.out_spec == FieldSpec.scalar(group, 4)
    x = torch.randn(1, 1, 6, 6, 6)
    if group == "c4_axial":  # the quarter turns about W (the slice axis): in the (D, H) plane
        turns = [(lambda k: lambda t: torch.rot90(t, k, (2, 3)))(k) for k in (1, 2, 3)]
    else:
        turns = cube_rotation_ops[1::3]
    with torch.no_grad():
        hidden = lift(x)
        ref = head(hidden)
        assert ref.shape == (1, 4, 6, 6, 6)
        for rot in turns:
            assert (head(lift(rot(x))) - rot(ref)).abs().max() < 1e-4 * ref.abs().max()


def test_the_statistics_are_mean_max_and_min_of_each_field():
    """With an identity 1x1 class map and no norm the invariants are readable: the max and min of every field, and
    linear maps of the fields' means; so the logits ignore any permutation of the channels inside a field."""
    torch.manual_seed(0)
    spec = FieldSpec.hidden("octa", 2)
    head = GroupStatsHead(spec, 6, norm=None).eval()
    with torch.no_grad():
        head.classes.weight.copy_(torch.eye(6)[:, :, None, None, None])
        head.classes.bias.zero_()
        x = torch.randn(1, spec.size, 2, 2, 2)
        stats = head(x)
        fields = x.reshape(1, 2, 24, 2, 2, 2)
        perm = torch.randperm(24, generator=torch.Generator().manual_seed(3))
        shuffled = head(fields[:, :, perm].reshape(x.shape))
    torch.testing.assert_close(stats[:, 2:4], fields.amax(2))
    torch.testing.assert_close(stats[:, 4:6], fields.amin(2))
    torch.testing.assert_close(shuffled, stats, atol=1e-5, rtol=1e-5)
    means = fields.mean(2)[0].flatten(1).T  # (voxels, fields)
    coef = torch.linalg.lstsq(means, stats[0, 0:2].flatten(1).T).solution
    torch.testing.assert_close(means @ coef, stats[0, 0:2].flatten(1).T, atol=1e-4, rtol=1e-4)


def test_export_is_a_stats_head_computing_the_same(trained):
    head = trained(GroupStatsHead(FieldSpec.hidden("octa", 2), 3))
    x = torch.randn(2, head.in_spec.size, 3, 3, 3)
    plain = head.export()
    assert isinstance(plain, StatsHead)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), head(x), atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------ the U-Net's heads (EquivariantUNet(head=...))
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


def test_default_head_learns_at_least_as_fast_as_the_linear_head():
    """A real learning signal: same seed, same real CT patches, same steps; the validation loss (eval mode, the
    centre crop of the scan) of the U-Net's default head is at or below the linear head's at every check and falls.
    (The linear head reads only each field's mean, whose constant offset gives large class biases.)"""
    from monai.losses import DiceCELoss

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
    linear, new = curves["linear"], curves[default]
    assert all(n <= o for n, o in zip(new, linear)), (linear, new)
    assert new[-1] < new[0], new
