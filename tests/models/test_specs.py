"""equivox.models.specs: one spec getter (spec_of) for every way a network is made, one builder, the old names in
their old modules, and the pickled architecture of models without a spec."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import equivox.baselines
import equivox.models
import equivox.nets.registry
from equivox.models import (PICKLED_MODEL, SPEC_VERSION, build_from_spec, checkpoint_spec, model_from_skeleton,
                            model_spec, spec_of, upgrade_spec)
from equivox.nets import EquivariantUNet

KW = dict(spatial_dims=3, in_channels=1, out_channels=2, channels=[1, 2], strides=[2], group="octa")
X = torch.randn(1, 1, 8, 8, 8, generator=torch.Generator().manual_seed(0))


def test_old_names_are_the_one_implementation():
    for name in ("build_from_spec", "upgrade_spec", "SPEC_VERSION", "model_spec"):
        assert getattr(equivox.baselines, name) is getattr(equivox.models, name), name
    from equivox.training.fit import spec_of as spec_of_in_fit

    assert spec_of_in_fit is spec_of is equivox.nets.registry.spec_of
    assert equivox.baselines.build_from_spec is equivox.nets.registry.build_from_spec


def test_spec_of_built_from_spec_and_constructed_directly():
    """A spec-built network returns its spec; a directly constructed one its recorded constructor arguments under
    its registered name (and rebuilds the same architecture); a module without either gives None."""
    built = build_from_spec({"cls": "EquivariantUNet", "kwargs": KW})
    assert spec_of(built) == {"cls": "EquivariantUNet", "kwargs": KW, "version": SPEC_VERSION}
    direct = EquivariantUNet(3, 1, 2, channels=(1, 2), strides=(2,), group="octa", head="stats")
    spec = spec_of(direct)
    assert spec["cls"] == "EquivariantUNet" and spec["version"] == SPEC_VERSION
    assert spec["kwargs"]["channels"] == [1, 2] and spec["kwargs"]["head"] == "stats"
    rebuilt = build_from_spec(spec)
    rebuilt.load_state_dict(direct.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.allclose(rebuilt.eval()(X), direct.eval()(X))
    assert spec_of(nn.Conv3d(1, 2, 1)) is None
    with pytest.raises(ValueError, match="has no equivox_spec"):
        model_spec(nn.Conv3d(1, 2, 1))
    assert model_spec(direct) == spec


def test_upgrade_spec_fills_the_defaults_of_its_time():
    old = {"cls": "EquivariantUNet", "kwargs": {k: v for k, v in KW.items()}}  # version 1: no "version"
    assert upgrade_spec(old)["kwargs"]["head"] == "linear" and upgrade_spec(old)["version"] == SPEC_VERSION
    new = upgrade_spec({**old, "version": SPEC_VERSION})
    assert "head" not in new["kwargs"]


def test_canonicalized_spec_rebuilds_through_the_registry():
    inner = {"cls": "EquivariantUNet", "kwargs": {**KW, "group": "trivial", "channels": [2, 2]}}
    spec = {"cls": "Canonicalized", "kwargs": dict(model=inner, group="octa", task="segment", input_size=8)}
    torch.manual_seed(0)
    net = build_from_spec(spec)
    assert type(net).__name__ == "Canonicalized" and net.equivox_spec["cls"] == "Canonicalized"
    torch.manual_seed(1)
    again = build_from_spec(net.equivox_spec)
    again.load_state_dict(net.state_dict(), strict=True)


def test_checkpoint_spec_spec_or_pickled_architecture():
    net = build_from_spec({"cls": "EquivariantUNet", "kwargs": KW})
    assert checkpoint_spec(net) == (spec_of(net), None)
    plain = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.BatchNorm3d(4), nn.Conv3d(4, 2, 1)).eval()
    spec, blob = checkpoint_spec(plain)
    assert spec["cls"] == PICKLED_MODEL and spec["module"] == "torch.nn.modules.container.Sequential"
    assert isinstance(blob, bytes) and len(blob) < 4096 + sum(p.numel() * 4 for p in plain.parameters())
    back = model_from_skeleton(blob, plain.state_dict()).eval()
    with torch.no_grad():
        assert torch.equal(back(X), plain(X))
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "2.weight"'):
        model_from_skeleton(blob, {k: v for k, v in plain.state_dict().items() if not k.startswith("2.")})
    unpicklable = nn.Conv3d(1, 1, 1)
    unpicklable.hook = lambda x: x
    with pytest.raises(Exception):
        checkpoint_spec(unpicklable)
