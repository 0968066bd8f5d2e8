"""Canonicalization (equivox.canonicalization, equivox.training.fit_canonicalizer): exact invariance and
equivariance of the wrapper around any model, with rotations written here (torch.rot90 / torch.flip), never the
library's own actions; export and TorchScript; fitting for a frozen model."""
import numpy as np
import pytest
import torch
from torch import nn

from equivox.canonicalization import GroupScorer, canonicalize
from equivox.export import export


def _cube_rotations():
    """The 24 rotations of a (B, C, S, S, S) tensor as compositions of torch.rot90, deduplicated on a probe."""
    probe = torch.arange(27.0).reshape(1, 1, 3, 3, 3)
    faces = [lambda t: t, lambda t: torch.rot90(t, 1, (2, 3)), lambda t: torch.rot90(t, 2, (2, 3)),
             lambda t: torch.rot90(t, 3, (2, 3)), lambda t: torch.rot90(t, 1, (2, 4)),
             lambda t: torch.rot90(t, 3, (2, 4))]
    out, seen = [], set()
    for face in faces:
        for k in range(4):
            f = (lambda face, k: lambda t: torch.rot90(face(t), k, (3, 4)))(face, k)
            key = tuple(f(probe).flatten().tolist())
            if key not in seen:
                seen.add(key)
                out.append(f)
    assert len(out) == 24
    return out


def _cube_symmetries():
    """The 48: the 24 rotations and each composed with a flip of the D axis (improper)."""
    rots = _cube_rotations()
    return [(r, False) for r in rots] + [((lambda r: lambda t: r(torch.flip(t, (2,))))(r), True) for r in rots]


def _classifier():
    return nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(),
                         nn.Linear(4, 3))


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def test_scorer_logits_permute_exactly_with_the_input():
    """scores(g.x) is a permutation of scores(x) for every cube rotation, and argmax moves: a plain-CNN scorer of
    the same shape is not (the check can fail)."""
    torch.manual_seed(0)
    s = GroupScorer("octa", channels=(2, 2), input_size=8).eval()
    x = torch.rand(2, 1, 12, 12, 12)
    ref = s(x).sort(1).values
    with torch.no_grad():
        for g in _cube_rotations():
            assert _rel(s(g(x)).sort(1).values, ref) < 1e-5
    plain = nn.Sequential(nn.Conv3d(1, 24, 3), nn.AdaptiveAvgPool3d(1), nn.Flatten())
    turned = torch.rot90(x, 1, (2, 3))
    assert _rel(plain(turned).sort(1).values, plain(x).sort(1).values) > 1e-3


@pytest.mark.parametrize("mode", ["hard", "frame", "soft"])
def test_classifier_wrapper_is_exactly_invariant_and_the_plain_model_is_not(mode):
    torch.manual_seed(1)
    model = _classifier().eval()
    net = canonicalize(model, "octa", "classify", mode=mode, input_size=8, channels=(2, 2)).eval()
    x = torch.rand(3, 1, 12, 12, 12)
    with torch.no_grad():
        ref = net(x)
        for g in _cube_rotations():
            assert _rel(net(g(x)), ref) < 1e-5
        assert _rel(model(torch.rot90(x, 1, (2, 4))), model(x)) > 1e-3


def test_segmentation_wrapper_around_a_plain_conv_is_exactly_equivariant_with_class_swaps_under_reflections():
    """full_octa: rotations move the logits, improper elements move them and swap classes 1 and 2."""
    torch.manual_seed(2)
    net = canonicalize(nn.Conv3d(1, 3, 3, padding=1), "full_octa", "segment", class_swaps=[(1, 2)], input_size=8,
                       channels=(2, 2)).eval()
    x = torch.rand(2, 1, 10, 10, 10)
    with torch.no_grad():
        ref = net(x)
        for g, improper in _cube_symmetries():
            want = g(ref)[:, [0, 2, 1]] if improper else g(ref)
            assert _rel(net(g(x)), want) < 1e-5
        # without the declared swap the same input is not label-permuting: the check can fail
        plain = canonicalize(nn.Conv3d(1, 3, 3, padding=1), "full_octa", "segment", input_size=8).eval()
        flip = lambda t: torch.flip(t, (2,))  # noqa: E731
        assert _rel(plain(flip(x)), flip(plain(x))[:, [0, 2, 1]]) > 1e-3


def test_segmentation_wrapper_around_monai_unet_is_exactly_equivariant_on_a_non_cubic_volume():
    from monai.networks.nets import UNet

    torch.manual_seed(3)
    unet = UNet(3, 1, 3, channels=(4, 8), strides=(2,), num_res_units=1).eval()
    net = canonicalize(unet, "octa", "segment", input_size=8, channels=(2, 2)).eval()
    x = torch.rand(1, 1, 8, 12, 16)
    with torch.no_grad():
        ref = net(x)
        for g in _cube_rotations():
            assert _rel(net(g(x)), g(ref)) < 1e-5
        assert _rel(unet(torch.rot90(x, 1, (3, 4))), torch.rot90(unet(x), 1, (3, 4))) > 1e-3


