"""equivox.training.fit: a tiny classification fit writes its best and last checkpoints and metrics, its model is
invariant and rebuilds from the checkpoint, and resuming continues the global step (a missing checkpoint refused); a
tiny segmentation fit is exactly equivariant; a directly built model (any torch module, a class-swap U-Net) is
saved so that evaluate and check-equivariance load it back; the learning curve is drawn unless plots are off.
(The output folder, the trainer and the model building: test_run_folder.py, test_trainer.py, test_build.py.)"""
from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
import torch
from torch import nn

from equivox import cli
from equivox.groups import cube_rotations
from equivox.training import TrainConfig, fit, load_checkpoint


TINY_LIDC = dict(task="classify", dataset="lidc", input_size=8, max_train=16, max_val=8, channels=(2, 2), strides=(2,),
                 convs_per_level=1, hidden_features=(8,), epochs=1, batch_size=8, progress=False)
TINY_SEG = dict(task="segment", dataset="chest_ct", downsample=4, patch_size=8, patches_per_epoch=4, val_crop=16,
                channels=(2, 2), strides=(2,), convs_per_level=1, epochs=1, batch_size=2, progress=False)


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory):
    """One tiny classification fit (1 epoch) shared by the tests below."""
    out = tmp_path_factory.mktemp("cls")
    cfg = TrainConfig(**TINY_LIDC, out_dir=str(out))
    return cfg, fit(cfg)


def test_fit_classification_writes_checkpoints_and_metrics(cls_run):
    cfg, res = cls_run
    assert res.global_step == 2  # 16 items / batch 8, one epoch
    assert res.best_checkpoint.is_file() and res.last_checkpoint.name == "last.ckpt"
    rows = list(csv.DictReader(open(res.metrics_csv)))
    assert any(r.get("val_loss") for r in rows) and any(r.get("train_loss_step") for r in rows)
    assert 0.0 <= res.metrics["val_acc"] <= 1.0
    # the trained equivariant classifier is invariant under real cube rotations
    x = torch.rand(3, 1, 8, 8, 8)
    with torch.no_grad():
        ref = res.model(x)
        for g in cube_rotations()[1:5]:
            assert torch.allclose(res.model(g.apply(x)), ref, atol=1e-4)
    # a checkpoint rebuilds the same model
    model, hp = load_checkpoint(res.last_checkpoint)
    assert hp["config"]["input_size"] == 8
    res.module.load_state_dict(torch.load(res.last_checkpoint, weights_only=False)["state_dict"])
    with torch.no_grad():
        assert torch.allclose(model(x), res.module.model.eval()(x), atol=1e-6)


def test_resume_continues_global_step(cls_run, tmp_path):
    cfg, res = cls_run
    cfg2 = cfg.merged({"epochs": 2, "resume": str(res.last_checkpoint), "out_dir": str(tmp_path)})
    res2 = fit(cfg2)
    assert res2.global_step == 2 * res.global_step
    assert res2.trainer.current_epoch == 2
    with pytest.raises(FileNotFoundError, match="resume"):
        fit(cfg.merged({"resume": str(tmp_path / "missing.ckpt")}))


def test_fit_segmentation_end_to_end_and_rotation_eval(tmp_path):
    from equivox.evaluation import evaluate_segmentation, rotation_set
    from equivox.training import bundled_volume, center_crop

    cfg = TrainConfig(**TINY_SEG, out_dir=str(tmp_path))
    res = fit(cfg)
    assert res.global_step == 2 and "val_dice" in res.metrics
    img, lab, names = bundled_volume("chest_ct", 4)
    data = [{"image": center_crop(img, (16,) * 3), "label": center_crop(lab, (16,) * 3)}]
    rep = evaluate_segmentation(res.model, data, rotation_set("grid", "octa")[:6], num_classes=6, progress=False,
                                check_equivariance=True)
    s = rep.summary()
    assert s["std_grid"] < 1e-6  # exactly equivariant: the same Dice under every grid rotation ...
    # ... and not because the prediction is constant: the logits vary over the volume, and the measured
    # equivariance error is tiny
    with torch.no_grad():
        logits = res.model(data[0]["image"][None])
    assert float(logits.std(dim=(2, 3, 4)).max()) > 1e-3 * float(logits.abs().max())
    assert rep.equivariance_error is not None and rep.equivariance_error < 1e-4


