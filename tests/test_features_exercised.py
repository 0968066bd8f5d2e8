"""Features the README promises that no other test exercised: each one runs and shows a real signal."""
from pathlib import Path

import pytest
import torch
import yaml

from equivox import cli
from equivox.training import TrainConfig, fit, load_yaml_config

ROOT = Path(__file__).resolve().parents[1]
TINY_SEG = dict(task="segment", dataset="chest_ct", downsample=4, patch_size=8, patches_per_epoch=4, val_crop=16,
                channels=(2, 2), strides=(2,), convs_per_level=1, epochs=1, batch_size=2, progress=False)


@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_loads_into_a_train_config(path):
    raw = yaml.safe_load(path.read_text())
    cfg = TrainConfig.from_dict(load_yaml_config(path))
    section = raw.get("train", raw)
    for key, value in section.items():  # every key in the file reached the config
        got = getattr(cfg, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key


def test_monai_unet_arch_trains_and_evaluates_from_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--task", "segment", "--dataset", "chest_ct", "--downsample", "4", "--patch-size", "8",
            "--patches-per-epoch", "4", "--val-crop", "16", "--channels", "2,2", "--strides", "2", "--epochs", "1",
            "--batch-size", "2", "--arch", "monai_unet", "--out", str(out), "--no-progress"]
    assert cli.main(args) == 0
    ckpt = out / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    ev = tmp_path / "eval"
    assert cli.main(["evaluate", str(ckpt), "--n-random", "1", "--out", str(ev), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "UNet" in text or "dice" in text
    assert any(ev.glob("*.json"))


def test_so3_augmentation_trains_and_changes_what_the_model_sees(tmp_path):
    torch.manual_seed(0)
    res_none = fit(TrainConfig(**TINY_SEG, out_dir=str(tmp_path / "none")))
    res_so3 = fit(TrainConfig(**{**TINY_SEG, "augment": "so3"}, out_dir=str(tmp_path / "so3")))
    assert res_so3.global_step == res_none.global_step == 2
    w0 = torch.cat([p.flatten() for p in res_none.model.parameters()])
    w1 = torch.cat([p.flatten() for p in res_so3.model.parameters()])
    assert (w0 - w1).abs().max() > 1e-6  # same seed, rotated patches: different updates


@pytest.mark.parametrize("pooling", ["group", "norm"])
def test_classifier_pooling_modes_export(pooling):
    from equivox.nets import InvariantClassifier

    torch.manual_seed(0)
    clf = InvariantClassifier(channels=(2, 2), strides=(2,), group="octa", pooling=pooling).eval()
    x = torch.randn(2, 1, 8, 8, 8)
    y = clf(x)
    assert (clf(torch.rot90(x, 1, (2, 4))) - y).abs().max() < 1e-4 * y.abs().max()
    assert (clf.export()(x) - y).abs().max() < 1e-4


def test_padding_mode_and_dropout():
    from equivox.nn import EquivariantConv3d, FieldSpec
    from equivox.nets import EquivariantUNet

    torch.manual_seed(0)
    conv = EquivariantConv3d(FieldSpec.scalar("octa", 1), FieldSpec.hidden("octa", 1), 3, padding_mode="replicate")
    x = torch.randn(1, 1, 8, 8, 8) + 5.0
    zeros = EquivariantConv3d(FieldSpec.scalar("octa", 1), FieldSpec.hidden("octa", 1), 3)
    zeros.load_state_dict(conv.state_dict())
    assert (conv(x) - zeros(x))[..., 0].abs().max() > 1e-3  # the border differs ...
    assert (conv(x) - zeros(x))[..., 3:5, 3:5, 3:5].abs().max() < 1e-5  # ... the interior does not
    net = EquivariantUNet(channels=(6, 6), strides=(2,), group="octa", dropout=0.3)
    net.train()
    x = torch.randn(1, 1, 8, 8, 8)
    assert not torch.equal(net(x), net(x))  # dropout active in training
    net.eval()
    assert torch.equal(net(x), net(x))
    y = net(x)
    assert (net(torch.rot90(x, 1, (2, 3))) - torch.rot90(y, 1, (2, 3))).abs().max() < 1e-4 * y.abs().max()
