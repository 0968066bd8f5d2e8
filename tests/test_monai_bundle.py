"""The example MONAI bundle (examples/monai_bundle): parse, one training iteration, checkpoint, inference with
the SupervisedEvaluator, rotation-robust evaluation, verify_net_in_out. Tiny sizes (12 mm spacing, 16^3 patches)
via the same overrides a user would pass on the command line."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, run, verify_net_in_out

from equivox.nets import EquivariantUNet

BUNDLE = Path(__file__).resolve().parents[1] / "examples" / "monai_bundle"
CONFIGS = BUNDLE / "configs"
TINY = {"spacing": [12.0, 12.0, 12.0], "patch_size": [16, 16, 16], "num_samples": 1, "repeats": 1,
        "num_epochs": 1, "batch_size": 1}


def _parser(name: str, bundle_root: Path, **override) -> ConfigParser:
    parser = ConfigParser()
    parser.read_meta(str(CONFIGS / "metadata.json"))
    parser.read_config(str(CONFIGS / name))
    parser.update({"bundle_root": str(bundle_root), **override})
    return parser


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Run one training iteration of configs/train.json and one validation pass (which saves models/model.pt)."""
    root = tmp_path_factory.mktemp("bundle")
    parser = _parser("train.json", root, **TINY)
    parser["train"]["handlers"] = parser["train"]["handlers"][1:]  # validation is run explicitly below
    parser.parse()
    parser.get_parsed_content("initialize")  # set_determinism(seed)
    net = parser.get_parsed_content("network")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    trainer = parser.get_parsed_content("train#trainer")
    trainer.run()
    evaluator = parser.get_parsed_content("validate#evaluator")
    evaluator.run()
    return dict(root=root, parser=parser, net=net, before=before, trainer=trainer, evaluator=evaluator)


def test_bundle_network_is_an_equivox_unet_by_dotted_path():
    parser = _parser("train.json", Path("."))
    assert parser["network_def"]["_target_"] == "equivox.nets.EquivariantUNet"
    net = parser.get_parsed_content("network_def")
    assert isinstance(net, EquivariantUNet) and net.group == "octa" and net.out_channels == 6
    aug = [t["_target_"] for t in parser["train"]["augmentation"]]
    assert "equivox.data.RandGridRotatedd" in aug


def test_bundle_one_training_iteration(trained):
    trainer, net, before = trained["trainer"], trained["net"], trained["before"]
    assert trainer.state.iteration == 1 and trainer.state.epoch == 1
    assert np.isfinite(float(trainer.state.output[0]["loss"]))
    assert any(not torch.equal(v, before[k]) for k, v in net.state_dict().items())
    x = trainer.state.batch[0]["image"]  # first item of the (decollated) batch: a (C, D, H, W) patch
    assert tuple(x.shape) == (1, 16, 16, 16)


def test_bundle_validation_saves_checkpoint(trained):
    dice = trained["evaluator"].state.metrics["val_mean_dice"]
    assert 0.0 <= dice <= 1.0
    ckpt = trained["root"] / "models" / "model.pt"
    assert ckpt.is_file()
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    for k, v in trained["net"].state_dict().items():
        torch.testing.assert_close(state[k], v)


def test_bundle_inference_and_rotation_evaluation(trained):
    root = trained["root"]
    over = {k: TINY[k] for k in ("spacing", "patch_size")}
    run("run", meta_file=str(CONFIGS / "metadata.json"), config_file=str(CONFIGS / "inference.json"),
        bundle_root=str(root), **over)
    seg = root / "eval" / "chest_ct_3mm_image_seg.nii.gz"
    assert seg.is_file()
    arr = np.asarray(nib.load(str(seg)).dataobj)
    assert arr.shape[:3] == (32, 32, 28) and arr.min() >= 0 and arr.max() <= 5  # 12 mm grid, padded to k=4
    # rotation-robust evaluation: identity + 3 grid rotations (exact) of the whole volume
    rotations = "$equivox.evaluation.rotation_set('grid', group='octa')[:4]"
    run("evaluate_rotations", meta_file=str(CONFIGS / "metadata.json"),
        config_file=str(CONFIGS / "inference.json"), bundle_root=str(root), rotations=rotations, **over)
    report = json.loads((root / "eval" / "rotation_report.json").read_text())
    rows = report["rows"]
    assert len(rows) == 4 and (root / "eval" / "rotation_dice.png").is_file()
    dices = [r["dice"] for r in rows]
    assert all(d is not None and 0.0 <= d <= 1.0 for d in dices)
    # the network is equivariant and the rotations are exact: the same Dice on every rotation of the volume ...
    assert max(dices) - min(dices) < 1e-6, dices
    # ... and not because its prediction is constant: the logits vary over the volume and the measured
    # equivariance error of the trained network is tiny
    from equivox.testing import equivariance_errors

    net = trained["net"].eval()
    x = torch.randn(1, 1, 16, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = net(x)
        errs = equivariance_errors(net, x, "octa")
    assert float(logits.std(dim=(2, 3, 4)).max()) > 1e-3 * float(logits.abs().max())
    assert max(e.relative for e in errs) < 1e-4, errs


def test_bundle_verify_net_in_out():
    verify_net_in_out(net_id="network_def", meta_file=str(CONFIGS / "metadata.json"),
                      config_file=str(CONFIGS / "train.json"), n=2)
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == 6


def test_bundle_verify_net_in_out_rejects_wrong_metadata(tmp_path):
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    meta["network_data_format"]["outputs"]["pred"]["num_channels"] = 5
    bad = tmp_path / "metadata.json"
    bad.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="output channel number `6` doesn.t match: `5`"):
        verify_net_in_out(net_id="network_def", meta_file=str(bad), config_file=str(CONFIGS / "train.json"))
