"""Medical-volume loading of equivox.data: item lists, validation errors, MONAI pipeline geometry."""
import gzip
import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from equivox.data import (
    DataError,
    RandGridRotatedd,
    decathlon_items,
    decathlon_labels,
    folder_pair_items,
    segmentation_dataset,
    segmentation_transforms,
    validate_pair,
)


def _hashes(folder: Path):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _save(path, data, affine):
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return path


def _pair(folder: Path, name="case", shape=(10, 12, 8), affine=None, label_affine=None, label=None, seed=0):
    rng = np.random.default_rng(seed)
    affine = np.diag([2.0, 1.5, 3.0, 1.0]) if affine is None else affine
    img = rng.normal(0, 300, shape).astype(np.float32)
    if label is None:
        label = np.zeros(shape, np.uint8)
        label[3:7, 4:9, 2:6] = 1
    folder.mkdir(parents=True, exist_ok=True)
    ip = _save(folder / f"{name}_img.nii.gz", img, affine)
    lp = _save(folder / f"{name}_lab.nii.gz", label, affine if label_affine is None else label_affine)
    return ip, lp, img, label


def test_validate_pair_ok_and_errors(tmp_path):
    ip, lp, _, _ = _pair(tmp_path / "ok")
    info = validate_pair(ip, lp, num_classes=2)
    assert info["shape"] == (10, 12, 8) and info["label_values"] == [0, 1]
    np.testing.assert_allclose(info["spacing"], (2.0, 1.5, 3.0))

    bad = tmp_path / "bad"
    ip2, lp2, _, _ = _pair(bad, "shape", label=np.zeros((10, 12, 9), np.uint8))
    ip3, lp3, _, _ = _pair(bad, "affine", label_affine=np.diag([2.0, 1.5, 3.1, 1.0]))
    lab = np.zeros((10, 12, 8), np.int16)
    lab[0, 0, 0], lab[1, 1, 1], lab[2, 2, 2] = 3, -1, 7
    ip4, lp4, _, _ = _pair(bad, "values", label=lab)
    trunc = bad / "trunc_lab.nii.gz"
    trunc.write_bytes(lp.read_bytes()[:-60])
    notnii = bad / "junk.nii"
    notnii.write_bytes(b"this is not a nifti file at all" * 20)
    before = _hashes(bad)

    with pytest.raises(DataError, match=r"label file not found: .*missing\.nii\.gz"):
        validate_pair(ip, bad / "missing.nii.gz", 2)
    with pytest.raises(DataError, match=r"shape mismatch.*\(10, 12, 8\).*\(10, 12, 9\)"):
        validate_pair(ip2, lp2, 2)
    with pytest.raises(DataError, match="affine mismatch.*affine_img.*affine_lab"):
        validate_pair(ip3, lp3, 2)
    validate_pair(ip3, lp3, 2, affine_atol=0.2)  # within a looser tolerance
    with pytest.raises(DataError, match=r"values_lab.*label values \[-1, 3, 7\] are outside range\(2\)"):
        validate_pair(ip4, lp4, 2)
    validate_pair(ip4, lp4, None)  # value check skipped
    with pytest.raises(DataError, match=r"cannot read label file .*trunc_lab\.nii\.gz.*truncated"):
        validate_pair(ip, trunc, 2)
    with pytest.raises(DataError, match=r"cannot read image file .*junk\.nii"):
        validate_pair(notnii, lp, 2)
    assert _hashes(bad) == before  # user files untouched