def test_fit_with_a_directly_built_class_swap_model_loads_back(tmp_path):
    """``fit(cfg, model=EquivariantUNet(..., class_swaps=[(1, 2)]))``: the checkpoint rebuilds the same network."""
    from equivox.nets import EquivariantUNet

    imgs, labs = tmp_path / "img", tmp_path / "lab"
    imgs.mkdir(), labs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        lab = np.zeros((8, 8, 8), np.uint8)
        lab[1:4, 2:6, 2:6], lab[5:8, 2:6, 2:6] = 1, 2
        nib.save(nib.Nifti1Image(lab * 100.0 + rng.normal(0, 5, lab.shape).astype(np.float32), np.eye(4)),
                 str(imgs / f"c{i}.nii.gz"))
        nib.save(nib.Nifti1Image(lab, np.eye(4)), str(labs / f"c{i}.nii.gz"))
    torch.manual_seed(0)
    net = EquivariantUNet(3, 1, 3, channels=(1, 1), strides=(2,), group="full_octa", convs_per_level=1,
                          class_swaps=[(1, 2)])
    cfg = TrainConfig(task="segment", image_dir=str(imgs), label_dir=str(labs), num_classes=3, patch_size=8,
                      patches_per_epoch=2, val_crop=8, epochs=1, batch_size=1, progress=False, group="full_octa",
                      out_dir=str(tmp_path / "run"))
    res = fit(cfg, model=net)
    model, hp = load_checkpoint(res.last_checkpoint)
    assert hp["model_spec"]["kwargs"]["class_swaps"] == [[1, 2]]
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model(x), res.model.eval()(x), atol=1e-5)
    assert model.class_permutation is not None and list(model.class_permutation) == [0, 2, 1]


def _plain_classifier():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(2, 2))


def _pooled_equivariant():  # the benchmark's wrapper around a directly built equivox network (demo checkpoints)
    from equivox.benchmark.run import PooledInput
    from equivox.nets import InvariantClassifier

    torch.manual_seed(0)
    return PooledInput(InvariantClassifier(3, 1, 2, channels=(2, 2), strides=(2,), convs_per_level=1,
                                           hidden_features=(8,)), factor=1)


@pytest.mark.parametrize("make", [_plain_classifier, _pooled_equivariant], ids=["sequential", "pooled_input"])
def test_evaluate_loads_a_checkpoint_written_by_fit_with_any_model(make, tmp_path, capsys, npz_config):
    res = fit(npz_config(tmp_path, tmp_path / "run"), model=make())
    model, hp = load_checkpoint(res.last_checkpoint)
    assert hp["model_spec"]["cls"] == "pickled" and type(model) is type(res.model)
    x = torch.rand(2, 1, 8, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), res.model(x))  # one epoch: best == last
    ev = tmp_path / "ev"
    assert cli.main(["evaluate", str(res.last_checkpoint), "--rotations", "grid", "--out", str(ev),
                     "--no-progress"]) == 0
    assert f"{type(model).__name__} " in capsys.readouterr().out
    assert len(json.loads((ev / "report.json").read_text())["rows"]) == 24
    assert cli.main(["check-equivariance", "--checkpoint", str(res.last_checkpoint), "--size", "8", "--out",
                     str(tmp_path / "chk")]) == 0


def test_fit_writes_a_learning_curve_unless_plots_are_off(tmp_path, monkeypatch, write_npz, tiny_classify):
    from equivox.evaluation import plots

    figs = []
    real = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path, rect=None: (figs.append(fig), real(fig, path, rect))[1])
    rng = np.random.default_rng(0)
    data = write_npz(tmp_path / "d.npz", images=rng.random((12, 8, 8, 8)).astype(np.float32), labels=np.arange(12) % 2)
    cfg = TrainConfig(**{**tiny_classify, "dataset": str(data), "input_size": None, "epochs": 2},
                      out_dir=str(tmp_path / "out"))
    res = fit(cfg)
    png = res.out_dir / "learning_curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and len(figs) == 1
    loss_ax, score_ax = figs[0].axes
    assert "d.npz" in loss_ax.get_title() and "InvariantClassifier" in loss_ax.get_title()
    assert score_ax.get_ylim() == (0.0, 1.0)
    assert [len(line.get_xdata()) for line in loss_ax.get_lines() + score_ax.get_lines()] == [2, 2, 2]
    assert {t.get_text() for t in loss_ax.get_legend().get_texts()} == {"training loss", "validation loss",
                                                                        "validation acc"}
    off = fit(cfg.merged({"plots": False, "out_dir": str(tmp_path / "off")}))
    assert not (off.out_dir / "learning_curve.png").exists() and len(figs) == 1
    assert cli.train_config_from_args(cli.build_parser().parse_args(["train", "--no-plots"])).plots is False
