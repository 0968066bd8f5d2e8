"""equivox.training.data: the training data a TrainConfig names: scaling, guards, non-cubic grids, worker rotations,
SO(3) augmentation, .npz and MedMNIST arrays, and the user's own folders through ``equivox train``: a Decathlon
folder (one or two modalities) and a ModelNet-style mesh folder train models that stay equivariant / invariant,
an image/label folder pair trains, and bad folders (no dataset.json, a missing file, a bad label value, no split
folders, a corrupt mesh, a label shape or a 2D file) end with one line naming the file before the first step."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import trimesh

from equivox import cli
from equivox.data import DataError
from equivox.testing import equivariance_errors
from equivox.training import TrainConfig, build_datasets, build_model, classification_arrays, fit, load_checkpoint


TINY_CLS = dict(task="classify", input_size=8, channels=(2, 2), strides=(2,), convs_per_level=1, hidden_features=(8,),
                epochs=1, batch_size=4, progress=False, accelerator="cpu")


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_classification_scaling_is_one_decision_and_only_for_integer_data(tmp_path):
    rng = np.random.default_rng(0)
    hu = _npz(tmp_path / "hu.npz", images=rng.normal(40, 300, (10, 8, 8, 8)).astype(np.float32),
              labels=np.arange(10) % 2)
    train, val, info = build_datasets(TrainConfig(**{**TINY_CLS, "dataset": str(hu), "input_size": None}))
    assert info.extra["intensity_scale"] == 1.0 and float(train.images.abs().max()) > 100  # HU kept as stored
    med = _npz(tmp_path / "med.npz",
               train_images=rng.integers(0, 256, (6, 8, 8, 8)).astype(np.uint8), train_labels=np.arange(6) % 2,
               val_images=rng.integers(0, 2, (4, 8, 8, 8)).astype(np.uint8), val_labels=np.arange(4) % 2)
    train, val, info = build_datasets(TrainConfig(**{**TINY_CLS, "dataset": str(med), "input_size": None}))
    assert info.extra["intensity_scale"] == 255.0
    assert float(train.images.max()) <= 1.0 and float(val.images.max()) <= 1.0 / 255 + 1e-7  # same scale


@pytest.mark.parametrize("case, pattern", [
    ("nan", r"bad\.npz \[train\] images holds 8 NaN value\(s\) \(first at index \(0, 0, 1, 2, 3\)\)"),
    ("frac_labels", r"bad\.npz \[train\]: labels must be integer class indices, found \[0\.5\]"),
    ("negative", r"bad\.npz \[train\]: labels must be class indices >= 0"),
    ("noncubic", r"bad\.npz \[train\]: grids of spatial shape \(8, 8, 16\) are not cubic"),
])
def test_classification_data_guards(tmp_path, case, pattern, file_hashes):
    x = np.random.default_rng(0).random((10, 8, 8, 8)).astype(np.float32)
    y = (np.arange(10) % 2).astype(np.float64)
    if case == "nan":
        x[:, 1, 2, 3] = np.nan  # one NaN in every image
    elif case == "frac_labels":
        y[:] = 0.5
    elif case == "negative":
        y[:] = -1
    else:
        x = np.zeros((10, 8, 8, 16), np.float32)
    p = _npz(tmp_path / "bad.npz", images=x, labels=y)
    before = file_hashes(tmp_path)
    with pytest.raises(DataError, match=pattern):
        build_datasets(TrainConfig(**{**TINY_CLS, "dataset": str(p)}))
    assert file_hashes(tmp_path) == before


def test_non_cubic_grids_train_as_stored_when_not_resized(tmp_path):
    x = np.random.default_rng(0).random((10, 8, 8, 16)).astype(np.float32)
    p = _npz(tmp_path / "boxes.npz", images=x, labels=np.arange(10) % 2)
    train, _, info = build_datasets(TrainConfig(**{**TINY_CLS, "dataset": str(p), "input_size": None}))
    assert train[0]["image"].shape == (1, 8, 8, 16) and info.spatial_size == (8, 8, 16)


def test_workers_draw_different_rotations(tmp_path):
    from equivox.training.data import ArrayClassificationDataset, augmentation_transform
    from equivox.training.fit import _loader

    x = torch.arange(8 ** 3, dtype=torch.float32).reshape(1, 1, 8, 8, 8).repeat(8, 1, 1, 1, 1)
    cfg = TrainConfig(**{**TINY_CLS, "num_workers": 2, "dataset": "lidc"})
    ds = ArrayClassificationDataset(x, np.zeros(8, np.int64), augmentation_transform("grid", ["image"], "octa", 0))
    loader = _loader(ds, cfg, shuffle=False, batch_size=1)
    out = [b["image"] for b in loader]  # batches alternate between the two workers
    worker0, worker1 = out[0::2], out[1::2]
    assert not all(torch.equal(a, b) for a, b in zip(worker0, worker1))
    assert torch.equal(torch.stack(out), torch.stack([b["image"] for b in _loader(ds, cfg, False, 1)]))  # seeded


# ------------------------------------------------------------------------------------------- checkpoints, outputs


TINY_SEG = dict(task="segment", dataset="chest_ct", downsample=4, patch_size=8, patches_per_epoch=4, val_crop=16,
                channels=(2, 2), strides=(2,), convs_per_level=1, epochs=1, batch_size=2, progress=False)


def test_so3_augmentation_trains_and_changes_what_the_model_sees(tmp_path):
    torch.manual_seed(0)
    res_none = fit(TrainConfig(**TINY_SEG, out_dir=str(tmp_path / "none")))
    res_so3 = fit(TrainConfig(**{**TINY_SEG, "augment": "so3"}, out_dir=str(tmp_path / "so3")))
    assert res_so3.global_step == res_none.global_step == 2
    w0 = torch.cat([p.flatten() for p in res_none.model.parameters()])
    w1 = torch.cat([p.flatten() for p in res_so3.model.parameters()])
    assert (w0 - w1).abs().max() > 1e-6  # same seed, rotated patches: different updates


def test_folder_pair_class_names_from_config_and_cli(tmp_path, capsys):
    """A folder pair's classes get the user's names (tables, CSV columns, legends); a count that does not match
    ``num_classes`` is one clear error, and so is an empty name on the command line."""
    from equivox import cli
    from equivox.training.data import segmentation_file_items

    for sub in ("images", "labels"):
        (tmp_path / sub).mkdir()
    lab = np.zeros((8, 8, 8), np.uint8)
    lab[2:5, 2:5, 2:5] = 1
    nib.save(nib.Nifti1Image(lab.astype(np.float32), np.eye(4)), str(tmp_path / "images" / "a.nii.gz"))
    nib.save(nib.Nifti1Image(lab, np.eye(4)), str(tmp_path / "labels" / "a.nii.gz"))
    dirs = dict(task="segment", image_dir=str(tmp_path / "images"), label_dir=str(tmp_path / "labels"))
    _, k, names = segmentation_file_items(TrainConfig(**dirs, num_classes=2, class_names=["background", "ball"]))
    assert (k, names) == (2, ["background", "ball"])
    assert segmentation_file_items(TrainConfig(**dirs, num_classes=2))[2] == ["0", "1"]
    with pytest.raises(DataError, match="class_names has 3 name"):
        segmentation_file_items(TrainConfig(**dirs, num_classes=2, class_names=["a", "b", "c"]))
    with pytest.raises(ValueError, match="class_names must be a list"):
        TrainConfig(**dirs, num_classes=2, class_names="background,ball")
    assert cli.main(["train", "--task", "segment", "--class-names", "background,,ball"]) == 2
    assert "non-empty names" in capsys.readouterr().err


def test_short_epochs_of_many_volumes_draw_every_volume_over_the_epochs():
    """Many one-part volumes and an epoch shorter than their list: each epoch draws distinct volumes from a fresh
    permutation (not the first ones of the sorted store), and over the epochs every volume is seen."""
    from equivox.training.data import VolumePatches

    vols = [(torch.full((1, 4, 4, 4), float(i)), torch.ones(1, 4, 4, 4, dtype=torch.long)) for i in range(10)]
    ds = VolumePatches(vols, patch=4, length=4, seed=0)
    seen = []
    for epoch in range(6):
        ds.set_epoch(epoch)
        ids = [int(ds[i]["image"][0, 0, 0, 0]) for i in range(len(ds))]
        assert len(set(ids)) == 4
        seen.append(ids)
    assert seen[0] != [0, 1, 2, 3] or seen[1] != [0, 1, 2, 3]
    assert len({i for ids in seen for i in ids}) == 10
    ds.set_epoch(0)
    assert [int(ds[i]["image"][0, 0, 0, 0]) for i in range(4)] == seen[0]  # reproducible per (seed, epoch)
    # an epoch as long as the list or longer cycles through it as before
    full = VolumePatches(vols, patch=4, length=20, seed=0)
    assert [int(full[i]["image"][0, 0, 0, 0]) for i in range(20)] == list(range(10)) * 2


def test_user_nifti_folder_pair(tmp_path):
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
    np.savez(med, train_images=rng.integers(0, 255, (6, 8, 8, 8), dtype=np.uint8),
             train_labels=np.array([[0], [1]] * 3),
             val_images=rng.integers(0, 255, (2, 8, 8, 8), dtype=np.uint8), val_labels=np.array([[0], [1]]))
    train, val, info = build_datasets(TrainConfig(dataset=str(med), input_size=4, progress=False))
    assert (len(train), len(val)) == (6, 2) and train[0]["image"].shape == (1, 4, 4, 4)
    assert float(train[0]["image"].max()) <= 1.0
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(DataError, match="found \\['x'\\]"):
        build_datasets(TrainConfig(dataset=str(bad), progress=False))


# ---------------------------------------------------------------------------- a Decathlon folder, through equivox train
SEG_ARGS = ["--task", "segment", "--channels", "1,1", "--strides", "2", "--convs-per-level", "1", "--epochs", "1",
            "--batch-size", "1", "--patch-size", "8", "--patches-per-epoch", "2", "--val-crop", "8", "--no-progress"]


CLS_ARGS = ["--task", "classify", "--input-size", "8", "--channels", "1,1", "--strides", "2", "--convs-per-level", "1",
            "--epochs", "1", "--batch-size", "2", "--no-progress"]


def _write_decathlon(root, n_cases: int = 3, size: int = 8, modalities: int = 1):
    """``root/dataset.json``, ``imagesTr/c<i>.nii.gz`` (CT-like blob on background), ``labelsTr/c<i>.nii.gz`` {0, 1}."""
    rng = np.random.default_rng(0)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    training = []
    for i in range(n_cases):
        lab = np.zeros((size,) * 3, np.uint8)
        lab[2 + i % 2:6, 1:5, 3:7] = 1
        img = (lab * 600.0 - 300.0 + rng.normal(0, 50, lab.shape)).astype(np.float32)
        if modalities > 1:
            img = np.stack([img * (m + 1) for m in range(modalities)], axis=-1)
        nib.save(nib.Nifti1Image(img, np.eye(4)), str(root / "imagesTr" / f"c{i}.nii.gz"))
        nib.save(nib.Nifti1Image(lab, np.eye(4)), str(root / "labelsTr" / f"c{i}.nii.gz"))
        training.append({"image": f"./imagesTr/c{i}.nii.gz", "label": f"./labelsTr/c{i}.nii.gz"})
    meta = {"name": "tiny", "labels": {"0": "background", "1": "blob"}, "training": training, "test": []}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def _max_param_change(model, cfg_dict, in_channels: int, num_classes: int) -> float:
    """Largest weight change of a trained model against the same architecture freshly built with the run's seed
    (``fit`` builds its model exactly this way, so this is the change made by training)."""
    fresh = build_model(TrainConfig.from_dict({**cfg_dict, "resume": None}), in_channels, num_classes)
    trained = model.state_dict()
    return max(float((trained[k].float() - v.float()).abs().max()) for k, v in fresh.state_dict().items()
               if v.is_floating_point())


@pytest.mark.parametrize("modalities", [1, 2])
def test_decathlon_folder_trains_and_stays_equivariant(modalities, tmp_path, capsys):
    root = _write_decathlon(tmp_path / "Task00_Tiny", modalities=modalities)
    out = tmp_path / "run"
    assert cli.main(["train", *SEG_ARGS, "--dataset", str(root), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "trained EquivariantUNet" in text and " 2 steps" in text  # 3 cases: 2 train (1 patch each), 1 val

    # checkpoint: 2 optimiser steps, trained on this folder with its 2 labels and its number of modalities
    last = out / "checkpoints" / "last.ckpt"
    assert last.is_file() and len(list((out / "checkpoints").glob("best-*.ckpt"))) == 1
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 2
    model, hp = load_checkpoint(last)
    assert hp["config"]["dataset"] == str(root) and hp["num_classes"] == 2
    assert model.in_channels == modalities
    assert _max_param_change(model, hp["config"], modalities, 2) > 1e-4  # training really changed the weights

    # metrics: a validation row with finite loss and a Dice in [0, 1]
    rows = list(csv.DictReader(open(out / "logs" / "version_0" / "metrics.csv")))
    val = [r for r in rows if r.get("val_loss")]
    assert len(val) == 1 and math.isfinite(float(val[0]["val_loss"])) and 0.0 <= float(val[0]["val_dice"]) <= 1.0
    assert any(r.get("train_loss_step") for r in rows)

    # the trained U-Net is equivariant on a real case: rotate the input by 90 degrees, the output rotates too
    img = np.asarray(nib.load(str(root / "imagesTr" / "c0.nii.gz")).dataobj, dtype=np.float32) / 1000.0
    x = torch.as_tensor(img.reshape(8, 8, 8, modalities)).permute(3, 0, 1, 2)[None].contiguous()
    with torch.no_grad():
        y = model(x)
        for k, dims in ((1, (2, 3)), (1, (3, 4)), (2, (2, 4)), (3, (2, 3))):
            y_rot = model(torch.rot90(x, k, dims))
            expected = torch.rot90(y, k, dims)
            err = float((y_rot - expected).abs().max())
            assert err < 1e-4 * float(y.abs().max()), (k, dims, err)
            assert float((expected - y).abs().max()) > 100 * err  # the output really changes under the rotation
    assert max(e.relative for e in equivariance_errors(model, x, "octa")) < 1e-4  # all 24 cube rotations


def _bad_decathlon(root, problem: str):
    _write_decathlon(root)
    if problem == "no dataset.json":
        (root / "dataset.json").unlink()
    elif problem == "missing file":
        (root / "imagesTr" / "c2.nii.gz").unlink()
    elif problem == "bad label value":
        lab = np.asarray(nib.load(str(root / "labelsTr" / "c1.nii.gz")).dataobj).copy()
        lab[0, 0, 0] = 2  # dataset.json declares labels 0 and 1 only
        nib.save(nib.Nifti1Image(lab, np.eye(4)), str(root / "labelsTr" / "c1.nii.gz"))
    return root


@pytest.mark.parametrize("problem, expected", [
    ("no dataset.json", ["has no dataset.json"]),
    ("missing file", ["1 file(s) listed in", "are missing", "imagesTr/c2.nii.gz"]),
    ("bad label value", ["labelsTr/c1.nii.gz", "label values [2] are outside range(2)"]),
])
def test_bad_decathlon_folder_gives_one_clear_error(problem, expected, tmp_path, capsys, last_error_line):
    root = _bad_decathlon(tmp_path / "Task00_Bad", problem)
    assert cli.main(["train", *SEG_ARGS, "--dataset", str(root), "--out", str(tmp_path / "run")]) == 2
    line = last_error_line()
    assert line.startswith("equivox: error: ") and str(root) in line
    for text in expected:
        assert text in line, (text, line)


# --------------------------------------------------------------------------- a mesh folder, through equivox train
# ============================================================================================ mesh folders
_SHAPES = {  # the box (three different sides) has no 90-degree symmetry
    "box": lambda i: trimesh.creation.box(extents=(1.0, 0.6 + 0.1 * i, 0.3)),
    "cylinder": lambda i: trimesh.creation.cylinder(radius=0.3, height=1.0 + 0.1 * i, sections=16),
    "sphere": lambda i: trimesh.creation.icosphere(subdivisions=1, radius=0.5 + 0.05 * i),
}


def _write_mesh_folder(root):
    """ModelNet layout ``root/<class>/{train,test}/*.obj|stl``: 2 training meshes and 1 test mesh per class."""
    for name, make in _SHAPES.items():
        for split, n in (("train", 2), ("test", 1)):
            d = root / name / split
            d.mkdir(parents=True)
            for i in range(n):
                make(i).export(str(d / f"{name}_{i}.{'obj' if i % 2 == 0 else 'stl'}"))
    return root


@pytest.fixture
def voxel_cache(tmp_path, monkeypatch):
    """Voxel caches of the mesh folders go to tmp_path (the kernel-basis cache stays the shared warm one)."""
    folder = tmp_path / "voxel-cache"
    monkeypatch.setattr("equivox.data.mesh_folders._default_voxel_cache", lambda: folder)
    return folder


def test_mesh_folder_trains_and_classifier_is_invariant(tmp_path, voxel_cache, capsys):
    root = _write_mesh_folder(tmp_path / "shapes")
    out = tmp_path / "run"
    assert cli.main(["train", *CLS_ARGS, "--dataset", str(root), "--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert "trained InvariantClassifier" in cap.out and " 3 steps" in cap.out  # 6 training meshes, batch 2
    assert "voxelizing" not in cap.err  # --no-progress hides the voxelization bar too
    assert len(list(voxel_cache.glob("shapes-train-32-*.npz"))) == 1  # voxelized once, cached
    assert len(list(voxel_cache.glob("shapes-test-32-*.npz"))) == 1

    last = out / "checkpoints" / "last.ckpt"
    assert last.is_file() and (out / "logs" / "version_0" / "metrics.csv").is_file()
    model, hp = load_checkpoint(last)
    assert hp["num_classes"] == 3 and hp["config"]["dataset"] == str(root)
    assert _max_param_change(model, hp["config"], 1, 3) > 1e-4
    val = [r for r in csv.DictReader(open(out / "logs" / "version_0" / "metrics.csv")) if r.get("val_acc")]
    assert len(val) == 1 and min(abs(float(val[0]["val_acc"]) - k / 3) for k in range(4)) < 1e-6  # 3 meshes

    # the real test meshes, voxelized as training saw them: box, cylinder, sphere
    cfg = TrainConfig.from_dict({**hp["config"], "resume": None})
    x, y, names = classification_arrays(cfg, "test")
    assert names == ["box", "cylinder", "sphere"] and y.tolist() == [0, 1, 2] and tuple(x.shape) == (3, 1, 8, 8, 8)
    assert float(x.sum()) > 0 and float((x[0] - x[2]).abs().max()) > 0.1
    with torch.no_grad():
        ref = model(x)
        assert float((ref[0] - ref[2]).abs().max()) > 1e-4  # different shapes, different logits
        for k, dims in ((1, (2, 3)), (1, (3, 4)), (1, (2, 4)), (3, (2, 4))):  # (180 degrees: a symmetry of the box)
            x_rot = torch.rot90(x, k, dims)
            assert float((x_rot[0] - x[0]).abs().max()) > 0.5  # the box really moves
            assert torch.allclose(model(x_rot), ref, atol=1e-5 * float(ref.abs().max()) + 1e-7), (k, dims)


@pytest.mark.parametrize("problem, expected", [
    ("no split folders", "has no '<class>/train/' folders"),
    ("corrupt mesh", "box_1.stl: mesh is empty (no faces)"),
])
def test_bad_mesh_folder_gives_one_clear_error(problem, expected, tmp_path, voxel_cache, capsys, last_error_line):
    root = _write_mesh_folder(tmp_path / "shapes")
    if problem == "no split folders":
        for name in _SHAPES:
            (root / name / "train").rename(root / name / "training")
    else:
        (root / "box" / "train" / "box_1.stl").write_text("not a mesh\n")
        # default policy: the unusable file is skipped with a warning naming it, training goes on
        with pytest.warns(UserWarning, match="box_1.stl"):
            assert cli.main(["train", *CLS_ARGS, "--dataset", str(root), "--out", str(tmp_path / "skip")]) == 0
        capsys.readouterr()
    strict = ["--strict"] if problem == "corrupt mesh" else []
    assert cli.main(["train", *CLS_ARGS, *strict, "--dataset", str(root), "--out", str(tmp_path / "run")]) == 2
    line = last_error_line()
    assert line.startswith("equivox: error: ") and expected in line and str(root) in line


# ------------------------------------------------------------------- an image/label folder pair, through equivox train
# ============================================================================================ image/label folders
def _folder_pair(root, odd: str = "", n: int = 3, side: int = 32):
    """``root/images`` + ``root/labels``: ``n`` MRI-like ``side``^3 cases; ``odd`` spoils case c1: ``"label
    shape"`` (its label is 32x32x30) or ``"2d"`` (image and label are one 32x32 slice)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n):
        lab = np.zeros((side,) * 3, np.uint8)
        lab[8:20, 8:20, 8:20] = 1
        img = (lab * 150.0 + rng.normal(40.0, 5.0, lab.shape)).astype(np.float32)
        if i == 1 and odd == "label shape":
            lab = lab[:, :, : side - 2]
        elif i == 1 and odd == "2d":
            img, lab = img[:, :, side // 2], lab[:, :, side // 2]
        nib.save(nib.Nifti1Image(img, np.eye(4)), str(root / "images" / f"c{i}.nii.gz"))
        nib.save(nib.Nifti1Image(lab, np.eye(4)), str(root / "labels" / f"c{i}.nii.gz"))
    return root / "images", root / "labels"


@pytest.mark.parametrize("max_steps", [None, 1])
@pytest.mark.parametrize("odd, expected", [
    ("label shape", ["shape mismatch: image {img} has spatial shape (32, 32, 32)", "label {lab} has (32, 32, 30)"]),
    ("2d", ["image file {img} is 2D (shape (32, 32)); it must be a 3D volume (D, H, W)"]),
])
def test_bad_folder_pair_caught_before_the_first_training_step(odd, expected, max_steps, tmp_path, capsys,
                                                               monkeypatch, last_error_line):
    """Every pair is read and checked before training starts (a pair outside the validation split too, also with
    ``--max-steps 1``): one line naming the file(s) and shapes, no checkpoint, no log, no output folder left
    behind."""
    import equivox.training
    import equivox.training.data

    imgs, labs = _folder_pair(tmp_path / "own", odd)
    steps = []
    monkeypatch.setattr(equivox.training.data, "_CHECKED_PAIRS", set())  # no pair known from an earlier test
    monkeypatch.setattr(equivox.training, "fit", lambda *a, **k: steps.append(1) or pytest.fail("training started"))
    out = tmp_path / "new" / "run"
    argv = ["train", *SEG_ARGS, "--image-dir", str(imgs), "--label-dir", str(labs), "--num-classes", "2",
            "--out", str(out)] + (["--max-steps", str(max_steps)] if max_steps else [])
    assert cli.main(argv) == 2
    line = last_error_line()
    assert line.startswith("equivox: error: ")
    for text in expected:
        assert text.format(img=imgs / "c1.nii.gz", lab=labs / "c1.nii.gz") in line, line
    assert not steps and not (tmp_path / "new").exists()


def test_folder_flags_imply_the_segmentation_task(tmp_path, capsys, last_error_line):
    """``--image-dir`` / ``--label-dir`` without ``--task`` are segmentation folders (the pair's own error is
    reported, the default classification dataset is never mentioned); with an explicit ``--task classify`` one line
    says to use ``--task segment``."""
    imgs, labs = _folder_pair(tmp_path / "own", "label shape")
    flags = ["--image-dir", str(imgs), "--label-dir", str(labs), "--num-classes", "2"]
    args = cli.build_parser().parse_args(["train", *flags])
    assert cli.train_config_from_args(args).task == "segment"
    assert cli.main(["train", *flags, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    line = last_error_line()
    assert "shape mismatch" in line and str(labs / "c1.nii.gz") in line and "lidc" not in line
    assert cli.main(["train", "--task", "classify", *flags, "--out", str(tmp_path / "run")]) == 2
    assert last_error_line() == ("equivox: error: image_dir / label_dir (an image/label folder pair) are "
                                   "segmentation data, but task is 'classify'; use --task segment (task: segment)")
    assert not (tmp_path / "run").exists()
