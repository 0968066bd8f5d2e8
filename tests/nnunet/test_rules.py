"""equivox.nnunet.rules: how nnU-Net plan entries become an equivariant network: fields per stage from the
planned features, the plan's axes as a pseudo spacing, the group chosen for (and checked against) a plan, patch
sizes, and the norm / activation / dropout entries read from the plan."""
from __future__ import annotations

import pytest

from equivox.nnunet import rules


def test_fields_for_features_keeps_width_or_parameters():
    assert rules.fields_for_features([32, 64, 320], 24, "width") == (2, 3, 14)
    assert rules.fields_for_features([32, 64, 320], 24, "params") == (7, 13, 65)
    with pytest.raises(ValueError, match="keep"):
        rules.fields_for_features([32], 24, "memory")


def test_kernel_and_stride_entries_become_3d_triples():
    assert rules.as_triples(3, 2, "kernel_sizes") == [(3, 3, 3), (3, 3, 3)]
    assert rules.as_triples([1, [1, 2, 2]], 2, "strides") == [(1, 1, 1), (1, 2, 2)]
    with pytest.raises(ValueError, match=r"kernel_sizes\[0\] = \[3, 3\] is not 3D"):
        rules.as_triples([[3, 3]], 1, "kernel_sizes")
    with pytest.raises(ValueError, match="has 1 entries, expected n_stages=2"):
        rules.as_triples([3], 2, "kernel_sizes")


def test_the_plans_axes_as_a_spacing_choose_the_group():
    iso = ([(3, 3, 3)] * 3, [(1, 1, 1), (2, 2, 2), (2, 2, 2)])
    thick = ([(1, 3, 3), (1, 3, 3), (3, 3, 3)], [(1, 1, 1), (1, 2, 2), (2, 2, 2)])
    assert rules.plan_spacing(*iso) == (1.0, 1.0, 1.0) and rules.plan_spacing(*thick) == (1.0, 2.0, 2.0)
    assert rules.choose_group(*iso) == "octa" and rules.choose_group(*thick) == "d4_axial_d"
    assert rules.choose_group(*thick, group="c4_axial_d") == "c4_axial_d"
    with pytest.raises(ValueError, match=r"stage 0 has kernel \[1, 3, 3\] and stride \[1, 1, 1\]: group 'octa'"):
        rules.choose_group(*thick, group="octa")
    three = ([(1, 3, 5)], [(1, 1, 1)])  # three different axes: no rotation keeps the plan
    with pytest.raises(ValueError, match="No rotation keeps every kernel and stride"):
        rules.choose_group(*three)
    assert rules.axis_permutations("c4_axial_d") == [(0, 1, 2), (0, 2, 1)]  # turns about D swap H and W


def test_patches_follow_the_stride_products_and_the_groups_axis_swaps():
    rules.check_patch_size([16, 32, 32], [(1, 1, 1), (1, 2, 2), (2, 2, 2)])
    with pytest.raises(ValueError, match=r"not a multiple of the stride product \[2, 4, 4\].*on axis \[1\]"):
        rules.check_patch_size([16, 30, 32], [(1, 1, 1), (1, 2, 2), (2, 2, 2)])
    assert rules.symmetric_patch([48, 32, 40], "octa") == [32, 32, 32]
    assert rules.symmetric_patch([48, 32, 40], "d4_axial_d") == [48, 32, 32]


def test_norm_activation_and_dropout_entries():
    assert rules.norm_kind("torch.nn.modules.instancenorm.InstanceNorm3d") == "instance"
    assert rules.norm_kind("torch.nn.BatchNorm3d") == "batch" and rules.norm_kind(None) is None
    with pytest.raises(ValueError, match="no equivariant field-wise version"):
        rules.norm_kind("torch.nn.LayerNorm")
    assert rules.activation_spec("torch.nn.LeakyReLU", {"inplace": True}) == ("leakyrelu", {"inplace": True})
    assert rules.activation_spec(None, None) is None
    with pytest.raises(ValueError, match="not a pointwise activation"):
        rules.activation_spec("torch.nn.Softmax", {"dim": 1})
    with pytest.raises(ValueError, match="num_parameters > 1"):
        rules.activation_spec("torch.nn.PReLU", {"num_parameters": 4})
    assert rules.dropout_p(None, None) == 0.0 and rules.dropout_p("torch.nn.Dropout3d", {"p": 0.2}) == 0.2
    with pytest.raises(ValueError, match="is not a dropout layer"):
        rules.dropout_p("torch.nn.Identity", {})
