"""equivox.nets.unet: EquivariantUNet is exactly equivariant under every grid element of every group (axial
groups on anisotropic shapes too), builds through overridable layer hooks (as MONAI's UNet), takes MONAI-style
norm / activation specs, is used the MONAI way (eval_mode, MetaTensor, one_hot, losses, metrics, sliding-window
inference, SupervisedTrainer / SupervisedEvaluator engines, TorchScript of its export) and refuses inputs and
arguments that would break exactness, with clear errors.

Equivariance is checked with real group elements (equivox.testing) and with rotations written here (torch.rot90);
every check has a counterpart that fails on a model that is not equivariant."""
import copy

import pytest
import torch
from monai.data import DataLoader, MetaTensor
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import MeanDice, from_engine
from monai.inferers import SimpleInferer, SlidingWindowInferer, sliding_window_inference
from monai.losses import DiceCELoss
from monai.metrics import DiceMetric
from monai.networks import eval_mode
from monai.networks.utils import one_hot
from monai.transforms import Activationsd, AsDiscreted, Compose, EnsureTyped, RandSpatialCropSamplesd

from equivox.core import PlainModule
from equivox.data import ChestCTDataset, RandGridRotatedd, SO3Rotatedd, random_rotation_matrices
from equivox.groups import GROUPS as REGISTRY, cube_rotations, get_group
from equivox.nets import EquivariantUNet
from equivox.nn import EquivarianceError, EquivariantConvBlock, FieldResidualUnit
from equivox.testing import assert_equivariant, equivariance_errors, format_error_table

SMALL = dict(out_channels=2, channels=(1, 2), strides=(2,), group="c4_axial")
# Relative error bounds (max |f(gx) - g f(x)| / max |f(x)|). Measured: ~1e-6 for every group (float32 rounding);
# octa/full_octa must be exact to rounding; ico/full_ico/so3/o3 are exact on their grid-exact elements by
# construction too (grid-closed kernel sampling and Fourier grids), asserted under the same documented bound.
EXACT_BOUND = 1e-4
# every registered isotropic group (octa, full_octa, ico, full_ico, so3, o3); the axial ones: AXIAL below
ISOTROPIC = [n for n, s in REGISTRY.items() if s.exact_spacing == "isotropic"]
# every registered group but the axial ones: trivial, octa, full_octa, ico, full_ico, so3, o3 (and the quotients)
NOT_AXIAL = [n for n, s in REGISTRY.items() if s.exact_spacing != "axial"]
SLOW = {"ico", "full_ico", "full_octa", "o3"}  # cold escnn builds of ~1-2 min each (cached afterwards)


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _quarter_turn(axis):
    """A 90-degree rotation about tensor axis ``axis`` (0 = D, 1 = H, 2 = W) of (B, C, D, H, W) tensors."""
    plane = tuple(2 + a for a in range(3) if a != axis)
    return lambda t: torch.rot90(t, 1, plane)


class ResidualUNet(EquivariantUNet):
    """Residual units instead of plain conv blocks, on the way down and up."""

    def _get_down_layer(self, in_spec, out_fields):
        return FieldResidualUnit(in_spec, out_fields, self.kernel_size, self.norm, self.act)

    def _get_up_layer(self, in_spec, skip_spec, out_fields, stride):
        up, _ = super()._get_up_layer(in_spec, skip_spec, out_fields, stride)
        return up, FieldResidualUnit(in_spec + skip_spec, out_fields, self.kernel_size, self.norm, self.act)


def test_hooks_build_every_level_and_the_result_is_equivariant():
    torch.manual_seed(0)
    net = ResidualUNet(**SMALL).eval()
    assert all(isinstance(m, FieldResidualUnit) for m in net.encoder.levels)  # bottom level via the default hook
    assert all(isinstance(m, FieldResidualUnit) for m in net.decoders)
    assert_equivariant(net)
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        assert torch.allclose(net.export()(x), net(x), atol=1e-5)


def test_default_hooks_keep_the_layout():
    net = EquivariantUNet(**SMALL)
    assert all(type(m) is EquivariantConvBlock for m in list(net.encoder.levels) + list(net.decoders))
    assert [k for k in net.state_dict() if k.startswith("decoders.0.layers.0.weight")]


@pytest.mark.parametrize("norm, act", [(("batch", {"momentum": 0.2}), ("leakyrelu", {"negative_slope": 0.2})),
                                       (("group", {"num_groups": 1}), "gelu"), ("instance", ("elu", {"alpha": 0.5}))])
