"""equivox networks inside MONAI pipelines: sliding-window inference, losses and metrics, SupervisedTrainer /
SupervisedEvaluator engines on the bundled chest CT, TorchScript save/reload of the exported model."""
from __future__ import annotations

import copy
import os

import pytest
import torch
from monai.data import DataLoader, MetaTensor
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import MeanDice, from_engine
from monai.inferers import SimpleInferer, SlidingWindowInferer, sliding_window_inference
from monai.losses import DiceCELoss
from monai.metrics import DiceMetric
from monai.networks import eval_mode
from monai.networks.utils import convert_to_torchscript, one_hot
from monai.transforms import (Activationsd, AsDiscreted, Compose, EnsureTyped, RandSpatialCropSamplesd)

from equivox.core import PlainModule
from equivox.data import ChestCTDataset, RandGridRotatedd, SO3Rotatedd, random_rotation_matrices
from equivox.groups import get_group


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ sliding window


def test_sliding_window_matches_direct_inference_in_one_window(small_model):
    net = small_model("unet", "octa")
    x = _rand(1, 1, 16, 16, 16)
    with eval_mode(net):
        direct = net(x)
        sw = sliding_window_inference(x, roi_size=(16, 16, 16), sw_batch_size=1, predictor=net, overlap=0.25)
    assert sw.shape == direct.shape == (1, 3, 16, 16, 16)
    torch.testing.assert_close(sw, direct, atol=1e-5, rtol=1e-5)


def test_sliding_window_on_larger_volume_equals_blockwise_inference(small_model):
    """16^3 volume, 8^3 windows without overlap: the result is the network applied to each 8^3 block."""
    net = small_model("unet", "octa")
    x = MetaTensor(_rand(1, 1, 16, 16, 16, seed=1))
    with eval_mode(net):
        sw = SlidingWindowInferer(roi_size=8, sw_batch_size=4, overlap=0.0)(x, net)
        blocks = torch.zeros(1, 3, 16, 16, 16)
        for i in (0, 8):
            for j in (0, 8):
                for k in (0, 8):
                    blocks[..., i:i + 8, j:j + 8, k:k + 8] = net(x.as_tensor()[..., i:i + 8, j:j + 8, k:k + 8])
        # a non-cubic, larger volume (24 x 16 x 8) runs too, windows padded/blended by MONAI
        big = sliding_window_inference(_rand(1, 1, 24, 16, 8, seed=2), (8, 8, 8), 4, net, overlap=0.25)
    assert sw.shape == (1, 3, 16, 16, 16)
    torch.testing.assert_close(torch.as_tensor(sw), blocks, atol=1e-5, rtol=1e-5)
    assert big.shape == (1, 3, 24, 16, 8) and torch.isfinite(big).all()


def test_sliding_window_is_equivariant_on_a_cube_with_symmetric_windows(small_model):
    """Windows that tile a cube exactly (no overlap) are permuted by a grid rotation, so the result rotates."""
    net = small_model("unet", "octa")
    x = _rand(1, 1, 16, 16, 16, seed=3)
    g = get_group("octa").grid_elements[7]
    with eval_mode(net):
        y = sliding_window_inference(x, 8, 8, net, overlap=0.0)
        y_rot = sliding_window_inference(g.apply(x), 8, 8, net, overlap=0.0)
    torch.testing.assert_close(y_rot, g.apply(y), atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------ losses and metrics


def test_monai_loss_backward_and_metric(small_model):
    net = copy.deepcopy(small_model("unet", "octa")).train()
    x = _rand(2, 1, 8, 8, 8)
    label = (x > 0.5).long() + (x > 1.2).long()  # 3 classes (B, 1, D, H, W)
    loss = DiceCELoss(to_onehot_y=True, softmax=True)(net(x), label)
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert torch.isfinite(loss) and grads and all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    with eval_mode(net):
        pred = net(x).argmax(1, keepdim=True)
    metric = DiceMetric(include_background=True, reduction="mean")
    metric(y_pred=one_hot(pred, 3), y=one_hot(label, 3))
    perfect = DiceMetric(include_background=True, reduction="mean")
    perfect(y_pred=one_hot(label, 3), y=one_hot(label, 3))
    assert 0.0 <= float(metric.aggregate()) <= 1.0 and float(perfect.aggregate()) == pytest.approx(1.0)


# ------------------------------------------------------------------ engines on the real CT sample


def _ct_loader(num_samples: int, seed: int, rotate):
    crop = Compose([RandSpatialCropSamplesd(["image", "label"], roi_size=(16, 16, 16), num_samples=num_samples,
                                            random_size=False),
                    rotate,  # equivox rotations as MONAI dictionary transforms
                    EnsureTyped(["image", "label"])])
    crop.set_random_state(seed)
    ds = ChestCTDataset(transform=crop)
    return DataLoader(ds, batch_size=1, num_workers=0)


def test_supervised_trainer_and_evaluator_one_epoch(small_model, tmp_path):
    """One epoch of SupervisedTrainer (2 16^3 CT crops, RandGridRotatedd augmentation) with a SupervisedEvaluator
    (SO3Rotatedd-rotated crop, sliding window) run by a ValidationHandler; the weights change and the evaluator
    reports a Dice in [0, 1]."""
    from monai.handlers import ValidationHandler

    torch.manual_seed(0)
    from equivox.nets import EquivariantUNet

    net = EquivariantUNet(3, 1, 6, channels=(2, 2), strides=(2,), group="octa")
    before = copy.deepcopy(net.state_dict())
    post = Compose([Activationsd("pred", softmax=True),
                    AsDiscreted(["pred", "label"], argmax=(True, False), to_onehot=6)])
    val_rotation = SO3Rotatedd(["image", "label"], random_rotation_matrices(1, seed=0)[0])  # trilinear / nearest
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"), val_data_loader=_ct_loader(1, seed=1, rotate=val_rotation), network=net,
        inferer=SlidingWindowInferer(roi_size=8, sw_batch_size=8), postprocessing=post,
        key_val_metric={"val_dice": MeanDice(include_background=False,
                                             output_transform=from_engine(["pred", "label"]))},
    )
    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=1, network=net,
        train_data_loader=_ct_loader(2, seed=0, rotate=RandGridRotatedd(["image", "label"], "octa")),
        optimizer=torch.optim.Adam(net.parameters(), 1e-2), loss_function=DiceCELoss(to_onehot_y=True, softmax=True),
        inferer=SimpleInferer(), train_handlers=[ValidationHandler(1, evaluator)],
    )
    trainer.run()
    assert trainer.state.epoch == 1 and trainer.state.iteration == 1  # 1 item x 2 crops, batch 1 -> 1 iteration
    assert torch.isfinite(torch.as_tensor(trainer.state.output[0]["loss"]))
    changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])]
    assert any("weight" in k or "coeff" in k or "param" in k for k in changed), changed
    dice = evaluator.state.metrics["val_dice"]
    assert 0.0 <= dice <= 1.0


