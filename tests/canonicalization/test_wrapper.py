"""equivox.canonicalization.wrapper: canonicalize() wraps any model into an exactly invariant (classify) or
equivariant (segment) one, with class swaps under reflections, ties averaged, export and TorchScript, MONAI
inference, and the confidence scorer. Rotations are written in the tests (conftest's cube_rotation_ops /
cube_symmetry_ops: torch.rot90 / torch.flip), never the library's own actions."""
import numpy as np
import pytest
import torch
from torch import nn

from equivox.canonicalization import canonicalize
from equivox.export import export


@pytest.mark.parametrize("mode", ["hard", "frame", "soft"])
def test_classifier_wrapper_is_exactly_invariant_and_the_plain_model_is_not(mode, cube_rotation_ops, rel_error,
                                                                            small_plain_classifier):
    torch.manual_seed(1)
    model = small_plain_classifier().eval()
    net = canonicalize(model, "octa", "classify", mode=mode, input_size=8, channels=(2, 2)).eval()
    x = torch.rand(3, 1, 12, 12, 12)
    with torch.no_grad():
        ref = net(x)
        for g in cube_rotation_ops:
            assert rel_error(net(g(x)), ref) < 1e-5
        assert rel_error(model(torch.rot90(x, 1, (2, 4))), model(x)) > 1e-3


def test_segmentation_wrapper_around_a_plain_conv_is_exactly_equivariant_with_class_swaps_under_reflections(
        cube_symmetry_ops, rel_error):
    """full_octa: rotations move the logits, improper elements move them and swap classes 1 and 2."""
    torch.manual_seed(2)
    net = canonicalize(nn.Conv3d(1, 3, 3, padding=1), "full_octa", "segment", class_swaps=[(1, 2)], input_size=8,
                       channels=(2, 2)).eval()
    x = torch.rand(2, 1, 10, 10, 10)
    with torch.no_grad():
        ref = net(x)
        for g, improper in cube_symmetry_ops:
            want = g(ref)[:, [0, 2, 1]] if improper else g(ref)
            assert rel_error(net(g(x)), want) < 1e-5
        # without the declared swap the same input is not label-permuting: the check can fail
        plain = canonicalize(nn.Conv3d(1, 3, 3, padding=1), "full_octa", "segment", input_size=8).eval()
        flip = lambda t: torch.flip(t, (2,))  # noqa: E731
        assert rel_error(plain(flip(x)), flip(plain(x))[:, [0, 2, 1]]) > 1e-3


def test_segmentation_wrapper_around_monai_unet_is_exactly_equivariant_on_a_non_cubic_volume(cube_rotation_ops,
                                                                                             rel_error):
    from monai.networks.nets import UNet

    torch.manual_seed(3)
    unet = UNet(3, 1, 3, channels=(4, 8), strides=(2,), num_res_units=1).eval()
    net = canonicalize(unet, "octa", "segment", input_size=8, channels=(2, 2)).eval()
    x = torch.rand(1, 1, 8, 12, 16)
    with torch.no_grad():
        ref = net(x)
        for g in cube_rotation_ops:
            assert rel_error(net(g(x)), g(ref)) < 1e-5
        assert rel_error(unet(torch.rot90(x, 1, (3, 4))), torch.rot90(unet(x), 1, (3, 4))) > 1e-3


def test_symmetric_input_ties_are_averaged_and_stay_equivariant(cube_rotation_ops, rel_error):
    """A centred sphere scores every element alike: hard mode averages the tie (defined output, no error), and
    the segmentation output is exactly equivariant (a first-index argmax would not be)."""
    torch.manual_seed(4)
    c = torch.arange(12.0) - 5.5
    sphere = ((c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2) < 20).float()[None, None]
    net = canonicalize(nn.Conv3d(1, 2, 3, padding=1), "octa", "segment", input_size=8, channels=(2, 2)).eval()
    with torch.no_grad():
        scores = net.scorer(sphere)
        assert (net.element_weights(scores) > 0).sum().item() > 1  # a tie
        ref = net(sphere)
        assert torch.isfinite(ref).all()
        for g in cube_rotation_ops:
            assert rel_error(net(g(sphere)), g(ref)) < 1e-5


