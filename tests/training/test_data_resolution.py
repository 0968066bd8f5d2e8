"""A run resolves its data once: ``resolve_data_settings`` records its resolution on the config it returns, so
``fit`` (and ``build_datasets``) given that config neither look the dataset up again nor re-read files to choose
the intensity; a config changed since is resolved afresh."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

import equivox.training.data as tdata
from equivox.config.train import TrainConfig as ConfigClass
from equivox.training import TrainConfig, build_datasets, resolve_data_settings


@pytest.fixture
def calls(monkeypatch):
    """Counts of ``TrainConfig.validate_dataset`` and of intensity choices from the images (``choose_intensity``,
    which reads them)."""
    import equivox.data.medical as medical

    counts = {"validate_dataset": 0, "choose_intensity": 0}
    validate, choose = ConfigClass.validate_dataset, medical.choose_intensity

    def counted_validate(self):
        counts["validate_dataset"] += 1
        return validate(self)

    def counted_choose(*a, **k):
        counts["choose_intensity"] += 1
        return choose(*a, **k)

    monkeypatch.setattr(ConfigClass, "validate_dataset", counted_validate)
    monkeypatch.setattr(medical, "choose_intensity", counted_choose)
    return counts


def test_classification_dataset_is_looked_up_once(tmp_path, calls):
    np.savez(tmp_path / "d.npz", images=np.random.default_rng(0).integers(0, 255, (10, 4, 4, 4), dtype=np.uint8),
             labels=np.arange(10) % 2)
    cfg = TrainConfig(task="classify", dataset=str(tmp_path / "d.npz"), input_size=2, augment="none")
    resolved, notes = resolve_data_settings(cfg)
    assert calls["validate_dataset"] == 1 and notes == ["input 4^3 -> average-pooled x2 -> 2^3"]
    assert resolve_data_settings(resolved) == (resolved, notes)  # fit resolving again: nothing done
    train, val, info = build_datasets(resolved)  # the dataset is not looked up again
    assert calls["validate_dataset"] == 1 and len(train) == 8 and info.num_classes == 2
    build_datasets(cfg)  # an unresolved config: looked up once for all its splits
    assert calls["validate_dataset"] == 2
    resolved.input_size = 4  # changed since: resolved afresh
    assert resolve_data_settings(resolved)[1] == ["input 4^3 as stored"] and calls["validate_dataset"] == 3


def test_segmentation_intensity_is_chosen_once(tmp_path, calls):
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    for i in range(3):
        lab = np.zeros((8, 8, 8), np.uint8)
        lab[2:6, 2:6, 2:6] = 1
        nib.save(nib.Nifti1Image(lab * 1600.0 - 800.0, np.eye(4)), str(tmp_path / "img" / f"c{i}.nii.gz"))
        nib.save(nib.Nifti1Image(lab, np.eye(4)), str(tmp_path / "lab" / f"c{i}.nii.gz"))
    cfg = TrainConfig(task="segment", image_dir=str(tmp_path / "img"), label_dir=str(tmp_path / "lab"),
                      num_classes=2, channels=(1, 1), strides=(2,), patch_size=8, val_crop=8)
    resolved, notes = resolve_data_settings(cfg)
    assert resolved.intensity == "ct" and calls == {"validate_dataset": 1, "choose_intensity": 1}
    assert notes[-1].startswith("intensity ct (") and resolve_data_settings(resolved) == (resolved, notes)
    train, val, info = build_datasets(resolved)  # applies the resolved rule: nothing chosen or looked up again
    assert info.extra["intensity"] == "ct" and calls == {"validate_dataset": 1, "choose_intensity": 1}
    assert tdata.dataset_spec(resolved) is None and calls["validate_dataset"] == 1
