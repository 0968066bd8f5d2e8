"""equivox.nn.heads: GroupStatsHead maps hidden fields to per-voxel logits from the mean, max and min of every field
over the group: invariant logits that move only with the voxels under the cube rotations (torch.rot90, written
here); its export (StatsHead) computes the same function."""
from __future__ import annotations

import pytest
import torch

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