def test_decathlon_items_and_pipeline_geometry(tmp_path, monkeypatch):
    root = tmp_path / "Task99_Tiny"
    # LPS-like orientation (flipped first two axes) with anisotropic spacing
    affine = np.array([[-2.0, 0, 0, 10], [0, -1.5, 0, 20], [0, 0, 3.0, -5], [0, 0, 0, 1]])
    for k in range(2):
        ip, lp, img, lab = _pair(root / "tmp", f"c{k}", affine=affine, seed=k)
        (root / "imagesTr").mkdir(exist_ok=True)
        (root / "labelsTr").mkdir(exist_ok=True)
        ip.rename(root / "imagesTr" / f"case_{k}.nii.gz")
        lp.rename(root / "labelsTr" / f"case_{k}.nii.gz")
    (root / "tmp").rmdir()
    meta = {"name": "Tiny", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "organ"},
            "training": [{"image": f"./imagesTr/case_{k}.nii.gz", "label": f"./labelsTr/case_{k}.nii.gz"}
                         for k in range(2)], "test": []}
    (root / "dataset.json").write_text(json.dumps(meta))
    before = _hashes(root)

    items = decathlon_items(root)
    assert len(items) == 2 and items[1]["label"].endswith("labelsTr/case_1.nii.gz")
    labels = decathlon_labels(root)
    assert labels == {0: "background", 1: "organ"}

    tf = segmentation_transforms(spacing=(1.0, 1.0, 1.0), intensity="ct", ct_window=(-500, 500),
                                 num_classes=len(labels))
    out = tf(items[0])
    image, label = out["image"], out["label"]
    # RAS orientation: positive diagonal; spacing 1 mm
    aff = image.affine.numpy()
    np.testing.assert_allclose(np.abs(np.diag(aff)[:3]), 1.0, atol=1e-6)
    assert (np.diag(aff)[:3] > 0).all()
    np.testing.assert_allclose(label.affine.numpy(), aff)
    # physical extent preserved: 10*2, 12*1.5, 8*3 mm at 1 mm spacing (MONAI keeps the centre)
    assert image.shape[0] == 1 and abs(image.shape[1] - 19) <= 1 and abs(image.shape[2] - 17) <= 1
    assert abs(image.shape[3] - 22) <= 1 and label.shape == image.shape
    # CT window to [0, 1], label values exact
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    assert set(torch.unique(label).tolist()) == {0.0, 1.0}
    # the label's world-space centre of mass is where it was in the source file
    src = nib.load(items[0]["label"])
    src_idx = np.argwhere(np.asarray(src.dataobj) > 0).mean(0)
    src_world = src.affine @ np.r_[src_idx, 1]
    new_idx = np.argwhere(label[0].numpy() > 0).mean(0)
    new_world = aff @ np.r_[new_idx, 1]
    np.testing.assert_allclose(new_world[:3], src_world[:3], atol=1.0)

    # patches + rotation augmentation inside the pipeline, with caching
    tf2 = segmentation_transforms(spacing=(2.0, 2.0, 2.0), intensity="mri", patch_size=(8, 8, 8), num_samples=2,
                                  num_classes=2, extra=[RandGridRotatedd(("image", "label"))])
    tf2.set_random_state(0)
    ds = segmentation_dataset(items, tf2, cache="memory")
    patches = ds[0]
    assert isinstance(patches, list) and len(patches) == 2
    for p in patches:
        assert p["image"].shape == (1, 8, 8, 8) and p["label"].shape == (1, 8, 8, 8)
    plain = segmentation_transforms(spacing=None, intensity=None, num_classes=2)
    ref = plain(dict(items[1]))  # the uncached pipeline
    ds_disk = segmentation_dataset(items, plain, cache="disk", cache_dir=tmp_path / "pcache")
    first = ds_disk[1]
    cached_files = sorted((tmp_path / "pcache").iterdir())
    assert cached_files
    # a second dataset instance must read the cache: loading the files again would fail here
    from equivox.data.medical import LoadImageCheckedd

    def no_loading(self, data, reader=None):
        raise AssertionError("the disk cache was not used")

    monkeypatch.setattr(LoadImageCheckedd, "__call__", no_loading)
    ds_again = segmentation_dataset(items, segmentation_transforms(spacing=None, intensity=None, num_classes=2),
                                    cache="disk", cache_dir=tmp_path / "pcache")
    second = ds_again[1]
    for key in ("image", "label"):
        np.testing.assert_array_equal(first[key].numpy(), ref[key].numpy())
        np.testing.assert_array_equal(second[key].numpy(), ref[key].numpy())
        np.testing.assert_allclose(first[key].affine.numpy(), ref[key].affine.numpy())
    assert sorted((tmp_path / "pcache").iterdir()) == cached_files
    assert _hashes(root) == before


