"""equivox.canonicalization.scorer: GroupScorer's logits (one per group element) permute exactly with the input
under every cube rotation (written in the tests with torch.rot90); a plain-CNN scorer of the same shape does not."""
import pytest
import torch
from torch import nn

from equivox.canonicalization import GroupScorer
from equivox.canonicalization.scorer import scorer_group


def test_scorer_logits_permute_exactly_with_the_input(cube_rotation_ops, rel_error):
    """scores(g.x) is a permutation of scores(x) for every cube rotation, and argmax moves: a plain-CNN scorer of
    the same shape is not (the check can fail)."""
    torch.manual_seed(0)
    s = GroupScorer("octa", channels=(2, 2), input_size=8).eval()
    x = torch.rand(2, 1, 12, 12, 12)
    ref = s(x).sort(1).values
    with torch.no_grad():
        for g in cube_rotation_ops:
            assert rel_error(s(g(x)).sort(1).values, ref) < 1e-5
    plain = nn.Sequential(nn.Conv3d(1, 24, 3), nn.AdaptiveAvgPool3d(1), nn.Flatten())
    turned = torch.rot90(x, 1, (2, 3))
    assert rel_error(plain(turned).sort(1).values, plain(x).sort(1).values) > 1e-3


def test_scorer_has_one_logit_per_element_and_its_argmax_follows_a_rotation():
    """(B, n_elements) logits; for a single quarter turn g, the element picked for g.x differs from the one picked
    for x (the scorer sees the pose)."""
    torch.manual_seed(1)
    s = GroupScorer("octa", channels=(2, 2), input_size=8).eval()
    assert s.n_elements == 24
    x = torch.rand(3, 1, 8, 8, 8)
    with torch.no_grad():
        scores = s(x)
        turned = s(torch.rot90(x, 1, (3, 4)))
    assert scores.shape == (3, 24)
    assert not torch.equal(scores.argmax(1), turned.argmax(1))
    assert torch.allclose(scores.sort(1).values, turned.sort(1).values, atol=1e-5)


def test_scorer_group_borrows_a_finite_regular_group_with_the_same_grid_elements():
    """Finite regular-field groups score themselves; so3 / o3 / quotient fields borrow the cube group with the same
    grid-exact elements."""
    assert scorer_group("octa") == "octa" and scorer_group("full_octa") == "full_octa"
    assert scorer_group("so3") == "octa" and scorer_group("o3") == "full_octa"
    assert scorer_group("octa_faces") == "octa"
    with pytest.raises(ValueError, match="unknown group"):
        scorer_group("octahedral")
