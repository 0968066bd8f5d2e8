"""equivox.training.canonical: fit_canonicalizer learns which way is up for a frozen model (left bit-identical) and
is reproducible (one seed: the same canonicalizer, the same canonical poses and scores; another seed fits another
one); load_model reads pickled and TorchScript models."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from equivox.canonicalization import canonicalize
from equivox.training import ArrayClassificationDataset, DataInfo, TrainConfig, fit_canonicalizer


def _items(n, seed):
    """Asymmetric upright shapes: a floor slab, a back wall and a random blob whose size is the label."""
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


def _fit(tmp_path, name, seed):
    torch.manual_seed(3)  # the frozen model: the same for every fit
    model = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(),
                          nn.Linear(4, 2))
    x, y = _items(32, 0)
    xv, yv = _items(16, 1)
    train = ArrayClassificationDataset(x, y, None, ["a", "b"])
    val = ArrayClassificationDataset(xv, yv, None, ["a", "b"])
    info = DataInfo(1, 2, ["a", "b"], len(train), len(val), (16, 16, 16))
    cfg = TrainConfig(task="classify", dataset="synthetic", epochs=2, batch_size=8, lr=1e-2, progress=False,
                      plots=False, seed=seed, canonicalize="octa", canonicalizer_channels=(2, 2),
                      canonicalizer_input_size=8, out_dir=str(tmp_path / name), extra={"model_summary": False})
    model = fit_canonicalizer(model, cfg, train, val, info).model
    test = _items(12, 2)[0]
    with torch.no_grad():
        return model.scorer.state_dict(), model.choices(test), model(test)


def test_one_seed_gives_the_same_canonicalizer_poses_and_scores(tmp_path):
    w1, poses1, out1 = _fit(tmp_path, "a", seed=0)
    w2, poses2, out2 = _fit(tmp_path, "b", seed=0)
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert torch.equal(poses1, poses2) and torch.equal(out1, out2)
    w3, _, _ = _fit(tmp_path, "c", seed=1)  # the test can fail: another seed is another canonicalizer
    assert not all(torch.equal(w1[k], w3[k]) for k in w1)


def test_fit_canonicalizer_learns_which_way_is_up_and_leaves_the_frozen_model_bit_identical(tmp_path,
                                                                                            small_plain_classifier):
    torch.manual_seed(7)
    model = small_plain_classifier()
    model[0].weight.data.normal_()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = _items(48, 0)
    xv, yv = _items(24, 1)
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


def test_load_model_reads_pickled_and_torchscript_models_and_refuses_a_bare_state_dict(tmp_path,
                                                                                       small_plain_classifier):
    from equivox.training import load_model

    model = small_plain_classifier().eval()
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
