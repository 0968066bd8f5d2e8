"""equivox.training.canonical: fitting a canonicalizer is reproducible (one seed: the same canonicalizer, the same
canonical poses and scores); another seed fits another one."""
from __future__ import annotations

import torch
from torch import nn

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
