"""equivox.prediction: ``equivox predict`` and the journey own NIfTI folder -> train -> evaluate on a test folder ->
predict: masks on the input's voxel grid with the input's affine, the training run's preprocessing, classification
CSVs, checkpoints of re-runs, MedMNIST-3D files at 28^3 with default settings, atomic mask writes and overlay
figures."""
from __future__ import annotations

import csv
import hashlib
import os
import stat

import nibabel as nib
import numpy as np
import pytest
import torch
from torch import nn

from equivox import cli
from equivox.prediction import predict_segmentation

SEG = ["--task", "segment", "--group", "c4_axial", "--channels", "1,1", "--strides", "2", "--convs-per-level", "1",
       "--epochs", "1", "--batch-size", "1", "--patch-size", "8", "--patches-per-epoch", "2", "--val-crop", "8",
       "--no-progress"]


def _affine():
    """A voxel-to-world matrix that is not RAS: axes permuted and flipped, shifted (so orientation must be undone)."""
    a = np.zeros((4, 4))
    a[0, 1], a[1, 0], a[2, 2], a[3, 3] = -1.0, 1.0, -1.0, 1.0
    a[:3, 3] = [7.0, -4.0, 3.0]
    return a


def write_pairs(root, n: int = 4, size=(12, 10, 8), offset: float = 40.0, scale: float = 120.0):
    """``root/images`` and ``root/labels``: ``n`` MRI-like volumes (values 0..~300) with labels {0, 1, 2}."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n):
        lab = np.zeros(size, np.uint8)
        lab[2:7, 1 + i % 2:6, 2:6] = 1
        lab[8:11, 6:9, 1:4] = 2
        img = (lab * scale + rng.normal(0, 5, size) + offset).astype(np.float32)
        nib.save(nib.Nifti1Image(img, _affine()), str(root / "images" / f"case{i}.nii.gz"))
        nib.save(nib.Nifti1Image(lab, _affine()), str(root / "labels" / f"case{i}.nii.gz"))
    return root / "images", root / "labels"


def _digest(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _printed(text: str, key: str) -> str:
    return next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith(key))


class ThresholdNet(nn.Module):
    """Per-voxel 3-class logits from the intensity alone, ``-(x / unit - k)^2`` for class k: class 1 above
    ``0.5 * unit``, class 2 above ``1.5 * unit``, so the right mask is known without training."""

    in_channels = 1
    size_multiple = 1

    def __init__(self, unit: float = 1.0):
        super().__init__()
        self.unit = unit

    def forward(self, x):
        x = x / self.unit
        return torch.cat([-(x - k) ** 2 for k in range(3)], 1)


def test_predicted_mask_is_on_the_input_grid_with_the_input_affine(tmp_path):
    """Orientation (permuted, flipped axes) is undone exactly: the mask equals the threshold of the stored image,
    voxel for voxel, in the file's own axis order."""
    imgs, _ = write_pairs(tmp_path, n=1)
    src = imgs / "case0.nii.gz"
    stored = np.asarray(nib.load(str(src)).dataobj)
    hp = {"config": {"task": "segment", "spacing": None, "intensity": None, "patch_size": 4}, "num_classes": 3}
    # intensity none: the net sees the stored values (background ~40, class 1 ~160, class 2 ~280)
    out = predict_segmentation(ThresholdNet(140.0), hp, [src], tmp_path / "pred", probabilities=True, say=None)
    seg = nib.load(str(out[0]))
    assert np.allclose(seg.affine, nib.load(str(src)).affine) and seg.shape == stored.shape
    expected = (stored / 140.0 > 0.5).astype(int) + (stored / 140.0 > 1.5).astype(int)
    assert len(np.unique(expected)) == 3 and np.array_equal(np.asarray(seg.dataobj), expected)
    prob = np.asarray(nib.load(str(out[1])).dataobj)
    assert prob.shape == stored.shape + (3,) and np.allclose(prob.sum(-1), 1.0, atol=1e-5)


