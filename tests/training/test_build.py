"""equivox.training.build: the model a TrainConfig describes: ``arch`` names any registered model (the MONAI U-Net
and EquivariantMonaiUNet train, reload and evaluate), ``model`` arguments reach the constructor and unknown ones are
refused naming the valid ones, and a network much wider than its ``channels`` suggest warns in one line."""
from __future__ import annotations

import pytest

from equivox import cli
from equivox.training import TrainConfig, build_model


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


def test_arch_takes_any_registered_model(tmp_path):
    """arch= reads the model registry: EquivariantMonaiUNet trains through the normal path and reloads."""
    from equivox.training import TrainConfig, fit, load_checkpoint

    cfg = TrainConfig(task="segment", dataset="chest_ct", downsample=4, patch_size=16, val_crop=16,
                      patches_per_epoch=4, batch_size=2, epochs=1, channels=(1, 2), strides=(2,),
                      arch="EquivariantMonaiUNet", out_dir=str(tmp_path), progress=False,
                      extra={"model_summary": False}).validate()
    res = fit(cfg)
    assert type(res.model).__name__ == "EquivariantMonaiUNet" and res.global_step == 2
    model, _ = load_checkpoint(res.last_checkpoint)
    assert type(model).__name__ == "EquivariantMonaiUNet"
    with pytest.raises(ValueError, match="registered model"):
        TrainConfig(task="segment", arch="NoSuchNet").validate()


def test_model_args_reach_the_constructor_and_unknown_keys_fail():
    cfg = TrainConfig(task="segment", group="c4_axial", channels=(1, 1), strides=(2,), convs_per_level=1,
                      model={"head": "oriented", "norm": None})
    model = build_model(cfg, 1, 3)
    assert model.head_kind == "oriented" and model.equivox_spec["kwargs"]["head"] == "oriented"
    with pytest.raises(ValueError, match="unknown model argument hed for EquivariantUNet; valid: .*head"):
        build_model(TrainConfig(task="segment", group="c4_axial", model={"hed": "oriented"}), 1, 3)
    with pytest.raises(ValueError, match=r"unknown extra keys \['head'\]"):
        TrainConfig(extra={"head": "oriented"})
    with pytest.raises(ValueError, match="did you mean 'c4_axial'"):
        TrainConfig(group="c4_axal")


def test_wide_equivariant_net_warns_in_one_line():
    from equivox.nets import EquivariantMonaiUNet
    from equivox.training.build import warn_if_wide

    narrow = EquivariantMonaiUNet(3, 1, 2, channels=(2, 4), strides=(2,), group="octa")
    with warnings_as_list() as w:
        warn_if_wide(narrow)
    assert not w
    wide = EquivariantMonaiUNet(3, 1, 2, channels=(2, 44), strides=(2,), group="octa")  # 44 fields x 24 = 1056
    with warnings_as_list() as w:
        warn_if_wide(wide)
    assert len(w) == 1 and "tensors up to 1056 channels wide" in str(w[0].message) and "\n" not in str(w[0].message)


def warnings_as_list():
    import warnings

    class _Ctx(warnings.catch_warnings):
        def __enter__(self):
            out = super().__enter__()
            warnings.simplefilter("always")
            return out

    return _Ctx(record=True)
