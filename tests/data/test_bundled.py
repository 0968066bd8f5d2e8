"""equivox.data.bundled: the module users import the bundled datasets from: it is this checkout's (no fallback hides an
import error), re-exports the loaders, readers and datasets of the bundled_* modules as the same objects, and
registers each bundled dataset (its file stem an alias) with a loader that gives every split."""
from __future__ import annotations

from pathlib import Path

import pytest

from equivox.data import bundled, bundled_files, bundled_meshes, bundled_shapes, bundled_torch, bundled_volumes

ROOT = Path(__file__).resolve().parents[2]


def test_the_imported_module_is_this_checkouts():
    assert Path(bundled.__file__).resolve() == ROOT / "src" / "equivox" / "data" / "bundled.py", bundled.__file__


def test_every_public_name_is_the_object_of_its_own_module():
    homes = (bundled_files, bundled_shapes, bundled_meshes, bundled_volumes, bundled_torch)
    for name in bundled.__all__:
        owners = [m for m in homes if name in getattr(m, "__all__", ())]
        assert len(owners) == 1, (name, owners)
        assert getattr(bundled, name) is getattr(owners[0], name), name


@pytest.mark.parametrize("name, stem", [("lidc", "lidc_nodules_32"), ("chest_ct", "chest_ct_3mm")])
def test_bundled_datasets_are_registered_under_their_name_and_stem(name, stem):
    from equivox.data import get_dataset

    spec = get_dataset(name)
    assert get_dataset(stem) is spec and stem in spec.aliases
    assert spec.provenance == bundled.BUNDLED_DIR / f"{stem}.json"
    assert spec.build_script.startswith("data_scripts/build_") and (ROOT / spec.build_script).is_file()


def test_a_volume_dataset_gives_its_one_volume_for_every_split():
    from equivox.data import get_dataset

    spec = get_dataset("chest_ct")
    item = bundled.ChestCTDataset()[0]
    for split in ("train", "val", "test"):
        part = spec.load_split(split)
        (image, label), = part["volumes"]
        assert image.shape == item["image"].shape and label.shape == item["label"].shape, split
        assert part["label_names"] == dict(bundled.ChestCTDataset().label_names)