def test_symmetric_input_ties_are_averaged_and_stay_equivariant():
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
        for g in _cube_rotations():
            assert _rel(net(g(sphere)), g(ref)) < 1e-5


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
def test_export_and_torchscript_equal_eager(task):
    torch.manual_seed(5)
    model = _classifier() if task == "classify" else nn.Conv3d(1, 3, 3, padding=1)
    net = canonicalize(model, "full_octa", task, input_size=8, channels=(2, 2),
                       class_swaps=[(1, 2)] if task == "segment" else None).eval()
    x = torch.rand(2, 1, 8, 8, 8)
    plain = export(net)
    assert not any(type(m).__module__.startswith("escnn") for m in plain.modules())
    scripted = torch.jit.script(plain)
    with torch.no_grad():
        ref = net(x)
        assert _rel(plain(x), ref) < 1e-6
        assert _rel(scripted(torch.flip(x, (3,))), net(torch.flip(x, (3,)))) < 1e-6


def test_training_forward_passes_the_prior_and_task_gradient_to_the_canonicalizer():
    torch.manual_seed(6)
    net = canonicalize(_classifier(), "octa", "classify", input_size=8, channels=(2, 2)).train()
    out = net(torch.rand(4, 1, 8, 8, 8))
    prior = net.auxiliary_loss()
    assert prior is not None and net.auxiliary_loss() is None  # collected once
    out.sum().backward()  # task loss alone: the straight-through mixture reaches the scorer
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.scorer.parameters())


def _upright_shapes(n, seed):
    """Asymmetric 'chairs': a floor slab, a back wall on one side and a random blob; labels from the blob size."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 16, 16, 16)
    x[:, :, 12:15, 2:14, 2:14] = 1.0
    x[:, :, 4:12, 2:4, 2:14] = 1.0
    y = torch.randint(0, 2, (n,), generator=g)
    for i in range(n):
        d, h, w = (int(v) for v in torch.randint(5, 10, (3,), generator=g))
        r = 2 + int(y[i])
        x[i, :, d - r // 2:d + r, h:h + r, w:w + r] = 1.0
    return (x + 0.05 * torch.rand(x.shape, generator=g)).clamp(0, 1), y.numpy()


def test_fit_canonicalizer_learns_which_way_is_up_and_leaves_the_frozen_model_bit_identical(tmp_path):
    from equivox.training import ArrayClassificationDataset, DataInfo, TrainConfig, fit_canonicalizer

    torch.manual_seed(7)
    model = _classifier()
    model[0].weight.data.normal_()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = _upright_shapes(48, 0)
    xv, yv = _upright_shapes(24, 1)
    train = ArrayClassificationDataset(x, y, None, ["a", "b", "c"])
    val = ArrayClassificationDataset(xv, yv, None, ["a", "b", "c"])
    info = DataInfo(1, 3, ["a", "b", "c"], len(train), len(val), (16, 16, 16))
    cfg = TrainConfig(task="classify", dataset="synthetic", epochs=6, batch_size=8, lr=1e-2, progress=False,
                      canonicalize="octa", canonicalizer_channels=(2, 2), canonicalizer_input_size=8,
                      out_dir=str(tmp_path), extra={"model_summary": False})
    untrained = canonicalize(model, "octa", "classify", channels=(2, 2), input_size=8).identity_rate(xv)
    res = fit_canonicalizer(model, cfg, train, val, info)
    rate = res.model.identity_rate(xv)
    assert rate >= 0.8 > untrained + 0.3, (rate, untrained)  # chance is 1/24
    after = res.model.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert "val_identity_rate" in res.metrics


def test_load_model_reads_pickled_and_torchscript_models_and_refuses_a_bare_state_dict(tmp_path):
    from equivox.training import load_model

    model = _classifier().eval()
    x = torch.rand(2, 1, 8, 8, 8)
    torch.save(model, tmp_path / "whole.pt")
    torch.jit.save(torch.jit.script(model), tmp_path / "scripted.pt")
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    with torch.no_grad():
        for name in ("whole.pt", "scripted.pt"):
            loaded, hp = load_model(tmp_path / name)
            assert hp is None and torch.allclose(loaded(x), model(x))
    with pytest.raises(ValueError, match="weights.pt holds a"):
        load_model(tmp_path / "weights.pt")
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_model(tmp_path / "nope.pt")


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
def test_confidence_mode_is_exact_over_all_48_elements_untrained(task):
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
        for g, _ in _cube_symmetries():
            out = net(g(x))
            assert _rel(out, ref if task == "classify" else g(ref)) < 1e-5
        assert _rel(plain(torch.rot90(x, 1, (2, 3))), plain(x)) > 1e-3  # the plain model is not
        scores = net._scores(x)
        k = int(scores[0].argmax())
        moved = x[:1].permute([0, 1] + [2 + a for a in net.inv_axes[k]])
        moved = moved.flip([2 + f for f in net.inv_flips[k]]) if net.inv_flips[k] else moved
        assert float(confidence_scores(plain(moved))[0]) == pytest.approx(float(scores[0].max()))
    with pytest.raises(ValueError, match="scorer must be one of"):
        canonicalize(plain, "octa", task, scorer="magic")
