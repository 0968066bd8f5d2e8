"""equivox.data.bundled_files: the files of the bundled datasets: each one's provenance record (licence, citation,
build command, sha256 of every file, which still matches), PROVENANCE.md naming every dataset and licence, a small
total size, the listing of what is available, and a missing file named with the script that builds it."""
from __future__ import annotations

import hashlib
import json

import pytest

from equivox.data.bundled_files import BUNDLED_DIR as D
from equivox.data.bundled_files import bundled_datasets, bundled_path

NAMES = ["lidc_nodules_32", "chest_ct_3mm", "furniture_shapes_32", "brain_atlas_2mm", "kicad_parts_32",
         "kicad_part_segments_16", "brain_atlas_lr_2mm", "lidc_attributes_32"]


@pytest.mark.parametrize("name", NAMES)
def test_provenance_json_and_checksums(name):
    meta = json.loads((D / f"{name}.json").read_text())
    for key in ("licence", "citation", "source_package", "build_command", "build_date", "files",
                "description", "task"):
        assert meta.get(key), f"{name}.json lacks {key}"
    assert meta["files"]
    for fname, rec in meta["files"].items():
        data = (D / fname).read_bytes()
        assert len(data) == rec["bytes"]
        assert hashlib.sha256(data).hexdigest() == rec["sha256"], f"{fname} changed since build"


def test_provenance_md_mentions_every_dataset_and_licence():
    text = (D / "PROVENANCE.md").read_text()
    for name in NAMES:
        assert name in text
    for lic in ("CC BY 3.0", "MIT", "CC0", "BSD-3-clause", "CC BY-SA 4.0"):
        assert lic in text


def test_total_size_is_small():
    total = sum(p.stat().st_size for p in D.iterdir() if p.is_file())
    assert total < 10 * 2**20, f"bundled data is {total / 2**20:.1f} MB"


def test_bundled_datasets_listing():
    listing = bundled_datasets()
    assert set(NAMES) <= set(listing)
    for name in NAMES:
        info = listing[name]
        assert info["available"] is True
        assert info["licence"] and info["description"] and info["loader"]
        assert info["task"] in ("classification", "segmentation")


def test_missing_file_error_is_loud():
    with pytest.raises(FileNotFoundError, match="data_scripts/build_lidc_nodules.py"):
        bundled_path("lidc_nodules_32_does_not_exist.npz")