def test_mri_zscore_over_nonzero(tmp_path):
    img = np.zeros((8, 8, 8), np.float32)
    img[2:6, 2:6, 2:6] = np.random.default_rng(3).normal(100, 20, (4, 4, 4))
    ip = _save(tmp_path / "mri.nii.gz", img, np.eye(4))
    lp = _save(tmp_path / "mri_seg.nii.gz", (img > 100).astype(np.uint8), np.eye(4))
    out = segmentation_transforms(spacing=None, intensity="mri", num_classes=2)({"image": str(ip), "label": str(lp)})
    x = out["image"][0].numpy()
    inside = x[2:6, 2:6, 2:6]
    assert abs(inside.mean()) < 1e-5 and abs(inside.std() - 1) < 1e-3
    assert np.all(x[0] == 0)


def test_pipeline_errors_name_the_files(tmp_path):
    ip, lp, _, _ = _pair(tmp_path, "a")
    ip2, lp2, _, _ = _pair(tmp_path, "b", label_affine=np.diag([2.0, 1.5, 3.0, 1.0]) + np.eye(4) * 0.01)
    lab = np.zeros((10, 12, 8), np.uint8)
    lab[0, 0, 0] = 5
    ip3, lp3, _, _ = _pair(tmp_path, "c", label=lab)
    trunc = tmp_path / "t_img.nii.gz"
    trunc.write_bytes(ip.read_bytes()[:100])
    before = _hashes(tmp_path)
    tf = segmentation_transforms(spacing=None, intensity=None, num_classes=2)
    with pytest.raises(DataError, match=r"image file not found: .*gone\.nii\.gz"):
        tf({"image": str(tmp_path / "gone.nii.gz"), "label": str(lp)})
    with pytest.raises(DataError, match="affine mismatch.*b_img"):
        tf({"image": str(ip2), "label": str(lp2)})
    with pytest.raises(DataError, match=r"c_lab.*label values \[5\] are outside range\(2\)"):
        tf({"image": str(ip3), "label": str(lp3)})
    with pytest.raises(DataError, match=r"cannot read .*t_img\.nii\.gz"):
        tf({"image": str(trunc), "label": str(lp)})
    assert _hashes(tmp_path) == before


def test_folder_pair_items(tmp_path):
    imgs, labs = tmp_path / "images", tmp_path / "labels"
    imgs.mkdir()
    labs.mkdir()
    for name in ("b", "a"):
        _save(imgs / f"{name}_0000.nii.gz", np.zeros((4, 4, 4), np.float32), np.eye(4))
        _save(labs / f"{name}.nii", np.zeros((4, 4, 4), np.uint8), np.eye(4))
    (imgs / "notes.txt").write_text("ignored")
    items = folder_pair_items(imgs, labs, image_suffix="_0000")
    assert [Path(i["image"]).name for i in items] == ["a_0000.nii.gz", "b_0000.nii.gz"]
    assert [Path(i["label"]).name for i in items] == ["a.nii", "b.nii"]
    _save(imgs / "c_0000.nii.gz", np.zeros((4, 4, 4), np.float32), np.eye(4))
    _save(labs / "z.nii.gz", np.zeros((4, 4, 4), np.uint8), np.eye(4))
    with pytest.raises(DataError, match=r"images without a label.*c_0000\.nii\.gz.*labels without an image.*z\.nii\.gz"):
        folder_pair_items(imgs, labs, image_suffix="_0000")
    with pytest.raises(DataError, match="label folder not found"):
        folder_pair_items(imgs, tmp_path / "nope")