def test_monai_style_norm_and_activation_specs(norm, act):
    torch.manual_seed(0)
    net = EquivariantUNet(norm=norm, act=act, **SMALL).eval()
    kinds = {type(m).__name__ for m in net.modules()}
    assert {"BatchNorm3d": "batch", "GroupNorm": "group", "InstanceNorm3d": "instance"}.keys() & kinds
    assert_equivariant(net)
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        assert torch.allclose(net.export()(x), net(x), atol=1e-5)


def test_unknown_norm_and_activation_are_errors():
    with pytest.raises(ValueError, match="norm must be one of"):
        EquivariantUNet(norm="layer", **SMALL)
    with pytest.raises(ValueError, match="SWISHY"):
        EquivariantUNet(act="swishy", **SMALL)


# ------------------------------------------------------------------ exact equivariance


@pytest.mark.parametrize("group", ISOTROPIC)
def test_unet_logits_transform_with_every_grid_element(group, small_model, cube_input, trained):
    model = trained(small_model("unet", group))
    errors = assert_equivariant(model, cube_input, rtol=EXACT_BOUND)
    assert len(errors) == len(get_group(group).grid_elements)
    print(format_error_table(errors, f"EquivariantUNet[{group}]"))


def test_trivial_group_unet_is_not_equivariant(small_model, cube_input, trained):
    model = trained(small_model("unet", "trivial"))
    errors = equivariance_errors(model, cube_input, elements=cube_rotations())
    assert errors[0].relative == 0.0  # identity
    assert max(e.relative for e in errors[1:]) > 1e-2


CASES = [("c4_axial", 2, (16, 16, 8)), ("d4_axial", 2, (16, 16, 8)), ("c4_axial_d", 0, (8, 16, 16)),
         ("d4_axial_d", 0, (8, 16, 16)), ("d4_axial_h", 1, (16, 8, 16))]


@pytest.mark.parametrize("name,axis,shape", CASES)
def test_axial_unet_is_exact_on_anisotropic_shapes(name, axis, shape):
    torch.manual_seed(0)
    net = EquivariantUNet(channels=(2, 4), strides=(2,), group=name, out_channels=3).eval()
    x = torch.randn(2, 1, *shape)
    errors = assert_equivariant(net, x)  # every element of the group, on the anisotropic shape
    assert len(errors) == (8 if name.startswith("d4") else 4)
    # the group's elements are the turns about the slice axis written here with torch.rot90
    with torch.no_grad():
        turn, y = _quarter_turn(axis), net(x)
        assert (net(turn(x)) - turn(y)).abs().max() < 1e-4 * y.abs().max()
    # a quarter turn about another axis is not in the group: the check must fail there
    wrong = _quarter_turn((axis + 1) % 3)
    xc = torch.randn(2, 1, 16, 16, 16)
    yc = net(xc)
    assert (net(wrong(xc)) - wrong(yc)).abs().max() / yc.abs().max() > 1e-2


@pytest.mark.parametrize("group", [pytest.param(g, marks=pytest.mark.slow) if g in SLOW else g for g in NOT_AXIAL])
def test_unet_shapes_and_equivariance_under_eval_mode(small_model, cube_input, group, non_identity_element):
    """(2, 1, 8, 8, 8) -> (2, 3, 8, 8, 8) logits under ``monai.networks.eval_mode``; for a non-identity grid
    element g: net(g x) == g net(x)."""
    net = small_model("unet", group)
    with eval_mode(net):
        y = net(cube_input)
        assert not net.training
        assert y.shape == (2, 3, 8, 8, 8) and y.dtype == torch.float32 and torch.isfinite(y).all()
        g = non_identity_element(group)
        if g is not None:
            assert_equivariant(net, cube_input, [g])
        else:  # trivial group: at least the output must depend on the input
            assert not torch.allclose(net(cube_input.flip(-1)), y)


# ------------------------------------------------------------------ MONAI: tensors, losses, metrics