# ------------------------------------------------------------------ TorchScript of the exported model


def _script_save_and_compare(net, *inputs, rtol=1e-4, atol=1e-5, tmp_path):
    """As MONAI's ``tests.utils.test_script_save``: convert_to_torchscript(verify=True) + reload + compare."""
    path = os.path.join(tmp_path, "model.ts")
    convert_to_torchscript(net, filename_or_obj=path, verify=True, inputs=inputs, device=torch.device("cpu"),
                           rtol=rtol, atol=atol)
    loaded = torch.jit.load(path)
    with torch.no_grad():
        for a, b in zip([net(*inputs)], [loaded(*inputs)]):
            torch.testing.assert_close(b, a, rtol=rtol, atol=atol)
    return loaded


@pytest.mark.parametrize("group", ["octa", "so3"])
def test_torchscript_save_reload_of_exported_unet(small_model, group, tmp_path):
    from equivox import export
    net = small_model("unet", group)
    x = _rand(2, 1, 8, 8, 8)
    with eval_mode(net):
        ref = net(x)
        plain = net.export() if hasattr(net, "export") else export.export(net)
    plain.eval()
    leaves = {type(m) for m in plain.modules() if not list(m.children())}
    assert all(t.__module__.startswith("torch.nn") or issubclass(t, PlainModule) for t in leaves), leaves
    loaded = _script_save_and_compare(plain, x, tmp_path=tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), ref, atol=1e-4, rtol=1e-4)  # same function as the equivox model
        g = get_group(group).grid_elements[3]
        torch.testing.assert_close(loaded(g.apply(x)), g.apply(ref), atol=1e-4, rtol=1e-4)
        with pytest.raises(Exception, match="divisible"):
            loaded(torch.zeros(1, 1, 8, 8, 7))


def test_torchscript_of_exported_feature_extractor(tmp_path):
    from equivox import export
    from equivox.nets import EquivariantFeatureExtractor

    torch.manual_seed(0)
    fx = EquivariantFeatureExtractor(3, 1, channels=(2, 2), strides=(2,), group="octa").eval()
    plain = export.export(fx).eval()
    x = _rand(1, 1, 8, 8, 8)
    loaded = _script_save_and_compare(plain, x, tmp_path=tmp_path)
    with torch.no_grad():
        for a, b in zip(loaded(x), fx(x)):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_torchscript_of_exported_monai_blocks(tmp_path):
    from equivox import export
    from equivox.nets import EquivariantHead, EquivariantResidualUnit

    torch.manual_seed(0)
    unit = EquivariantResidualUnit(3, 1, 2, group="octa", strides=2).eval()
    head = EquivariantHead(3, 2, 3, group="octa").eval()
    x = _rand(1, 1, 8, 8, 8)
    with torch.no_grad():
        ref = head(unit(x))
    p_unit = _script_save_and_compare(export.export(unit).eval(), x, tmp_path=tmp_path)
    p_head = _script_save_and_compare(export.export(head).eval(), p_unit(x), tmp_path=tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(p_head(p_unit(x)), ref, atol=1e-4, rtol=1e-4)
        g = get_group("octa").grid_elements[11]
        torch.testing.assert_close(p_head(p_unit(g.apply(x))), g.apply(ref), atol=1e-4, rtol=1e-4)


def test_sliding_window_with_bad_roi_size_raises_clear_error(small_model):
    """A MONAI inferer whose windows are not multiples of model.size_multiple fails with a message naming the fix."""
    from equivox.nn import EquivarianceError

    net = small_model("unet", "octa")
    with eval_mode(net), pytest.raises(EquivarianceError, match=r"\(7, 7, 7\) is not divisible by 2.*DivisiblePad"):
        sliding_window_inference(_rand(1, 1, 16, 16, 16), (7, 7, 7), 1, net)
    with eval_mode(net), pytest.raises(ValueError, match=r"in_channels=1, got input with 2 channels"):
        SlidingWindowInferer(roi_size=8)(_rand(1, 2, 16, 16, 16), net)  # e.g. a 2-modality pipeline
