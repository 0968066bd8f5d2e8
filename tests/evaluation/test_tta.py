"""equivox.evaluation.tta: GroupTTA averages any model over the grid elements, which makes it exactly invariant
(classification) or equivariant (segmentation); the wrapped model alone is not."""
from __future__ import annotations

import pytest
import torch

from equivox.evaluation import GroupTTA, evaluate_classification, rotation_set
from equivox.groups import cube_rotations
from equivox.testing import equivariance_errors

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_group_tta_makes_plain_model_invariant(clf_data, plain_cnn):
    x, y = clf_data
    plain = plain_cnn().eval()
    tta = GroupTTA(plain, group="octa", task="classification")
    els = cube_rotations()
    assert max(e.relative for e in equivariance_errors(plain, x[:3], els)) > 1e-2
    assert max(e.relative for e in equivariance_errors(tta, x[:3], els)) < 1e-5
    with torch.no_grad():  # outputs are log mean probabilities
        p = tta(x[:3]).exp()
    assert torch.allclose(p.sum(1), torch.ones(3), atol=1e-5)
    rep = evaluate_classification(tta, (x, y), rotation_set("grid")[::8], progress=False, metric="auroc")
    assert rep.summary()["std_grid"] < 1e-9


def test_group_tta_makes_trivial_unet_equivariant(small_model, seg_data):
    x, _ = seg_data
    base = small_model("unet", "trivial")
    tta = GroupTTA(base, group="octa", task="segmentation")
    els = cube_rotations()
    assert max(e.relative for e in equivariance_errors(base, x[:1], els)) > 1e-2
    assert max(e.relative for e in equivariance_errors(tta, x[:1], els)) < 1e-5
