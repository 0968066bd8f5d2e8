"""equivox.evaluation.segmentation: evaluate_segmentation rotates image and label together, pads volumes to the
model's size multiple, maps predictions back upright (predict_rotated), permutes labels under improper rotations
for label-swapping models, and refuses rotations that are not physical on anisotropic voxels.

Every equivariance claim is checked on real rotated inputs, with a counterpart model on which it fails."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from equivox.evaluation import evaluate_segmentation, predict_rotated, rotation_set

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class OracleSegmenter(nn.Module):
    """Per-voxel logits = one-hot of the rounded input: perfect when the image is the label itself."""

    def __init__(self, k=3):
        super().__init__()
        self.k = k

    def forward(self, x):
        cls = x[:, 0].round().clamp(0, self.k - 1).long()
        return torch.nn.functional.one_hot(cls, self.k).permute(0, 4, 1, 2, 3).float()


def test_equivariant_unet_dice_equal_on_every_grid_rotation(small_model, seg_data, small_rotations):
    x, y = seg_data
    rep = evaluate_segmentation(small_model("unet", "octa"), (x, y), small_rotations, num_classes=3,
                                progress=False, name="octa-unet", check_equivariance=True)
    assert rep.metric == "dice" and {"dice", "dice_1", "dice_2"} <= set(rep.rows[0])
    for col in ("dice", "dice_1", "dice_2"):
        vals = rep.scores("grid", col)
        assert max(vals) - min(vals) < 1e-6, col
    assert rep.equivariance_error < 1e-4
    rep_t = evaluate_segmentation(small_model("unet", "trivial"), (x, y), small_rotations, num_classes=3,
                                  progress=False)
    assert rep_t.summary()["std_grid"] > 1e-3


def test_segmentation_rotates_image_and_label_together():
    lab = torch.zeros(1, 1, 8, 8, 8, dtype=torch.long)
    lab[0, 0, 1:5, 2:7, 0:3] = 1
    lab[0, 0, 4:8, 0:3, 3:8] = 2
    rots = rotation_set("standard", n_random=2, seed=0)
    rep = evaluate_segmentation(OracleSegmenter(3), [{"image": lab[0].float(), "label": lab[0]}], rots,
                                num_classes=3, progress=False, class_names=["bg", "a", "b"])
    assert "dice_a" in rep.rows[0] and "dice_b" in rep.rows[0]
    for row in rep.rows:
        if row["exact"]:
            assert row["dice"] == pytest.approx(1.0)
        else:  # trilinear image vs nearest label: not exact, but still close
            assert 0.5 < row["dice"] < 1.0
    # an empty prediction scores 0
    loader = torch.utils.data.DataLoader([{"image": lab[0].float(), "label": lab[0]}] * 2, batch_size=2)
    rep_l = evaluate_segmentation(OracleSegmenter(3), loader, rots, num_classes=3, progress=False,
                                  class_names=["bg", "a", "b"])
    assert rep_l.rows == rep.rows and rep_l.meta["n_samples"] == 2
    rep0 = evaluate_segmentation(OracleSegmenter(3), [(torch.zeros(1, 8, 8, 8), lab[0])], rots[:1], num_classes=3,
                                 progress=False)
    assert rep0.rows[0]["dice"] == pytest.approx(0.0)


def test_segmentation_pads_non_divisible_volumes(small_model):
    model = small_model("unet", "octa")  # size_multiple 2
    x = torch.randn(1, 7, 8, 9, generator=torch.Generator().manual_seed(2))
    y = (x > 0.3).long() + (x > 1.0).long()
    rots = rotation_set("grid")[:6]
    rep = evaluate_segmentation(model, [(x, y)], rots, num_classes=3, progress=False)
    vals = rep.scores("grid")
    assert max(vals) - min(vals) < 1e-6 and rep.meta["padded_to_multiple"] == 2
    # predictions mapped back upright: same shape as the input, identical for every grid rotation
    p0 = predict_rotated(model, x[None], rots[0])
    assert p0.shape == (1, 1, 7, 8, 9)
    for r in rots[1:]:
        assert torch.equal(predict_rotated(model, x[None], r), p0)
    with pytest.raises(ValueError, match="size_multiple"):
        evaluate_segmentation(model, [(x, y)], rots, num_classes=3, progress=False, pad=False)
    with pytest.raises(ValueError, match="label values"):
        evaluate_segmentation(model, [(x[:, :8, :8, :8], y[:, :8, :8, :8] + 3)], rots, num_classes=3, progress=False)


def test_segmentation_evaluation_refuses_rotations_that_are_not_physical_on_anisotropic_voxels():
    """On 3 x 1 x 1 mm voxels a random rotation, or a quarter turn that swaps the 3 mm axis with a 1 mm one, is not
    a rotation of the scan: refused, naming the rotation; the rotations of the group exact for the spacing run."""
    from equivox.groups import auto_group

    class Ones(nn.Module):
        def forward(self, x):
            return torch.cat([torch.zeros_like(x[:, :1]), torch.ones_like(x[:, :1])], 1)

    vol = torch.zeros(1, 1, 4, 4, 4)
    lab = torch.zeros(1, 1, 4, 4, 4, dtype=torch.long)
    lab[..., 1:3, 1:3, 1:3] = 1
    spacing = (3.0, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"rotation (grid|so3):.* not a rotation of the scan on anisotropic voxels \(3x1x1"):
        evaluate_segmentation(Ones(), (vol, lab), rotation_set("standard", group="octa", n_random=1),
                              num_classes=2, progress=False, spacing=spacing)
    exact = rotation_set("grid", group=auto_group(spacing)[0])
    rep = evaluate_segmentation(Ones(), (vol, lab), exact, num_classes=2, progress=False, spacing=spacing)
    assert len(rep.rows) == len(exact) >= 4
    iso = evaluate_segmentation(Ones(), (vol, lab), rotation_set("grid", group="octa"), num_classes=2,
                                progress=False, spacing=(2.0, 2.0, 2.0))
    assert len(iso.rows) == 24


def test_evaluation_permutes_labels_under_improper_rotations():
    """A model whose left/right classes (1, 2) swap under reflections scores the same on all 48 elements of
    full_octa; scored without the label permutation it does not; its prediction under a mirror, mapped back, is the
    upright one."""
    from equivox.nets import EquivariantUNet

    torch.manual_seed(2)
    net = EquivariantUNet(in_channels=1, out_channels=3, channels=(2, 2), strides=(2,), group="full_octa",
                          class_swaps=[(1, 2)]).eval()
    torch.manual_seed(0)
    img = torch.randn(1, 8, 8, 8)
    lab = torch.zeros(1, 8, 8, 8, dtype=torch.long)
    lab[0, 2:6, 2:6, :4], lab[0, 2:6, 2:6, 4:] = 1, 2  # "left" half and "right" half
    rots = rotation_set("grid", "full_octa")
    assert any(r.element.determinant < 0 for r in rots)
    rep = evaluate_segmentation(net, [(img, lab)], rots, num_classes=3, progress=False, check_equivariance=True)
    scores = [r["dice"] for r in rep.rows]
    assert max(scores) - min(scores) < 1e-6, "an exactly label-permuting model scores the same on all 48 elements"
    assert rep.equivariance_error < 1e-4
    plain = evaluate_segmentation(net, [(img, lab)], rots, num_classes=3, progress=False,
                                  class_permutation=(0, 1, 2))
    assert max(r["dice"] for r in plain.rows) - min(r["dice"] for r in plain.rows) > 1e-3
    mirror = next(r for r in rots if r.element.determinant < 0)
    pred = predict_rotated(net, img[None], mirror)
    with torch.no_grad():
        upright = net(img[None]).argmax(1, keepdim=True)
    assert torch.equal(pred, upright)
