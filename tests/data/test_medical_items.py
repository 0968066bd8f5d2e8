"""equivox.data.medical_items: item lists of medical segmentation data: an image folder and a label folder matched
by file name (an image suffix stripped, unmatched files and two images of one name refused, listing both sides), a
Decathlon folder's dataset.json (missing folder, file or listed files, invalid JSON, no labels named), and the image
extensions known."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from equivox.data import DataError
from equivox.data.medical_items import (IMAGE_EXTENSIONS, decathlon_items, decathlon_labels, folder_pair_items,
                                        strip_image_extension)


def test_folder_pair_items(tmp_path, save_nifti):
    imgs, labs = tmp_path / "images", tmp_path / "labels"
    imgs.mkdir()
    labs.mkdir()
    for name in ("b", "a"):
        save_nifti(imgs / f"{name}_0000.nii.gz", np.zeros((4, 4, 4), np.float32), np.eye(4))
        save_nifti(labs / f"{name}.nii", np.zeros((4, 4, 4), np.uint8), np.eye(4))
    (imgs / "notes.txt").write_text("ignored")
    items = folder_pair_items(imgs, labs, image_suffix="_0000")
    assert [Path(i["image"]).name for i in items] == ["a_0000.nii.gz", "b_0000.nii.gz"]
    assert [Path(i["label"]).name for i in items] == ["a.nii", "b.nii"]
    save_nifti(imgs / "c_0000.nii.gz", np.zeros((4, 4, 4), np.float32), np.eye(4))
    save_nifti(labs / "z.nii.gz", np.zeros((4, 4, 4), np.uint8), np.eye(4))
    with pytest.raises(DataError,
                       match=r"images without a label.*c_0000\.nii\.gz.*labels without an image.*z\.nii\.gz"):
        folder_pair_items(imgs, labs, image_suffix="_0000")
    with pytest.raises(DataError, match="label folder not found"):
        folder_pair_items(imgs, tmp_path / "nope")


def test_folder_pair_items_refuses_two_images_of_one_name(tmp_path, file_hashes, save_nifti):
    img = np.zeros((6, 6, 6), np.float32)
    for d in ("img", "lab"):
        (tmp_path / d).mkdir()
    for name in ("case.nii", "case.nii.gz"):
        save_nifti(tmp_path / "img" / name, img, np.eye(4))
    save_nifti(tmp_path / "lab" / "case.nii.gz", img.astype(np.uint8), np.eye(4))
    before = file_hashes(tmp_path)
    with pytest.raises(DataError, match=r"share the name 'case': case\.nii, case\.nii\.gz"):
        folder_pair_items(tmp_path / "img", tmp_path / "lab")
    assert file_hashes(tmp_path) == before


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


def test_strip_image_extension_knows_double_extensions():
    assert strip_image_extension("case_01.nii.gz") == "case_01" and strip_image_extension("Case.NII") == "Case"
    assert strip_image_extension("notes.txt") is None
    assert ".nii.gz" in IMAGE_EXTENSIONS and ".nii" in IMAGE_EXTENSIONS
