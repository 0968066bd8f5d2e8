"""equivox.training.data: scaling, guards, non-cubic grids, worker rotations, SO(3) augmentation."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from equivox.data import DataError
from equivox.training import TrainConfig, build_datasets, fit


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
