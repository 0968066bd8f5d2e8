"""equivox.canonicalization.upright: the calibrated confidence canonicalizer is exact before and after fitting
(the cube rotations written in the tests with torch.rot90: conftest's cube_rotation_ops), and a fitted head finds
"up" on held-out items."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from equivox.canonicalization import canonicalize, fit_upright_head


def _classifier(k=6):
    """A plain classifier whose logits depend on pose (a 2x2x2 spatial pooling before the linear layer)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(2), nn.Flatten(),
                        nn.Linear(32, k))
    net.out_channels = k
    return net.eval()


def _segmenter(k=3):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, k, 3, padding=1))
    net.out_channels = k
    return net.eval()


def _upright(n, seed):
    """Asymmetric upright items: a floor slab, a back wall on one side, a random blob."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 16, 16, 16)
    x[:, :, 12:15, 2:14, 2:14] = 1.0
    x[:, :, 4:12, 2:4, 2:14] = 1.0
    for i in range(n):
        d, h, w = (int(v) for v in torch.randint(5, 10, (3,), generator=g))
        r = int(torch.randint(2, 4, (1,), generator=g))
        x[i, :, d:d + r, h:h + r, w:w + r] = 1.0
    return (x + 0.05 * torch.rand(x.shape, generator=g)).clamp(0, 1)


@pytest.mark.parametrize("task", ["classify", "segment"])
def test_calibrated_canonicalizer_is_exact_untrained_and_fitted(task, cube_rotation_ops):
    model = _classifier() if task == "classify" else _segmenter()
    net = canonicalize(model, "octa", task, scorer="calibrated", freeze_model=True).eval()
    x = torch.rand(2, 1, 8, 8, 8)
    for fitted in (False, True):
        if fitted:
            fit_upright_head(net, list(_upright(8, 0)), steps=20)
        ref = net(x)
        for rot in cube_rotation_ops:
            out = net(rot(x))
            want = ref if task == "classify" else rot(ref)
            assert torch.allclose(out, want, atol=1e-5), (fitted, (out - want).abs().max())
    plain = model(cube_rotation_ops[1](x))  # the wrapped model alone is not invariant: the test can fail
    assert not torch.allclose(plain, model(x) if task == "classify" else cube_rotation_ops[1](model(x)), atol=1e-3)


@pytest.mark.parametrize("task", ["classify", "segment"])
def test_fitted_head_finds_up_on_held_out_items(task):
    model = _classifier() if task == "classify" else _segmenter()
    net = canonicalize(model, "octa", task, scorer="calibrated", freeze_model=True).eval()
    held_out = _upright(24, 1)
    info = fit_upright_head(net, list(_upright(48, 0)), seed=0)
    assert info["items"] == 48 and info["identity_rate"] >= 0.9
    assert net.identity_rate(held_out) >= 0.9  # chance is 1/24
    # fitted on items stood on their heads, the head calls those "up": what it learned decides the pose
    upside_down = canonicalize(model, "octa", task, scorer="calibrated", freeze_model=True).eval()
    fit_upright_head(upside_down, list(torch.rot90(_upright(48, 0), 2, (2, 3))), seed=0)
    assert upside_down.identity_rate(held_out) <= 0.2
    again = canonicalize(model, "octa", task, scorer="calibrated", freeze_model=True).eval()
    fit_upright_head(again, list(_upright(48, 0)), seed=0)  # one seed: the same head, the same poses
    assert torch.equal(again.choices(held_out), net.choices(held_out))


def test_fitting_needs_a_calibrated_canonicalizer():
    net = canonicalize(_classifier(), "octa", "classify", scorer="network")
    with pytest.raises(ValueError, match="scorer='calibrated'"):
        fit_upright_head(net, [torch.rand(1, 8, 8, 8)])
