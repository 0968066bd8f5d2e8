"""equivox.data.registry: the dataset registry is the single source of dataset names: a dataset registered from
user code is accepted by the CLI, the training config and the training data code; an unknown name is rejected
everywhere with the registered names listed; a bundled dataset taken out of the registry is unknown everywhere."""
from __future__ import annotations

import ast
import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

from equivox import cli
from equivox.data import (BUNDLED_DIR, BrainAtlasLRDataset, DataError, DatasetSpec, bundled_datasets, bundled_path,
                          dataset_names, find_dataset, get_dataset, list_datasets, register_dataset,
                          unregister_dataset)
from equivox.training import TrainConfig, build_datasets, classification_arrays

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = {"lidc": "lidc_nodules_32", "furniture": "furniture_shapes_32", "chest_ct": "chest_ct_3mm",
           "brain_atlas": "brain_atlas_2mm", "kicad_parts": "kicad_parts_32",
           "kicad_part_segments": "kicad_part_segments_16", "brain_atlas_lr": "brain_atlas_lr_2mm"}
#: second views of bundled files (no file-stem alias): name -> the dataset whose files they cut
HELDOUT = {"chest_ct_heldout": "chest_ct", "brain_atlas_heldout": "brain_atlas",
           "brain_atlas_lr_heldout": "brain_atlas_lr"}
TINY_ARGS = ["--task", "classify", "--input-size", "4", "--channels", "2,2", "--strides", "2", "--convs-per-level",
             "1", "--epochs", "1", "--batch-size", "4", "--no-progress"]


def _tiny_split(split: str) -> dict:
    """12 / 6 / 6 random 4^3 grids in two classes: class 1 has its mass in the first half of the grid."""
    n = {"train": 12, "val": 6, "test": 6}[split]
    rng = np.random.default_rng({"train": 0, "val": 1, "test": 2}[split])
    labels = np.arange(n) % 2
    images = rng.random((n, 4, 4, 4)).astype(np.float32) * 0.1
    images[labels == 1, :2] += 1.0
    return {"images": images, "labels": labels, "class_names": ["low", "high"]}


def _tiny_volumes(split: str) -> dict:
    """One 8^3 two-channel volume per split with a cube of class 2 and a slab of class 1."""
    rng = np.random.default_rng(3 if split == "train" else 4)
    img = rng.random((2, 8, 8, 8)).astype(np.float32)
    lab = np.zeros((8, 8, 8), dtype=np.uint8)
    lab[:2] = 1
    lab[3:6, 3:6, 3:6] = 2
    return {"volumes": [(img, lab)], "label_names": {0: "background", 1: "slab", 2: "cube"}}


@pytest.fixture
def tiny():
    """A tiny in-memory classification dataset registered from user code for one test."""
    spec = register_dataset(DatasetSpec(name="tiny_test_cls", task="classification", load=_tiny_split,
                                        description="random grids", licence="CC0 (test data)", citation="none",
                                        aliases=("tiny_cls_alias",)))
    yield spec
    unregister_dataset(spec.name)


@pytest.fixture
def tiny_seg():
    spec = register_dataset(DatasetSpec(name="tiny_test_seg", task="segment", load=_tiny_volumes,
                                        licence="CC0 (test data)"))
    yield spec
    unregister_dataset(spec.name)