def test_own_folder_train_rerun_evaluate_elsewhere_and_predict(tmp_path, capsys, monkeypatch):
    imgs, labs = write_pairs(tmp_path / "own")
    before = {**_digest(imgs), **{"l" + k: v for k, v in _digest(labs).items()}}
    out = tmp_path / "run"
    base = ["train", *SEG, "--image-dir", str(imgs), "--label-dir", str(labs), "--num-classes", "3", "--out", str(out)]
    assert cli.main(base) == 0
    first = capsys.readouterr().out
    assert "intensity mri" in first and "spacing 1x1x1 mm (from the headers)" in first  # MRI-like: no CT window
    ck1 = _printed(first, "last checkpoint")
    assert cli.main(base + ["--seed", "1"]) == 2  # a re-run into the same folder is refused ...
    assert "already holds a run" in capsys.readouterr().err
    old_umask = os.umask(0o022)
    try:
        assert cli.main(base + ["--seed", "1", "--overwrite"]) == 0  # ... unless --overwrite
    finally:
        os.umask(old_umask)
    second = capsys.readouterr().out
    ck2 = _printed(second, "last checkpoint")
    assert ck2 == ck1 and os.path.isfile(ck2)  # last.ckpt: now the new run's
    assert torch.load(ck2, weights_only=False)["hyper_parameters"]["config"]["seed"] == 1
    assert stat.S_IMODE(os.stat(ck2).st_mode) == 0o644  # the user's umask, not 0600
    hp = torch.load(ck2, weights_only=False)["hyper_parameters"]
    assert hp["config"]["image_dir"] == str(imgs.resolve()) and hp["config"]["intensity"] == "mri"

    # evaluate a labelled folder from another working directory, with names of the data actually used
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli.main(["evaluate", ck2, "--image-dir", str(imgs), "--label-dir", str(labs), "--rotations", "grid",
                     "--out", "ev", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert f"on {imgs.resolve()}" in text and "(4 volumes, whole)" in text and "EquivariantUNet (c4_axial)" in text
    assert "lidc" not in text
    rows = list(csv.DictReader(open(elsewhere / "ev" / "report.csv")))
    assert len(rows) == 4 and {"dice_1", "dice_2"} <= set(rows[0])  # c4_axial: the 4 grid rotations
    # the stored (absolute) training folder works from here too
    assert cli.main(["evaluate", ck2, "--rotations", "identity", "--out", "ev2", "--no-progress"]) == 0
    capsys.readouterr()

    # predict the folder: one mask per image, the image's affine and shape, labels in range
    assert cli.main(["predict", ck2, "--image-dir", str(imgs), "--out", str(tmp_path / "pred")]) == 0
    text = capsys.readouterr().out
    assert "intensity mri" in text and "wrote 4 mask(s)" in text
    for src in sorted(imgs.iterdir()):
        seg = nib.load(str(tmp_path / "pred" / src.name.replace(".nii.gz", "_seg.nii.gz")))
        ref = nib.load(str(src))
        assert np.allclose(seg.affine, ref.affine) and seg.shape == ref.shape
        assert set(np.unique(np.asarray(seg.dataobj)).tolist()) <= {0, 1, 2}
    after = {**_digest(imgs), **{"l" + k: v for k, v in _digest(labs).items()}}
    assert after == before  # the user's files are untouched


def test_predict_never_replaces_an_input(tmp_path):
    from equivox.data import DataError

    imgs, _ = write_pairs(tmp_path / "own", n=1)
    clash = imgs / "case0_seg.nii.gz"  # an input named like case0's output
    clash.write_bytes((imgs / "case0.nii.gz").read_bytes())
    digest = _digest(imgs)
    hp = {"config": {"task": "segment", "spacing": None, "intensity": None, "patch_size": 4}, "num_classes": 3}
    with pytest.raises(DataError, match="would replace an input file"):
        predict_segmentation(ThresholdNet(100.0), hp, [imgs / "case0.nii.gz", clash], imgs, say=None)
    assert _digest(imgs) == digest


def _medmnist(path, n: int = 12, side: int = 28):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, m in (("train", n), ("val", n // 2), ("test", n // 2)):
        y = np.arange(m) % 2
        x = rng.integers(0, 60, (m, side, side, side)).astype(np.uint8)
        x[y == 1, 8:20, 8:20, 8:20] = 220  # class 1: a bright cube
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = x, y[:, None]
    np.savez(path, **arrays)
    return path


def test_medmnist_28_trains_with_defaults_and_predicts_a_csv(tmp_path, capsys):
    data = _medmnist(tmp_path / "organ3d.npz")
    out = tmp_path / "run"
    assert cli.main(["train", "--dataset", str(data), "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "28^3 -> zero-padded to 32^3 -> average-pooled x2 -> 16^3" in text
    ck = _printed(text, "last checkpoint")
    assert cli.main(["predict", ck, str(data), "--out", str(tmp_path / "pred")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "pred" / "predictions.csv")))
    assert len(rows) == 6 and set(rows[0]) == {"input", "predicted", "p_0", "p_1"}
    for r in rows:
        p = [float(r["p_0"]), float(r["p_1"])]
        assert abs(sum(p) - 1) < 1e-4 and r["predicted"] == str(int(np.argmax(p)))


def test_folder_evaluation_scores_whole_volumes_unless_a_crop_is_asked(tmp_path, capsys):
    """``evaluate --image-dir`` prepares whole volumes (every labelled voxel is scored); ``--crop`` is the opt-in
    centre crop, and is refused where it would not apply."""
    from equivox.data import folder_pair_items
    from equivox.training import TrainConfig
    from equivox.training.data import segmentation_eval_dataset

    imgs, labs = write_pairs(tmp_path, n=1)
    stored = np.asarray(nib.load(str(labs / "case0.nii.gz")).dataobj)
    items = folder_pair_items(str(imgs), str(labs))
    cfg = TrainConfig(task="segment", intensity="none", strides=(2,), val_crop=None)
    whole = segmentation_eval_dataset(cfg, items, 3)[0]["label"]
    assert [int((whole == k).sum()) for k in (1, 2)] == [int((stored == k).sum()) for k in (1, 2)]
    cfg.val_crop = 6
    cropped = segmentation_eval_dataset(cfg, items, 3)[0]["label"]
    assert tuple(cropped.shape[1:]) == (6, 6, 6) and int((cropped == 2).sum()) < int((stored == 2).sum())
    assert cli.main(["evaluate", str(tmp_path / "missing.ckpt"), "--crop", "8"]) == 2
    assert "--crop is for scoring a labelled folder" in capsys.readouterr().err


# ------------------------------------------------------------------------- checked before anything is written
def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A segmentation checkpoint (1 input channel, 3 classes) trained for two steps on 12x10x8 volumes."""
    root = tmp_path_factory.mktemp("tiny")
    imgs, labs = write_pairs(root, n=3)
    out = root / "run"
    assert cli.main(["train", *SEG, "--image-dir", str(imgs), "--label-dir", str(labs), "--num-classes", "3",
                     "--out", str(out)]) == 0
    return str(out / "checkpoints" / "last.ckpt")


def _volume(path, shape=(12, 10, 8), fill=None):
    data = np.random.default_rng(0).normal(100.0, 20.0, shape).astype(np.float32)
    if fill is not None:
        data[3, 4, 5] = fill
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path


@pytest.mark.parametrize("bad, shown", [(np.nan, "1 NaN value(s)"), (np.inf, "1 inf value(s)")])
def test_predict_refuses_nan_or_inf_and_writes_no_mask(bad, shown, tiny_checkpoint, tmp_path, capsys):
    """Was: an all-background mask and exit 0."""
    src = _volume(tmp_path / "scan.nii.gz", fill=bad)
    out = tmp_path / "pred"
    assert cli.main(["predict", tiny_checkpoint, str(src), "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"equivox: error: image file {src} holds {shown} (first at index (3, 4, 5))")
    assert "replace or mask them before prediction" in line
    assert not out.exists()  # no mask, not even an empty output folder


def test_predict_folder_with_a_truncated_file_writes_no_mask(tiny_checkpoint, tmp_path, capsys):
    """Every file is read in full before the first mask: a file whose header reads but whose data are cut short
    (the third of four, sorted) stops the run with nothing written (was: two masks, then an error)."""
    folder = tmp_path / "scans"
    folder.mkdir()
    for i in range(4):
        _volume(folder / f"case{i}.nii.gz")
    bad = folder / "case2.nii.gz"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) * 3 // 4])
    assert nib.load(str(bad)).shape == (12, 10, 8)  # the header still reads: only a full read finds it
    out = tmp_path / "pred"
    assert cli.main(["predict", tiny_checkpoint, "--image-dir", str(folder), "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"equivox: error: cannot read image file {bad} (unreadable, truncated")
    assert not out.exists()


@pytest.mark.parametrize("shape, problem", [
    ((12, 10), "is 2D (shape (12, 10)); it must be a 3D volume (D, H, W), or 4D with channels last"),
    ((12, 10, 8, 2), "has 2 channel(s); the model takes 1"),
])
def test_predict_refuses_wrong_rank_or_channels_naming_the_file(shape, problem, tiny_checkpoint, tmp_path, capsys):
    good = _volume(tmp_path / "a.nii.gz")
    odd = _volume(tmp_path / "b.nii.gz", shape=shape)
    out = tmp_path / "pred"
    assert cli.main(["predict", tiny_checkpoint, str(good), str(odd), "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert str(odd) in line and problem in line and "a.nii.gz" not in line
    assert not out.exists()  # a.nii.gz came first and was fine: still no mask for it


def test_predict_refuses_two_inputs_writing_the_same_mask(tmp_path):
    """``x.nii`` and ``x.nii.gz`` both map to ``x_seg.nii.gz``: refused before writing (was: one overwrote the
    other)."""
    from equivox.data import DataError
    from equivox.prediction import preflight_segmentation

    a = _volume(tmp_path / "x.nii.gz")
    b = _volume(tmp_path / "x.nii")
    hp = {"config": {"task": "segment", "spacing": None, "intensity": None, "patch_size": 4}, "num_classes": 3}
    with pytest.raises(DataError, match=rf"inputs {a} and {b} would both write .*x_seg\.nii\.gz"):
        predict_segmentation(ThresholdNet(100.0), hp, [a, b], tmp_path / "pred", say=None)
    assert not (tmp_path / "pred").exists()
    plan = preflight_segmentation([a], tmp_path / "pred", in_channels=1, probabilities=True)
    assert plan == [(a, [tmp_path / "pred" / "x_seg.nii.gz", tmp_path / "pred" / "x_prob.nii.gz"])]


def test_masks_are_written_atomically(tmp_path, monkeypatch):
    """A failure while a mask is committed (disk full, killed) leaves neither a partial mask nor a temporary file."""
    import equivox.cache

    src = _volume(tmp_path / "scan.nii.gz")
    hp = {"config": {"task": "segment", "spacing": None, "intensity": None, "patch_size": 4}, "num_classes": 3}
    seen = []

    def failing_replace(tmp, dst):
        seen.append((os.path.getsize(tmp), dst))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(equivox.cache.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        predict_segmentation(ThresholdNet(100.0), hp, [src], tmp_path / "pred", say=None)
    assert len(seen) == 1 and seen[0][0] > 0 and str(seen[0][1]).endswith("scan_seg.nii.gz")
    assert list((tmp_path / "pred").iterdir()) == []  # the temporary file was removed, no scan_seg.nii.gz
    monkeypatch.undo()
    out = predict_segmentation(ThresholdNet(100.0), hp, [src], tmp_path / "pred", say=None, plots=False)
    assert [p.name for p in (tmp_path / "pred").iterdir()] == ["scan_seg.nii.gz"] and out[0].name == "scan_seg.nii.gz"
    assert nib.load(str(out[0])).shape == (12, 10, 8)


# ------------------------------------------------------------------------- overlay plots
def test_predict_writes_one_overlay_per_volume_unless_no_plots(tiny_checkpoint, tmp_path, capsys):
    """After the masks: ``<mask name>_overlay.png`` per input (three middle slices, the mask in colour); none with
    --no-plots. The run that made the checkpoint wrote its learning curve."""
    from pathlib import Path

    assert (Path(tiny_checkpoint).parent.parent / "learning_curve.png").is_file()
    folder = tmp_path / "scans"
    folder.mkdir()
    for i in range(2):
        _volume(folder / f"case{i}.nii.gz")
    out = tmp_path / "pred"
    assert cli.main(["predict", tiny_checkpoint, "--image-dir", str(folder), "--out", str(out)]) == 0
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["case0_seg_overlay.png", "case1_seg_overlay.png"]
    assert all((out / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in pngs)
    quiet = tmp_path / "pred-quiet"
    assert cli.main(["predict", tiny_checkpoint, "--image-dir", str(folder), "--out", str(quiet), "--no-plots"]) == 0
    assert sorted(p.name for p in quiet.iterdir()) == ["case0_seg.nii.gz", "case1_seg.nii.gz"]


def test_predict_writes_no_overlay_when_preflight_fails(tiny_checkpoint, tmp_path, capsys):
    good = _volume(tmp_path / "a.nii.gz")
    bad = _volume(tmp_path / "b.nii.gz", fill=np.nan)
    out = tmp_path / "pred"
    assert cli.main(["predict", tiny_checkpoint, str(good), str(bad), "--out", str(out)]) == 2
    assert not out.exists() and not list(tmp_path.rglob("*.png"))


def test_overlay_figure_has_three_slices_a_legend_and_names_input_and_model(tmp_path, saved_figures):
    figs = saved_figures
    src = _volume(tmp_path / "scan.nii.gz")
    hp = {"config": {"task": "segment", "spacing": None, "intensity": None, "patch_size": 4}, "num_classes": 3,
          "data_info": {"class_names": ["background", "liver", "tumour"]}}
    predict_segmentation(ThresholdNet(100.0), hp, [src], tmp_path / "pred", say=None, model_name="ThresholdNet")
    assert (tmp_path / "pred" / "scan_seg_overlay.png").is_file() and len(figs) == 1
    fig = figs[0]
    assert len(fig.axes) == 3
    assert "scan.nii.gz" in fig._suptitle.get_text() and "ThresholdNet" in fig._suptitle.get_text()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["liver", "tumour"]
