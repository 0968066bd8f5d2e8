"""equivox.benchmark.competitors: the competitor registry (built-in rows, users' own rows with a builder or a
built-in kind, names per task, reuse order; bad rows refused, by the registry and by the runs) and build_network:
an equivariant row is equivariant under a cube rotation written here with torch.rot90, a plain row of matched
parameters is not."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from equivox.baselines import count_parameters
from equivox.benchmark import (COMPETITORS, BuildContext, build_network, competitor_names, get_competitor,
                               register_competitor, run_classification, run_segmentation, unregister_competitor)
from equivox.benchmark import competitors as registry
from equivox.benchmark.competitors import check_order
from equivox.nets import InvariantClassifier

BASE = dict(spatial_dims=3, in_channels=1, out_channels=2, channels=[2, 2], strides=[2])


@pytest.fixture
def scratch(monkeypatch):
    """The registry's dict replaced by a copy for one test."""
    monkeypatch.setattr(registry, "COMPETITORS", dict(registry.COMPETITORS))
    return registry.COMPETITORS


def _ctx(seed=0):
    torch.manual_seed(0)
    ref = InvariantClassifier(**BASE, group="octa")
    return BuildContext("classify", 1, 2, "octa", ref, BASE, seed, input_size=8)


def test_built_in_rows_per_task_and_unknown_names():
    cls, seg = competitor_names("classify"), competitor_names("segment")
    assert "equivariant (octa)" in cls and "equivariant (octa)" in seg
    assert "MONAI ResNet + grid aug" in cls and "MONAI ResNet + grid aug" not in seg
    assert set(cls) | set(seg) <= set(competitor_names()) == set(COMPETITORS)
    with pytest.raises(ValueError, match=r"unknown segment competitor 'MONAI ResNet \+ grid aug'; known:"):
        get_competitor("MONAI ResNet + grid aug", "segment")


def test_equivariant_row_is_invariant_and_the_plain_row_is_matched_but_not():
    ctx = _ctx()
    eq = build_network(get_competitor("equivariant (octa)", "classify"), ctx).eval()
    plain = build_network(get_competitor("plain (matched params)", "classify"), ctx).eval()
    assert abs(count_parameters(plain) / count_parameters(ctx.reference) - 1) < 0.35
    x = torch.randn(2, 1, 8, 8, 8, generator=torch.Generator().manual_seed(1))
    turn = lambda t: torch.rot90(t, 1, (2, 4))  # noqa: E731
    with torch.no_grad():
        y = eq(x)
        assert (eq(turn(x)) - y).abs().max() < 1e-4 * y.abs().max()
        p = plain(x)
        assert (plain(turn(x)) - p).abs().max() > 1e-3 * p.abs().max()


def test_user_rows_register_build_and_unregister(scratch):
    def builder(ctx):
        return nn.Sequential(nn.Flatten(), nn.Linear(ctx.input_size ** 3 * ctx.in_channels, ctx.n_classes))

    comp = register_competitor("my linear", builder, tasks=("classify",), train={"lr": 1e-3})
    assert comp.arch == "custom" and get_competitor("my linear", "classify") is comp
    net = build_network(comp, _ctx())
    assert net(torch.zeros(1, 1, 8, 8, 8)).shape == (1, 2)
    with pytest.raises(ValueError, match="already registered .*replace=True"):
        register_competitor("my linear", builder)
    assert register_competitor("my linear", builder, replace=True) is not comp
    kind = register_competitor("plain + so3 + canonicalizer", arch="baseline", augment="so3", canonicalize="octa")
    assert kind.canonicalize == "octa" and kind.augment == "so3"
    assert unregister_competitor("my linear").name == "my linear" and "my linear" not in competitor_names()
    with pytest.raises(ValueError, match="built-in competitor and cannot be removed"):
        unregister_competitor("equivariant (octa)")
    with pytest.raises(ValueError, match="pass a builder"):
        register_competitor("no kind")
    bad = register_competitor("not a module", lambda ctx: "net", tasks=("classify",))
    with pytest.raises(ValueError, match="builder returned str, not an nn.Module"):
        build_network(bad, _ctx())


def test_a_reused_model_must_be_listed_first():
    tta = next(n for n in competitor_names("classify") if get_competitor(n, "classify").tta_of)
    first = get_competitor(tta, "classify").tta_of
    assert [c.name for c in check_order([first, tta], "classify")] == [first, tta]
    with pytest.raises(ValueError, match="list that competitor before it"):
        check_order([tta, first], "classify")


def test_register_competitor_rejects_bad_rows(bars_data, tiny_settings):
    with pytest.raises(ValueError, match="already registered"):
        register_competitor("plain + grid aug", arch="baseline")
    with pytest.raises(ValueError, match="unknown training options"):
        register_competitor("x", lambda ctx: nn.Identity(), train={"learning_rate": 1})
    with pytest.raises(ValueError, match="augment"):
        register_competitor("x", lambda ctx: nn.Identity(), augment="rot")
    with pytest.raises(ValueError, match="builder"):
        register_competitor("x")
    with pytest.raises(ValueError, match="built-in"):
        unregister_competitor("plain (matched params)")
    with pytest.raises(ValueError, match="list that competitor before it"):
        run_classification(bars_data(), ["plain + grid aug + TTA24", "plain + grid aug"], verbose=False,
                           **tiny_settings)
    with pytest.raises(ValueError, match="unknown segment competitor"):
        run_segmentation("chest_ct", ["MONAI ResNet + grid aug"], verbose=False)
    assert "x" not in COMPETITORS