def test_decathlon_errors(tmp_path):
    with pytest.raises(DataError, match="Decathlon folder not found"):
        decathlon_items(tmp_path / "none")
    root = tmp_path / "Task"
    root.mkdir()
    with pytest.raises(DataError, match="no dataset.json"):
        decathlon_items(root)
    (root / "dataset.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        decathlon_items(root)
    (root / "dataset.json").write_text(json.dumps({"training": [{"image": "./imagesTr/x.nii.gz",
                                                                 "label": "./labelsTr/x.nii.gz"}]}))
    with pytest.raises(DataError, match=r"2 file\(s\) listed .* missing: .*imagesTr/x\.nii\.gz.*labelsTr/x\.nii\.gz"):
        decathlon_items(root)
    with pytest.raises(DataError, match="no 'labels'"):
        decathlon_labels(root)


# ------------------------------------------------------------------------------------------------ header facts
def test_scan_images_spacing_along_ras_axes_and_channels(tmp_path):
    from equivox.data import check_same_channels, common_spacing, scan_images

    # voxel axes (i, j, k) stored as (A, R, S): zooms (2, 3, 4) -> RAS spacing (3, 2, 4)
    aff = np.zeros((4, 4))
    aff[1, 0], aff[0, 1], aff[2, 2], aff[3, 3] = 2.0, -3.0, 4.0, 1.0
    a = _save(tmp_path / "a.nii.gz", np.zeros((5, 6, 7), np.float32), aff)
    b = _save(tmp_path / "b.nii.gz", np.zeros((5, 6, 7, 2), np.float32), aff)
    infos = scan_images([a, b])
    assert infos[0]["spacing"] == (3.0, 2.0, 4.0) and infos[0]["shape"] == (5, 6, 7)
    assert [i["channels"] for i in infos] == [1, 2]
    assert common_spacing(infos) == (3.0, 2.0, 4.0)
    c = _save(tmp_path / "c.nii.gz", np.zeros((5, 6, 7), np.float32), aff)
    with pytest.raises(DataError, match=r"image .*b\.nii\.gz has 2 channel\(s\) .* 2 other image\(s\) have 1"):
        check_same_channels(scan_images([a, b, c]))
    d = _save(tmp_path / "d.nii.gz", np.zeros((5, 6, 7), np.float32), np.diag([1.0, 1.0, 1.0, 1.0]))
    assert common_spacing(scan_images([a, d])) is None


def test_choose_intensity_from_the_value_range(tmp_path):
    from equivox.data import choose_intensity

    ct = _save(tmp_path / "ct.nii.gz", np.linspace(-1024, 1500, 64, dtype=np.float32).reshape(4, 4, 4), np.eye(4))
    mr = _save(tmp_path / "mr.nii.gz", np.linspace(0, 900, 64, dtype=np.float32).reshape(4, 4, 4), np.eye(4))
    assert choose_intensity([ct])[0] == "ct"
    assert choose_intensity([mr])[0] == "mri"  # large positive values alone are not HU
    name, why = choose_intensity([mr, ct])
    assert name == "ct" and "-1024..1500" in why
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(ct.read_bytes()[:200])
    with pytest.raises(DataError, match="broken.nii.gz"):
        choose_intensity([broken])


def test_truncated_file_is_named_alone(tmp_path):
    ip, lp, _, _ = _pair(tmp_path)
    ip.write_bytes(ip.read_bytes()[: ip.stat().st_size // 2])
    with pytest.raises(DataError) as err:
        segmentation_transforms(spacing=None, intensity=None, num_classes=2)({"image": str(ip), "label": str(lp)})
    msg = str(err.value)
    assert str(ip) in msg and str(lp) not in msg and "{" not in msg.split(":")[0]
