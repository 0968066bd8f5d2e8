"""equivox.baselines: version-1 specs and the checkpoints saved with them (tests/fixtures/legacy_checkpoints) still
build, load strictly and give the stored outputs; a version-1 U-Net spec rebuilds the head of its version; the
parameter-matched plain twin of a built classifier (about its parameter count, not invariant) and of a
label-permuting net (the same outputs) is a plain CNN."""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch

from equivox.baselines import build_from_spec, upgrade_spec
from equivox.nets import EquivariantUNet

FIXTURES = Path(__file__).parent / "fixtures" / "legacy_checkpoints"
MODELS = json.loads((FIXTURES / "models.json").read_text())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_legacy_checkpoint_loads_and_gives_the_same_outputs(name):
    """Stored state dicts of version-1 specs load strictly and reproduce the stored outputs, eager and exported."""
    model = build_from_spec(upgrade_spec(MODELS[name]))  # a saved spec: defaults of its time
    model.load_state_dict(torch.load(FIXTURES / f"{name}.pt"), strict=True)
    model.eval()
    x = torch.load(FIXTURES / "input.pt")
    want = torch.load(FIXTURES / f"{name}_out.pt")
    with torch.no_grad():
        got = model(x)
        exported = model.export()(x)
    assert got.shape == want.shape
    assert (got - want).abs().max().item() < 1e-5 * max(1.0, want.abs().max().item())
    assert (exported - want).abs().max().item() < 1e-4 * max(1.0, want.abs().max().item())


def test_matched_baseline_of_a_class_swap_net_is_a_plain_twin_with_the_same_outputs():
    from equivox.baselines import build_from_spec, count_parameters, matched_baseline

    net = build_from_spec({"cls": "EquivariantUNet", "kwargs": dict(
        spatial_dims=3, in_channels=1, out_channels=3, channels=[1, 2], strides=[2], group="full_octa",
        class_swaps=[[1, 2]])})
    twin = matched_baseline(net)
    x = torch.randn(2, 1, 8, 8, 8)
    assert twin(x).shape == net(x).shape == (2, 3, 8, 8, 8)
    assert twin.group == "trivial" and twin.class_permutation is None and net.class_permutation == (0, 2, 1)
    assert abs(count_parameters(twin) - count_parameters(net)) / count_parameters(net) < 0.1


def test_saved_specs_rebuild_the_head_of_their_time():
    """A version-1 spec (no version) without ``head`` rebuilds the linear head, that version's default; a current
    spec keeps its head through upgrade_spec."""
    old = {"cls": "EquivariantUNet", "kwargs": {"in_channels": 1, "out_channels": 3, "channels": [1, 2],
                                                "strides": [2]}}
    assert build_from_spec(upgrade_spec(old)).head_kind == "linear"
    assert build_from_spec(old).head_kind == inspect.signature(EquivariantUNet).parameters["head"].default
    new = build_from_spec({**old, "kwargs": {**old["kwargs"], "head": "stats"}})
    again = build_from_spec(upgrade_spec(new.equivox_spec))
    assert again.head_kind == "stats" and set(again.state_dict()) == set(new.state_dict())


def test_matched_baseline_matches_parameters(small_model):
    from equivox.baselines import count_parameters, matched_baseline
    from equivox.groups import cube_rotations
    from equivox.training import TrainConfig, build_model

    cfg = TrainConfig(task="classify", dataset="lidc", input_size=8, max_train=16, max_val=8, channels=(2, 4),
                      strides=(2,), convs_per_level=1, hidden_features=(8,), epochs=1, batch_size=8, progress=False)
    eq = build_model(cfg, 1, 2)
    base = matched_baseline(eq)
    n_eq, n_b = count_parameters(eq), count_parameters(base)
    assert base.group == "trivial" and abs(n_b - n_eq) / n_eq < 0.1
    x = torch.randn(2, 1, 8, 8, 8)
    assert base(x).shape == eq(x).shape == (2, 2)
    # the baseline is a plain CNN: not invariant under a 90-degree rotation
    g = [e for e in cube_rotations() if not e.is_identity][0]
    base.eval()
    assert not torch.allclose(base(g.apply(x)), base(x), atol=1e-4)
