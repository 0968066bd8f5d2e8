"""equivox.training and equivox.baselines: config, data helpers, matched baselines, tiny end-to-end fits, resume."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from equivox.baselines import count_parameters, matched_baseline
from equivox.groups import cube_rotations
from equivox.training import (TrainConfig, augmentation_transform, build_model, fit, load_checkpoint, resize_grids,
                              subsample_indices)

TINY_CLS = dict(task="classify", dataset="lidc", input_size=8, max_train=16, max_val=8, channels=(2, 2), strides=(2,),
                convs_per_level=1, hidden_features=(8,), epochs=1, batch_size=8, progress=False)
TINY_SEG = dict(task="segment", dataset="chest_ct", downsample=4, patch_size=8, patches_per_epoch=4, val_crop=16,
                channels=(2, 2), strides=(2,), convs_per_level=1, epochs=1, batch_size=2, progress=False)


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory):
    """One tiny classification fit (1 epoch) shared by the tests below."""
    out = tmp_path_factory.mktemp("cls")
    cfg = TrainConfig(**TINY_CLS, out_dir=str(out))
    return cfg, fit(cfg)


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="augment"):
        TrainConfig(augment="flip")
    with pytest.raises(ValueError, match="strides"):
        TrainConfig(channels=(2, 4, 8), strides=(2,))
    with pytest.raises(ValueError, match="unknown config keys.*epoch"):
        TrainConfig.from_dict({"epoch": 3})
    cfg = TrainConfig().merged({"epochs": 7, "lr": None})
    assert cfg.epochs == 7 and cfg.lr == TrainConfig().lr


def test_resize_grids_commutes_with_cube_rotations():
    x = torch.rand(2, 1, 16, 16, 16)
    for mode in ("pool", "crop"):
        small = resize_grids(x, 8, mode)
        assert small.shape == (2, 1, 8, 8, 8)
        for g in cube_rotations()[:6]:
            assert torch.allclose(resize_grids(g.apply(x), 8, mode), g.apply(small), atol=1e-6)
    with pytest.raises(ValueError, match="divide"):
        resize_grids(x, 5, "pool")


def test_subsample_indices_is_stratified_and_deterministic():
    y = np.array([0] * 80 + [1] * 20)
    idx = subsample_indices(y, 10, seed=3)
    assert len(idx) == 10 and (y[idx] == 1).sum() == 2
    assert np.array_equal(idx, subsample_indices(y, 10, seed=3))
    assert len(subsample_indices(y, None)) == 100


def test_grid_augmentation_rotates_image_and_label_together():
    t = augmentation_transform("grid", ["image", "label"], "octa", seed=0)
    lab = torch.randint(0, 3, (1, 6, 6, 6))
    seen = set()
    for _ in range(6):
        d = t({"image": lab.float(), "label": lab.clone()})
        assert torch.equal(d["image"], d["label"].float())
        seen.add(tuple(d["label"].flatten()[:20].tolist()))
    assert len(seen) > 1  # it really rotates


def test_matched_baseline_matches_parameters(small_model):
    cfg = TrainConfig(**{**TINY_CLS, "channels": (2, 4)})
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


def test_user_nifti_folder_pair(tmp_path):
    nib = pytest.importorskip("nibabel")
    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    for i in range(3):
        lab = np.zeros((12, 12, 12), np.uint8)
        lab[3:8, 4:9, 2:7] = 1
        img = (lab * 200 + rng.normal(0, 20, lab.shape)).astype(np.float32)
        nib.save(nib.Nifti1Image(img, np.eye(4)), str(tmp_path / "img" / f"case{i}.nii.gz"))
        nib.save(nib.Nifti1Image(lab, np.eye(4)), str(tmp_path / "lab" / f"case{i}.nii.gz"))
    cfg = TrainConfig(**{**TINY_SEG, "dataset": "own", "image_dir": str(tmp_path / "img"),
                         "label_dir": str(tmp_path / "lab"), "num_classes": 2, "val_crop": 8, "intensity": None},
                      out_dir=str(tmp_path / "out"))
    res = fit(cfg)
    assert res.info.n_train == 2 and res.info.n_val == 1 and res.last_checkpoint.is_file()


def test_npz_and_medmnist_classification_data(tmp_path):
    from equivox.data import DataError
    from equivox.training import build_datasets

    rng = np.random.default_rng(0)
    plain = tmp_path / "plain.npz"
    np.savez(plain, images=rng.random((20, 8, 8, 8)).astype(np.float32), labels=np.arange(20) % 3)
    train, val, info = build_datasets(TrainConfig(dataset=str(plain), input_size=None, progress=False))
    assert (len(train), len(val), info.num_classes) == (16, 4, 3)
    assert train[0]["image"].shape == (1, 8, 8, 8)
    med = tmp_path / "med.npz"
    np.savez(med, train_images=rng.integers(0, 255, (6, 8, 8, 8), dtype=np.uint8), train_labels=np.array([[0], [1]] * 3),
             val_images=rng.integers(0, 255, (2, 8, 8, 8), dtype=np.uint8), val_labels=np.array([[0], [1]]))
    train, val, info = build_datasets(TrainConfig(dataset=str(med), input_size=4, progress=False))
    assert (len(train), len(val)) == (6, 2) and train[0]["image"].shape == (1, 4, 4, 4)
    assert float(train[0]["image"].max()) <= 1.0
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(DataError, match="found \\['x'\\]"):
        build_datasets(TrainConfig(dataset=str(bad), progress=False))


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


def test_resize_auto_pads_then_pools_and_says_so():
    from equivox.training.data import describe_resize, resize_plan

    x = torch.zeros(1, 1, 28, 28, 28)
    x[..., 2:26, 2:26, 2:26] = 1.0
    out = resize_grids(x, 16)  # default "auto": 28 -> zero-pad to 32 -> pool x2
    assert out.shape[-3:] == (16, 16, 16)
    assert float(out.sum()) * 8 == pytest.approx(float(x.sum()))  # padding adds zeros only: total mass kept
    assert describe_resize(28, 16) == "28^3 -> zero-padded to 32^3 -> average-pooled x2 -> 16^3"
    assert resize_plan(32, 16, "pool") == (32, 2, None)
    with pytest.raises(ValueError, match="must divide the stored grid size 28"):
        resize_grids(x, 16, "pool")
    y = torch.rand(1, 1, 28, 28, 28)
    for r in cube_rotations()[:6]:  # still commutes with the cube rotations
        assert torch.allclose(resize_grids(r.apply(y), 16), r.apply(resize_grids(y, 16)), atol=1e-6)


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


def test_fit_with_a_directly_built_class_swap_model_loads_back(tmp_path):
    """``fit(cfg, model=EquivariantUNet(..., class_swaps=[(1, 2)]))``: the checkpoint rebuilds the same network."""
    from equivox.nets import EquivariantUNet

    imgs, labs = tmp_path / "img", tmp_path / "lab"
    imgs.mkdir(), labs.mkdir()
    nib = pytest.importorskip("nibabel")
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


def test_wide_equivariant_net_warns_in_one_line():
    from equivox.nets import EquivariantMonaiUNet
    from equivox.training.fit import warn_if_wide

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