# ------------------------------------------------------------------------------------------------ the registry
def test_bundled_datasets_are_registered_with_provenance_from_their_json():
    assert dataset_names()[:14] == ("lidc", "furniture", "chest_ct", "brain_atlas", "kicad_parts",
                                    "kicad_part_segments", "brain_atlas_lr", "chest_ct_heldout", "brain_atlas_heldout",
                                    "brain_atlas_lr_heldout",
                                    "lidc_spiculation", "lidc_lobulation", "lidc_sphericity", "lidc_margin")
    assert dataset_names("classify")[:7] == ("lidc", "furniture", "kicad_parts", "lidc_spiculation", "lidc_lobulation",
                                             "lidc_sphericity", "lidc_margin")
    assert dataset_names("segmentation")[:7] == ("chest_ct", "brain_atlas", "kicad_part_segments", "brain_atlas_lr",
                                                 "chest_ct_heldout", "brain_atlas_heldout", "brain_atlas_lr_heldout")
    for name, stem in BUNDLED.items():
        spec = get_dataset(name)
        assert get_dataset(stem) is spec and find_dataset(stem) is spec  # the file stem is an alias
        record = json.loads((BUNDLED_DIR / f"{stem}.json").read_text())
        # licence, citation and description are read from the JSON, not repeated in code
        assert (spec.licence, spec.citation, spec.description) == ("", "", "")
        meta = spec.metadata()
        assert meta["licence"] == record["licence"] and meta["citation"] == record["citation"]
        assert meta["description"] == record["description"] and meta["task"] == record["task"] == spec.task
        assert meta["available"] is True and meta["files"] == record["files"]
        assert spec.build_script and (ROOT / spec.build_script).is_file()
        assert spec.build_script.split()[0] in record["build_command"]
        assert bundled_datasets()[stem]["loader"] == meta["loader"] == spec.loader
    with pytest.raises(FileNotFoundError, match="data_scripts/build_furniture_shapes.py"):
        bundled_path("furniture_shapes_32_missing.npz")
    for name, base in HELDOUT.items():  # same files and records as the whole-volume dataset, no alias taken
        spec, whole = get_dataset(name), get_dataset(base)
        assert spec.aliases == () and spec.provenance == whole.provenance
        assert spec.metadata()["licence"] == whole.metadata()["licence"] and spec.metadata()["available"] is True
    assert bundled_datasets()["chest_ct_3mm"]["loader"] == get_dataset("chest_ct").loader


def test_lidc_attribute_datasets_share_the_lidc_split():
    lidc_test = get_dataset("lidc").load_split("test")
    for attribute in ("spiculation", "lobulation", "sphericity", "margin"):
        spec = get_dataset(f"lidc_{attribute}", "classification")
        assert spec.aliases == () and spec.metadata()["available"] is True
        d = spec.load_split("test")
        assert np.array_equal(d["images"], lidc_test["images"]) and set(np.unique(d["labels"])) == {0, 1}
        assert len(d["class_names"]) == 2 and d["class_names"][1] in ("spiculated", "lobulated", "round", "sharp")
    assert "lidc_attributes_32" in bundled_datasets()


def test_kicad_parts_registry_splits():
    spec = get_dataset("kicad_parts", "classification")
    sizes = {}
    for split in ("train", "val", "test"):
        d = spec.load_split(split)
        n = len(d["labels"])
        assert d["images"].shape == (n, 32, 32, 32) and d["images"].dtype == bool
        assert len(d["class_names"]) == 31 and d["class_names"][0] == "Button_Switch_SMD"
        assert set(np.unique(d["labels"])) == set(range(31)), f"{split} lacks a class"
        sizes[split] = n
    assert sizes["test"] >= 800 and sizes["train"] > sizes["test"] > sizes["val"]
    record = json.loads((BUNDLED_DIR / "kicad_parts_32.json").read_text())
    assert record["counts"]["per_split"] == sizes