def test_equivalent_rate_counts_symmetries_of_the_item_as_upright():
    """A part with a 4-fold symmetry about w: a canonicalizer that picks a quarter turn about w has not lost "up"
    (equivalent, not identity); a part without symmetry is equivalent only at the identity."""
    net = canonicalize(nn.Conv3d(1, 2, 3, padding=1), "octa", "segment", input_size=8, channels=(2, 2)).eval()
    square = torch.zeros(1, 1, 8, 8, 8)
    square[..., 2:6, 2:6, 1:3] = 1.0  # a square plate: rot90 about w maps it onto itself
    lopsided = torch.zeros(1, 1, 8, 8, 8)
    lopsided[..., 1:7, 2:4, 1:2] = 1.0
    lopsided[..., 1:3, 2:4, 2:6] = 1.0
    quarter = next(k for k, e in enumerate(net.scorer.elements)
                   if np.allclose(e.matrix, [[0, -1, 0], [1, 0, 0], [0, 0, 1]]) or
                   np.allclose(e.matrix, [[0, 1, 0], [-1, 0, 0], [0, 0, 1]]))
    net.choices = lambda x: torch.full((len(x),), quarter)
    assert net.equivalent_rate(square) == 1.0 and net.identity_rate(square) == 0.0
    assert net.equivalent_rate(lopsided) == 0.0
    net.choices = lambda x: torch.full((len(x),), net.identity_index)
    assert net.equivalent_rate(torch.cat([square, lopsided])) == 1.0


@pytest.mark.parametrize("task", ["classify", "segment"])
def test_export_and_torchscript_equal_eager(task, rel_error, small_plain_classifier):
    torch.manual_seed(5)
    model = small_plain_classifier() if task == "classify" else nn.Conv3d(1, 3, 3, padding=1)
    net = canonicalize(model, "full_octa", task, input_size=8, channels=(2, 2),
                       class_swaps=[(1, 2)] if task == "segment" else None).eval()
    x = torch.rand(2, 1, 8, 8, 8)
    plain = export(net)
    assert not any(type(m).__module__.startswith("escnn") for m in plain.modules())
    scripted = torch.jit.script(plain)
    with torch.no_grad():
        ref = net(x)
        assert rel_error(plain(x), ref) < 1e-6
        assert rel_error(scripted(torch.flip(x, (3,))), net(torch.flip(x, (3,)))) < 1e-6


def test_training_forward_passes_the_prior_and_task_gradient_to_the_canonicalizer(small_plain_classifier):
    torch.manual_seed(6)
    net = canonicalize(small_plain_classifier(), "octa", "classify", input_size=8, channels=(2, 2)).train()
    out = net(torch.rand(4, 1, 8, 8, 8))
    prior = net.auxiliary_loss()
    assert prior is not None and net.auxiliary_loss() is None  # collected once
    out.sum().backward()  # task loss alone: the straight-through mixture reaches the scorer
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.scorer.parameters())


def test_wrapper_runs_in_monai_sliding_window_inference_and_saves_its_spec(tmp_path):
    from monai.inferers import sliding_window_inference

    from equivox.baselines import build_from_spec
    from equivox.training import load_checkpoint  # noqa: F401  (the spec path checkpoints use)

    torch.manual_seed(8)
    inner = build_from_spec({"cls": "EquivariantUNet", "kwargs": dict(spatial_dims=3, in_channels=1, out_channels=2,
                                                                       channels=[2, 2], strides=[2], group="trivial")})
    net = canonicalize(inner, "octa", "segment", input_size=8, channels=(2, 2)).eval()
    rebuilt = build_from_spec(net.equivox_spec)
    rebuilt.load_state_dict(net.state_dict())
    x = torch.rand(1, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), net(x))
        y = sliding_window_inference(x, (8, 8, 8), 2, net, overlap=0.0)
    assert y.shape == (1, 2, 16, 16, 16) and torch.isfinite(y).all()


@pytest.mark.parametrize("task", ["classify", "segment"])
def test_confidence_mode_is_exact_over_all_48_elements_untrained(task, cube_symmetry_ops, rel_error):
    """Adaptive canonicalization (the model's own confidence picks the pose): exactly invariant (classify) /
    equivariant (segment) under every rotation and reflection of the cube, for an untrained model, with no
    canonicalizer to fit; the picked pose is the one of highest confidence."""
    from equivox.canonicalization import confidence_scores

    torch.manual_seed(7)
    plain = (nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(),
                           nn.Linear(4, 3)) if task == "classify" else
             nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 3, 3, padding=1)))
    net = canonicalize(plain, "full_octa", task, scorer="confidence").eval()
    assert net.n_elements == 48 and not any(p.requires_grad for p in net.parameters() if p not in
                                            set(plain.parameters()))
    x = torch.rand(2, 1, 8, 8, 8)
    with torch.no_grad():
        ref = net(x)
        for g, _ in cube_symmetry_ops:
            out = net(g(x))
            assert rel_error(out, ref if task == "classify" else g(ref)) < 1e-5
        assert rel_error(plain(torch.rot90(x, 1, (2, 3))), plain(x)) > 1e-3  # the plain model is not
        scores = net._scores(x)
        k = int(scores[0].argmax())
        moved = x[:1].permute([0, 1] + [2 + a for a in net.inv_axes[k]])
        moved = moved.flip([2 + f for f in net.inv_flips[k]]) if net.inv_flips[k] else moved
        assert float(confidence_scores(plain(moved))[0]) == pytest.approx(float(scores[0].max()))
    with pytest.raises(ValueError, match="scorer must be one of"):
        canonicalize(plain, "octa", task, scorer="magic")
