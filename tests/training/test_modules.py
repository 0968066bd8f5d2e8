"""equivox.training.modules: the Lightning modules around any nn.Module: batches as dicts, pairs or MetaTensors;
the hyper-parameters a checkpoint needs; cross-entropy / Dice-CE losses plus the model's own auxiliary losses; the
pickled architecture of a model without a spec saved in its checkpoints; AdamW with the given settings."""
from __future__ import annotations

import warnings

import pytest
import torch
from monai.data import MetaTensor
from torch import nn

from equivox.training.modules import (PICKLED_MODEL, SKELETON_KEY, ClassificationModule, SegmentationModule,
                                      split_batch)


def test_split_batch_reads_dicts_pairs_and_metatensors():
    x, y = torch.zeros(2, 1, 4, 4, 4, dtype=torch.uint8), torch.tensor([0, 1])
    for batch in ({"image": x, "label": y}, (x, y), [MetaTensor(x), MetaTensor(y)]):
        bx, by = split_batch(batch)
        assert type(bx) is torch.Tensor and bx.dtype == torch.float32 and torch.equal(by, y)


class WithPrior(nn.Module):
    """A classifier that stores an auxiliary loss (like a canonicalizer's prior) on every forward pass."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
        self._aux = None

    def forward(self, x):
        out = self.net(x)
        self._aux = out.square().mean() * 0 + 5.0
        return out

    def auxiliary_loss(self):
        aux, self._aux = self._aux, None
        return aux


def _quiet(fn, *args):
    with warnings.catch_warnings():  # self.log outside a Trainer warns
        warnings.simplefilter("ignore")
        return fn(*args)


def test_classification_loss_is_cross_entropy_plus_the_auxiliary_losses():
    torch.manual_seed(0)
    model = WithPrior()
    module = ClassificationModule(model, 3, lr=1e-2, weight_decay=0.5, model_spec={"cls": "X"}, config={"a": 1})
    x, y = torch.randn(4, 1, 4, 4, 4), torch.tensor([0, 1, 2, 0])
    loss = _quiet(module.training_step, (x, y), 0)
    with torch.no_grad():
        want = nn.functional.cross_entropy(model.net(x), y) + 5.0
    assert torch.allclose(loss, want)
    assert module.hparams.num_classes == 3 and module.hparams.model_spec == {"cls": "X"}
    assert module.hparams.config == {"a": 1} and module.hparams.data_info == {}
    opt = module.configure_optimizers()
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["lr"] == 1e-2 and opt.defaults["weight_decay"] == 0.5


def test_segmentation_loss_is_dice_ce_and_fewer_than_two_classes_are_refused():
    from monai.losses import DiceCELoss

    torch.manual_seed(0)
    model = nn.Conv3d(1, 3, 1)
    module = SegmentationModule(model, 3)
    x = torch.randn(2, 1, 4, 4, 4)
    y = torch.randint(0, 3, (2, 1, 4, 4, 4))
    loss = _quiet(module.training_step, {"image": x, "label": y}, 0)
    with torch.no_grad():
        want = DiceCELoss(to_onehot_y=True, softmax=True)(model(x), y)
    assert torch.allclose(loss, want)
    with pytest.raises(ValueError, match="num_classes must be >= 2, got 1"):
        SegmentationModule(model, 1)


def test_a_model_without_spec_saves_its_pickled_architecture_once():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    module = ClassificationModule(model, 2, model_spec={"cls": PICKLED_MODEL})
    first, second = {}, {}
    module.on_save_checkpoint(first)
    module.on_save_checkpoint(second)
    assert first[SKELETON_KEY] is second[SKELETON_KEY] and isinstance(first[SKELETON_KEY], bytes)
    with_spec = {}
    ClassificationModule(model, 2, model_spec={"cls": "EquivariantUNet"}).on_save_checkpoint(with_spec)
    assert SKELETON_KEY not in with_spec