def test_heldout_segmentation_views_cut_the_volume_into_disjoint_parts():
    for name, base in HELDOUT.items():
        (whole_img, whole_lab), = get_dataset(base).load_split("train")["volumes"]
        parts = {s: get_dataset(name).load_split(s)["volumes"] for s in ("train", "val", "test")}
        assert [len(parts[s]) for s in ("train", "val", "test")] == [1, 8, 8]
        n = whole_img.shape[1]
        (train_img, train_lab), = parts["train"]
        assert torch.equal(train_img, whole_img[:, : n // 2]) and torch.equal(train_lab, whole_lab[:, : n // 2])
        # val + test tiles hold every voxel of the other half exactly once, in a 4 x 4 checkerboard
        held, held_img = whole_lab[:, n // 2:], whole_img[:, n // 2:]
        H, W = held.shape[2:]
        rows = [slice(k * H // 4, (k + 1) * H // 4) for k in range(4)]
        cols = [slice(k * W // 4, (k + 1) * W // 4) for k in range(4)]
        cells = [(a, b) for a in range(4) for b in range(4)]
        want = {s: [(held_img[:, :, rows[a], cols[b]], held[:, :, rows[a], cols[b]]) for a, b in cells
                    if (a + b) % 2 == (s == "test")] for s in ("val", "test")}
        for s in ("val", "test"):
            assert all(torch.equal(gi, wi) and torch.equal(gl, wl) for (gi, gl), (wi, wl) in zip(parts[s], want[s]))
        assert sum(int(lab.numel()) for s in ("val", "test") for _, lab in parts[s]) == int(held.numel())
        present = {s: set().union(*(torch.unique(lab).tolist() for _, lab in parts[s])) for s in ("val", "test")}
        every = set(range(int(whole_lab.max()) + 1))
        if name != "brain_atlas_lr_heldout":
            assert present["val"] == every and present["test"] == every
            continue
        # the cut along voxel axis 0 (RAS: left to right) is the midline: training sees the left hemisphere, the
        # test tiles the right one; naming the right-side classes there is the mirror-transfer task
        pairs = BrainAtlasLRDataset().class_swaps
        left, right = [p[0] for p in pairs], [p[1] for p in pairs]

        def voxels(volumes, classes):
            return sum(int(torch.isin(lab, torch.tensor(classes)).sum()) for _, lab in volumes)

        assert voxels(parts["train"], right) < 0.05 * voxels(parts["train"], left + right)
        assert voxels(parts["test"], left) < 0.05 * voxels(parts["test"], left + right)


def test_register_rejects_bad_specs_and_taken_names(tiny):
    with pytest.raises(ValueError, match="already registered"):
        register_dataset(DatasetSpec(name="tiny_test_cls", task="classification", load=_tiny_split))
    with pytest.raises(ValueError, match="'lidc'.*already used by dataset 'lidc'"):
        register_dataset(DatasetSpec(name="other", task="classification", load=_tiny_split, aliases=("lidc",)))
    with pytest.raises(ValueError, match="'tiny_cls_alias'.*already used by dataset 'tiny_test_cls'"):
        register_dataset(DatasetSpec(name="tiny_cls_alias", task="classification", load=_tiny_split))
    assert find_dataset("other") is None  # a failed registration leaves nothing behind
    with pytest.raises(ValueError, match="no path separators"):
        DatasetSpec(name="my/data", task="classification", load=_tiny_split)
    with pytest.raises(ValueError, match="no path separators"):
        DatasetSpec(name="data.npz", task="classification", load=_tiny_split)
    with pytest.raises(ValueError, match="task must be one of"):
        DatasetSpec(name="x", task="detection", load=_tiny_split)
    with pytest.raises(ValueError, match="load must be a callable"):
        DatasetSpec(name="x", task="classification", load="not callable")
    with pytest.raises(ValueError, match="needs a DatasetSpec"):
        register_dataset({"name": "x"})
    # replace=True swaps the entry (and its aliases)
    new = register_dataset(DatasetSpec(name="tiny_test_cls", task="classification", load=_tiny_split,
                                       licence="changed"), replace=True)
    assert get_dataset("tiny_test_cls") is new and find_dataset("tiny_cls_alias") is None
    assert get_dataset("tiny_test_cls").metadata()["licence"] == "changed"


def test_loader_contract_is_checked_with_the_dataset_and_split_named():
    bad = [
        ("bad_cls", "classification", lambda s: {"images": np.zeros((2, 4, 4, 4))}, r"lacks \['labels'\]"),
        ("bad_cls2", "classification", lambda s: [1, 2], "must return a mapping, got list"),
        ("bad_seg", "segmentation", lambda s: {"images": 1}, "needs 'volumes'"),
        ("bad_seg2", "segmentation", lambda s: {"volumes": [(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)))]},
         r"same spatial shape, got \(1, 4, 4, 4\) and \(1, 4, 4, 5\)"),
        ("bad_seg3", "segmentation", lambda s: {"volumes": [(np.full((4, 4, 4), np.nan), np.zeros((4, 4, 4)))]},
         "volume 0 image holds 64 NaN"),
        ("bad_seg4", "segmentation", lambda s: {"volumes": [(np.zeros((4, 4, 4)), np.full((4, 4, 4), 0.5))]},
         "not integer class indices"),
        ("bad_seg5", "segmentation", lambda s: {"volumes": [(np.zeros((4, 4, 4)), -np.ones((4, 4, 4), int))]},
         r"negative class indices \(-1\)"),
    ]
    for name, task, load, pattern in bad:
        spec = DatasetSpec(name=name, task=task, load=load)
        with pytest.raises(DataError, match=rf"dataset '{name}' \[val\][: ].*{pattern}"):
            spec.load_split("val")
    with pytest.raises(ValueError, match="split must be one of"):
        DatasetSpec(name="ok", task="classification", load=_tiny_split).load_split("training")


# ------------------------------------------------------------------------------------------------ single source
def test_user_dataset_is_accepted_by_config_training_data_and_cli(tiny, tmp_path, capsys, last_error_line):
    # the config validator
    cfg = TrainConfig(task="classify", dataset="tiny_test_cls", input_size=4, channels=(2, 2), strides=(2,))
    assert cfg.validate_dataset() is tiny
    assert TrainConfig(task="classify", dataset="tiny_cls_alias").validate_dataset() is tiny
    with pytest.raises(DataError, match="'tiny_test_cls' is a classification dataset; use task 'classify'"):
        TrainConfig(task="segment", dataset="tiny_test_cls").validate_dataset()
    # the training data code
    train, val, info = build_datasets(cfg)
    assert (len(train), len(val), info.num_classes, info.class_names) == (12, 6, 2, ["low", "high"])
    assert tuple(train[0]["image"].shape) == (1, 4, 4, 4) and train[1]["label"] == 1
    x, y, names = classification_arrays(cfg, "test")
    assert tuple(x.shape) == (6, 1, 4, 4, 4) and y.tolist() == [0, 1] * 3 and names == ["low", "high"]
    # the CLI: listing, info, training, evaluation of the checkpoint
    assert cli.main(["data", "list"]) == 0
    listing = capsys.readouterr().out
    row = next(line for line in listing.splitlines() if line.startswith("tiny_test_cls"))
    assert "tiny_cls_alias" in row and "classification" in row and "CC0 (test data)" in row
    assert cli.main(["data", "info", "tiny_cls_alias"]) == 0
    info_out = capsys.readouterr().out
    assert "tiny_test_cls (tiny_cls_alias): random grids" in info_out and "_tiny_split" in info_out
    assert cli.main(["data", "build", "tiny_test_cls"]) == 2
    assert "tiny_test_cls has no build script" in last_error_line()
    out = tmp_path / "run"
    assert cli.main(["train", "--dataset", "tiny_test_cls", *TINY_ARGS, "--out", str(out)]) == 0
    assert " 3 steps" in capsys.readouterr().out  # 12 training items, batch 4
    ev = tmp_path / "eval"
    assert cli.main(["evaluate", str(out / "checkpoints" / "last.ckpt"), "--rotations", "identity", "--out", str(ev),
                     "--no-progress"]) == 0
    report = json.loads((ev / "report.json").read_text())
    assert report["meta"]["n_samples"] == 6 and [r["kind"] for r in report["rows"]] == ["identity"]


def test_user_segmentation_dataset_trains_through_the_registry(tiny_seg):
    cfg = TrainConfig(task="segment", dataset="tiny_test_seg", patch_size=4, patches_per_epoch=3, val_crop=None,
                      downsample=2, channels=(2, 2), strides=(2,))
    train, val, info = build_datasets(cfg)
    assert (info.in_channels, info.num_classes, info.class_names) == (2, 3, ["background", "slab", "cube"])
    assert info.spatial_size == (4, 4, 4) and len(train) == 3 and len(val) == 1
    item = train[0]
    assert tuple(item["image"].shape) == (2, 4, 4, 4) and tuple(item["label"].shape) == (1, 4, 4, 4)
    assert tuple(val[0]["label"].shape) == (1, 4, 4, 4) and set(val[0]["label"].unique().tolist()) <= {0, 1, 2}
    with pytest.raises(DataError, match="'tiny_test_seg' is a segmentation dataset; use task 'segment'"):
        build_datasets(TrainConfig(task="classify", dataset="tiny_test_seg"))


def test_unknown_name_is_rejected_everywhere_listing_the_registered_ones(tiny, tmp_path, capsys, last_error_line):
    def registered_listed(msg: str, names) -> None:
        assert "unknown dataset 'nope'" in msg
        for n in names:
            assert n in msg, (n, msg)

    with pytest.raises(DataError) as err:
        TrainConfig(task="classify", dataset="nope").validate_dataset()
    registered_listed(str(err.value), ("lidc", "furniture", "tiny_test_cls"))
    assert "chest_ct" not in str(err.value)  # the datasets of the task
    with pytest.raises(DataError) as err:
        build_datasets(TrainConfig(task="segment", dataset="nope"))
    registered_listed(str(err.value), ("chest_ct", "brain_atlas"))
    with pytest.raises(DataError) as err:
        get_dataset("nope")
    registered_listed(str(err.value), ("lidc", "chest_ct", "tiny_test_cls"))
    out = tmp_path / "never"
    assert cli.main(["train", "--dataset", "nope", *TINY_ARGS, "--out", str(out)]) == 2
    registered_listed(last_error_line(), ("lidc", "furniture", "tiny_test_cls"))
    assert not out.exists()  # rejected before anything is written
    assert cli.main(["data", "info", "nope"]) == 2
    registered_listed(last_error_line(), ("lidc", "tiny_test_cls"))
    # a path is not a name: it is checked when loaded, and named in the error
    with pytest.raises(DataError, match="not found: /no/such.npz"):
        build_datasets(TrainConfig(task="classify", dataset="/no/such.npz"))


def test_a_bundled_dataset_taken_out_of_the_registry_is_unknown_everywhere(capsys, last_error_line):
    spec = unregister_dataset("furniture")
    try:
        assert "furniture" not in dataset_names() and "furniture_shapes_32" not in bundled_datasets()
        with pytest.raises(DataError, match="unknown dataset 'furniture'"):
            TrainConfig(task="classify", dataset="furniture").validate_dataset()
        with pytest.raises(DataError, match="unknown dataset 'furniture'"):
            classification_arrays(TrainConfig(task="classify", dataset="furniture"), "train")
        assert cli.main(["data", "list"]) == 0
        assert "furniture" not in capsys.readouterr().out
        assert cli.main(["data", "info", "furniture_shapes_32"]) == 2
        assert "unknown dataset 'furniture_shapes_32'" in last_error_line()
    finally:
        register_dataset(spec)
    assert list_datasets("classification")[-1] is spec


_NO_DATASET_NAMES = ["src/equivox/training/data.py", "src/equivox/training/config.py",
                     *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "src/equivox/config").glob("*.py")),
                     *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "src/equivox/cli").glob("*.py"))]


@pytest.mark.parametrize("path", _NO_DATASET_NAMES)
def test_no_dataset_name_is_spelled_out_outside_the_registry(path):
    """Training code, config and CLI name no bundled dataset (the config's default value excepted; the demo's
    dataset choice is a demo preset, not a list of datasets)."""
    tree = ast.parse((ROOT / path).read_text())
    allowed = {"src/equivox/config/sections.py": {("lidc", "default")},
               "src/equivox/cli/demo.py": {("lidc", "demo"), ("furniture", "demo"), ("kicad_part_segments", "demo"),
                                           ("chest_ct", "demo")}}.get(path, set())
    names = set(BUNDLED) | set(BUNDLED.values())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign):  # a field default, literal or the first argument of option(...)
            value = node.value.args[0] if isinstance(node.value, ast.Call) and node.value.args else node.value
            if isinstance(value, ast.Constant) and value.value in names:
                found.add((value.value, "default"))
                value.value = None
        if isinstance(node, ast.Call) and any(k.arg == "choices" for k in node.keywords) and any(
                isinstance(a, ast.Constant) and a.value == "--dataset" for a in node.args):
            choices = next(k.value for k in node.keywords if k.arg == "choices")
            found |= {(c.value, "demo") for c in getattr(choices, "elts", [])}
            choices.elts = []
    stray = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
             and (n.value in names or any(f"'{s}'" in n.value or f'"{s}"' in n.value for s in names))]
    assert not stray, f"{path} spells out dataset names {stray}: read them from equivox.data.registry"
    assert found <= allowed, found - allowed


# ------------------------------------------------------------------------------------------------ the example
def test_custom_dataset_example_registers_and_trains_one_epoch(tmp_path, capsys):
    mod = runpy.run_path(str(ROOT / "examples" / "custom_dataset.py"))
    try:
        res = mod["main"](str(tmp_path / "run"), epochs=1)
        assert get_dataset("toy_shapes").metadata()["licence"].startswith("CC0")
        assert res.global_step == 6 and res.info.n_train == 48 and res.info.class_names == ["bar", "cross"]
        assert res.last_checkpoint is not None and res.last_checkpoint.is_file()
        assert "trained on 48 toy_shapes items (bar, cross)" in capsys.readouterr().out
        # the example's data: each class is closed under the cube rotations that generated it
        images, labels = mod["make_shapes"](6, seed=5)
        assert images.shape == (6, 8, 8, 8) and set(labels.tolist()) <= {0, 1} and images.sum() > 0
        mod["main"](str(tmp_path / "again"), epochs=1)  # registering again in one process is fine
    finally:
        unregister_dataset("toy_shapes")