def test_metatensor_input_gives_same_plain_output(small_model, cube_input):
    net = small_model("unet", "octa")
    meta = MetaTensor(cube_input.clone(), affine=torch.diag(torch.tensor([3.0, 3.0, 3.0, 1.0])))
    with eval_mode(net):
        y_meta, y_plain = net(meta), net(cube_input)
    assert type(y_meta) is torch.Tensor
    torch.testing.assert_close(y_meta, y_plain)
    # integer MetaTensor (e.g. raw HU loaded as int16) is cast to float
    with eval_mode(net):
        y_int = net(MetaTensor(cube_input.round().to(torch.int16)))
        torch.testing.assert_close(y_int, net(cube_input.round()))


def test_one_hot_of_prediction_matches_monai_convention(small_model, cube_input):
    net = small_model("unet", "octa")
    with eval_mode(net):
        pred = net(cube_input).argmax(1, keepdim=True)
    oh = one_hot(pred, num_classes=3)
    assert oh.shape == (2, 3, 8, 8, 8)
    assert torch.equal(oh.argmax(1, keepdim=True), pred) and torch.equal(oh.sum(1), torch.ones(2, 8, 8, 8))


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


# ------------------------------------------------------------------ MONAI: sliding window, engines, TorchScript


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


@pytest.mark.parametrize("group", ["octa", "so3"])
def test_torchscript_save_reload_of_exported_unet(small_model, group, tmp_path, script_save_and_compare):
    from equivox import export
    net = small_model("unet", group)
    x = _rand(2, 1, 8, 8, 8)
    with eval_mode(net):
        ref = net(x)
        plain = net.export() if hasattr(net, "export") else export.export(net)
    plain.eval()
    leaves = {type(m) for m in plain.modules() if not list(m.children())}
    assert all(t.__module__.startswith("torch.nn") or issubclass(t, PlainModule) for t in leaves), leaves
    loaded = script_save_and_compare(plain, x, tmp_path=tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), ref, atol=1e-4, rtol=1e-4)  # same function as the equivox model
        g = get_group(group).grid_elements[3]
        torch.testing.assert_close(loaded(g.apply(x)), g.apply(ref), atol=1e-4, rtol=1e-4)
        with pytest.raises(Exception, match="divisible"):
            loaded(torch.zeros(1, 1, 8, 8, 7))


# ------------------------------------------------------------------ refused inputs and arguments


def test_sizes_that_break_exactness_are_refused(small_model):
    model = small_model("unet", "octa").eval()
    with pytest.raises(EquivarianceError, match=r"not divisible by 2"):
        model(torch.randn(1, 1, 8, 9, 8))


def test_error_unet_wrong_channels_and_rank(small_model):
    net = small_model("unet", "octa")
    with pytest.raises(ValueError, match=r"in_channels=1, got input with 2 channels"):
        net(torch.zeros(1, 2, 8, 8, 8))
    with pytest.raises(ValueError, match=r"expects a 5D tensor \(B, C, D, H, W\), got shape \(1, 8, 8, 8\)"):
        net(torch.zeros(1, 8, 8, 8))  # a MONAI (C, D, H, W) item without the batch axis


def test_error_patch_not_divisible(small_model):
    net = small_model("unet", "octa")
    with pytest.raises(EquivarianceError, match=r"\(8, 8, 7\) is not divisible by 2.*DivisiblePad\(k=2\)"):
        net(torch.zeros(1, 1, 8, 8, 7))


def test_sliding_window_with_bad_roi_size_raises_clear_error(small_model):
    """A MONAI inferer whose windows are not multiples of model.size_multiple fails with a message naming the fix."""
    from equivox.nn import EquivarianceError

    net = small_model("unet", "octa")
    with eval_mode(net), pytest.raises(EquivarianceError, match=r"\(7, 7, 7\) is not divisible by 2.*DivisiblePad"):
        sliding_window_inference(_rand(1, 1, 16, 16, 16), (7, 7, 7), 1, net)
    with eval_mode(net), pytest.raises(ValueError, match=r"in_channels=1, got input with 2 channels"):
        SlidingWindowInferer(roi_size=8)(_rand(1, 2, 16, 16, 16), net)  # e.g. a 2-modality pipeline


def test_constructor_arguments_are_checked():
    from equivox.nets import EquivariantUNet

    with pytest.raises(ValueError, match="spatial_dims must be 3"):
        EquivariantUNet(2, 1, 2)
    with pytest.raises(ValueError, match="strides must have 2 entries"):
        EquivariantUNet(3, 1, 2, channels=(2, 2, 2), strides=(2,))
    with pytest.raises(ValueError, match="unknown group"):
        EquivariantUNet(3, 1, 2, group="octahedral")

