"""equivox.baselines: version-1 specs and the checkpoints saved with them (tests/fixtures/legacy_checkpoints) still
build, load strictly and give the stored outputs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from equivox.baselines import build_from_spec, upgrade_spec

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
