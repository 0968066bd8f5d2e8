"""equivox.models.load_model: one loader for every model source (equivox checkpoint, pickled model, TorchScript,
MONAI bundle folder); checkpoints holding version-1 specs and their stored state dicts (tests/fixtures/
legacy_checkpoints) load through it; equivox.training's load_checkpoint / load_model answer as it does."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from equivox.models import PICKLED_MODEL, SKELETON_KEY, load_model, model_skeleton, pickled_spec
from equivox.training import load_checkpoint
from equivox.training import load_model as training_load_model

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_checkpoints"
LEGACY = json.loads((FIXTURES / "models.json").read_text())


def _checkpoint(path, state, spec, **hp):
    """A file shaped as fit's Lightning checkpoints: ``model.*`` weights and the hyper-parameters."""
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()},
                "hyper_parameters": {"model_spec": spec, "config": {"task": "segment"}, "num_classes": 2, **hp},
                "epoch": 0}, path)
    return path


@pytest.mark.parametrize("name", ["unet_octa", "clf_octa", "monai_octa"])
def test_legacy_checkpoint_loads_through_the_one_loader(name, tmp_path):
    """A checkpoint holding a stored state dict and its version-1 spec (no "version": the U-Net's head default of
    version 1 is filled in) loads strictly and gives the stored outputs, under any file name."""
    state = torch.load(FIXTURES / f"{name}.pt")
    x, want = torch.load(FIXTURES / "input.pt"), torch.load(FIXTURES / f"{name}_out.pt")
    for path in (tmp_path / "legacy.ckpt", tmp_path / "legacy.bin"):
        _checkpoint(path, state, LEGACY[name])
        for model, hp in (load_model(path), load_checkpoint(path), training_load_model(path)):
            assert hp["model_spec"] == LEGACY[name] and not model.training
            with torch.no_grad():
                got = model(x)
            assert (got - want).abs().max().item() < 1e-5 * max(1.0, want.abs().max().item())


def test_pickled_architecture_checkpoint_and_its_errors(tmp_path):
    net = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.ReLU()).eval()
    x = torch.randn(1, 1, 4, 4, 4)
    path = tmp_path / "p.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in net.state_dict().items()},
                "hyper_parameters": {"model_spec": pickled_spec(net)}, SKELETON_KEY: model_skeleton(net)}, path)
    model, hp = load_model(path)
    assert hp["model_spec"]["cls"] == PICKLED_MODEL
    with torch.no_grad():
        assert torch.equal(model(x), net(x))
    torch.save({"state_dict": {}, "hyper_parameters": {"model_spec": pickled_spec(net)}}, path)
    with pytest.raises(ValueError, match=f"stored pickled, but the checkpoint has no '{SKELETON_KEY}'"):
        load_model(path)
    torch.save({"state_dict": {}, "hyper_parameters": {"model_spec": {}}}, path)
    with pytest.raises(ValueError, match=f"checkpoint {path} holds weights only"):
        load_checkpoint(path)


def test_pickled_torchscript_and_bare_state_dict_files(tmp_path):
    net = nn.Conv3d(1, 2, 1).eval()
    x = torch.randn(1, 1, 2, 2, 2)
    torch.save(net, tmp_path / "m.pt")
    model, hp = load_model(tmp_path / "m.pt")
    assert hp is None and torch.equal(model(x), net(x))
    with pytest.raises(ValueError, match="holds a saved Conv3d model without equivox training settings"):
        load_checkpoint(tmp_path / "m.pt")  # settings required
    net.equivox_hparams = {"config": {"task": "classify"}}
    torch.save(net, tmp_path / "c.pt")
    assert load_checkpoint(tmp_path / "c.pt")[1] == {"config": {"task": "classify"}}
    torch.jit.save(torch.jit.script(nn.Conv3d(1, 2, 1)), str(tmp_path / "s.pt"))
    scripted, hp = load_model(tmp_path / "s.pt")
    assert hp is None and isinstance(scripted, torch.jit.ScriptModule)
    torch.save(net.state_dict(), tmp_path / "w.pt")
    with pytest.raises(ValueError, match=r"holds a OrderedDict, not a model; save the whole model"):
        load_model(tmp_path / "w.pt")
    with pytest.raises(ValueError, match="is not an equivox checkpoint"):
        load_checkpoint(tmp_path / "w.pt")
    with pytest.raises(FileNotFoundError, match="model not found"):
        load_model(tmp_path / "none.pt")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.ckpt")


def test_monai_bundle_folder(tmp_path):
    from monai.networks.nets import UNet

    net = UNet(3, 1, 2, channels=(2, 4), strides=(2,)).eval()
    (tmp_path / "b" / "configs").mkdir(parents=True)
    (tmp_path / "b" / "models").mkdir()
    (tmp_path / "b" / "configs" / "inference.json").write_text(json.dumps({"network_def": {
        "_target_": "UNet", "spatial_dims": 3, "in_channels": 1, "out_channels": 2, "channels": [2, 4],
        "strides": [2]}}))
    with pytest.raises(FileNotFoundError, match="no trained weights"):
        load_model(tmp_path / "b")
    torch.save(net.state_dict(), tmp_path / "b" / "models" / "model.pt")
    model, hp = load_model(tmp_path / "b")
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        assert hp is None and torch.equal(model(x), net(x))
