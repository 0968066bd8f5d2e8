"""equivox.data.bundled_torch: the bundled datasets as torch datasets of dicts: one float (1, D, H, W) occupancy grid
and an int label per item for the shape stores (batched by a DataLoader, class counts), ``repeats`` copies of the one
normalised volume with its LongTensor label map for the segmentation samples (the left/right brain keeps its class
swaps)."""
from __future__ import annotations

import pytest
import torch

from equivox.data.bundled_shapes import load_furniture_shapes
from equivox.data.bundled_torch import (BrainAtlasDataset, BrainAtlasLRDataset, ChestCTDataset, FurnitureShapesDataset,
                                        KiCadPartsDataset, LIDCNoduleDataset)
from equivox.data.bundled_volumes import load_brain_atlas_lr_sample


def test_lidc_torch_dataset():
    ds = LIDCNoduleDataset("val")
    item = ds[3]
    assert item["image"].shape == (1, 32, 32, 32) and item["image"].dtype == torch.float32
    assert set(torch.unique(item["image"]).tolist()) <= {0.0, 1.0}
    assert item["label"] in (0, 1) and isinstance(item["label"], int)
    assert item["patient_id"].startswith("LIDC-IDRI-")
    assert sum(ds.class_counts().values()) == len(ds)
    loader = torch.utils.data.DataLoader(ds, batch_size=8)
    batch = next(iter(loader))
    assert batch["image"].shape == (8, 1, 32, 32, 32) and batch["label"].shape == (8,)


def test_furniture_torch_dataset():
    d = load_furniture_shapes()
    train = FurnitureShapesDataset("train")
    assert len(train) == int((d["split"] == "train").sum())
    assert train[0]["image"].shape == (1, 32, 32, 32)


def test_kicad_parts_torch_dataset():
    ds = KiCadPartsDataset("val")
    item = ds[0]
    assert item["image"].shape == (1, 32, 32, 32) and item["model_path"].endswith(".wrl")
    assert sum(ds.class_counts().values()) == len(ds)


def test_chest_ct_torch_dataset():
    ds = ChestCTDataset(repeats=2)
    assert len(ds) == 2
    item = ds[1]
    assert item["image"].shape == (1, 120, 120, 110) and item["image"].dtype == torch.float32
    assert item["label"].dtype == torch.int64 and item["label"].shape == (1, 120, 120, 110)
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    with pytest.raises(IndexError):
        ds[2]


def test_brain_torch_dataset():
    item = BrainAtlasDataset()[0]
    assert item["image"].shape == (1, 90, 108, 90) and item["label"].dtype == torch.int64
    assert item["label"].max().item() == 7


def test_brain_atlas_lr_torch_dataset_keeps_the_class_swaps():
    s = load_brain_atlas_lr_sample()
    ds = BrainAtlasLRDataset()
    assert ds[0]["label"].max().item() == 15 and ds.class_swaps == s["class_swaps"]
