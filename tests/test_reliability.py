"""Reliability (issue 12): the faults a careful user meets give one clear message, lose nothing, and optional caches
stay optional. Where the fault is in user data, the message names the file and the problem, and the user's files
are unchanged (hashed before and after). See docs/reliability.md for the table of faults and tests."""
from __future__ import annotations

import copy
import hashlib
import io
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import trimesh

from equivox import cache
from equivox.data import (DataError, DataWarning, MeshFolderVoxels, folder_pair_items, load_array, load_voxel_file,
                          segmentation_transforms, validate_pair, voxelize_mesh)
from equivox.training import TrainConfig, build_datasets, fit, load_checkpoint, load_yaml_config

ROOT = Path(__file__).resolve().parents[1]
TINY_CLS = dict(task="classify", input_size=8, channels=(2, 2), strides=(2,), convs_per_level=1, hidden_features=(8,),
                epochs=1, batch_size=4, progress=False, accelerator="cpu")


def _hashes(folder: Path):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def _env(**extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONWARNINGS": "default", **extra}
    env.pop("EQUIVOX_NO_CACHE", None)
    return env


@pytest.fixture
def fresh_warnings(monkeypatch):
    """Reset equivox's warn-once memory so this test sees its own cache warnings."""
    monkeypatch.setattr(cache, "_warned", set())


# ------------------------------------------------------------------------------------------- 1. arrays
def test_load_array_reads_npy_and_rejects_nan(tmp_path):
    a = np.random.default_rng(0).random((4, 5, 6)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    bad = a.copy()
    bad[1, 2, 3] = np.nan
    bad[0, 0, 0] = np.inf
    np.save(tmp_path / "bad.npy", bad)
    before = _hashes(tmp_path)
    np.testing.assert_array_equal(load_array(tmp_path / "a.npy"), a)
    np.testing.assert_array_equal(load_array(str(tmp_path / "a.npy")), a)
    with pytest.raises(DataError, match=r"bad\.npy.*1 NaN and 1 inf"):
        load_voxel_file(tmp_path / "bad.npy")
    assert _hashes(tmp_path) == before


# ------------------------------------------------------------------------------------------- 2. cache folder
def test_import_and_build_with_an_unusable_cache_folder(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("a regular file: nothing can be created below it")
    code = textwrap.dedent("""
        import torch, equivox
        from equivox.nn import EquivariantConv3d, FieldSpec
        conv = EquivariantConv3d(FieldSpec.scalar("trivial", 1), FieldSpec.hidden("trivial", 2))
        print("OUT", tuple(conv(torch.randn(1, 1, 5, 5, 5)).shape))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=_env(EQUIVOX_CACHE_DIR=str(blocker / "cache")), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "OUT (1, 2, 5, 5, 5)" in proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if "CacheWarning" in ln]
    assert len(lines) == 1 and str(blocker / "cache") in lines[0], proc.stderr[-2000:]
    assert blocker.read_text().startswith("a regular file")


def test_kernel_cache_read_and_write_failures_warn_once(tmp_path, monkeypatch, fresh_warnings):
    monkeypatch.setenv("EQUIVOX_CACHE_DIR", str(tmp_path))
    calls = []

    def build():
        calls.append(1)
        return {"a": torch.arange(5.0)}

    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.warns(cache.CacheWarning, match="could not write") as rec:
        for key in ("k1", "k2", "k3"):
            assert torch.equal(cache.cached_tensors(key, build)["a"], torch.arange(5.0))
    assert len([w for w in rec if issubclass(w.category, cache.CacheWarning)]) == 1 and len(calls) == 3
    assert not list((tmp_path / "tensors").iterdir())  # no partial entry, no temporary file left
    monkeypatch.setattr(torch, "save", real_save)
    cache.cached_tensors("k1", build)  # now written
    monkeypatch.setattr(Path, "read_bytes", lambda self: (_ for _ in ()).throw(PermissionError(13, "denied")))
    with pytest.warns(cache.CacheWarning, match="cannot read"):
        assert torch.equal(cache.cached_tensors("k1", build)["a"], torch.arange(5.0))
    assert len(calls) == 5


def _fork(child) -> int:
    """Run ``child()`` in a forked process (equivox already imported: no start-up cost); return its pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            torch.set_num_threads(1)
            child()
            code = 0
        finally:
            os._exit(code)
    return pid


def test_two_processes_build_the_same_basis_into_one_empty_cache(tmp_path, monkeypatch):
    from equivox.groups import get_group
    from equivox.nn import conv

    root = tmp_path / "cache"
    monkeypatch.setenv("EQUIVOX_CACHE_DIR", str(root))  # empty: the kernel basis is new to it
    monkeypatch.setenv("EQUIVOX_NO_SHIPPED", "1")  # ... and not read from equivox's shipped bases: both solve it
    go = tmp_path / "go"
    r = get_group("octa").gspace.regular_repr

    def child(i):
        def run():
            conv._PAIR_MEMO.clear()  # no in-process shortcut: read or build through the disk cache
            (tmp_path / f"ready{i}").touch()
            while not go.exists():
                time.sleep(0.005)
            b = conv.pair_basis("octa", r, r, 3)["basis"]
            (tmp_path / f"sum{i}").write_text(repr(float(b.double().abs().sum())))
        return run

    pids = [_fork(child(i)) for i in range(2)]
    deadline = time.time() + 60
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)) and time.time() < deadline:
        time.sleep(0.01)
    go.touch()  # both start building at the same moment
    codes = [os.waitpid(pid, 0)[1] for pid in pids]
    assert codes == [0, 0]
    assert (tmp_path / "sum0").read_text() == (tmp_path / "sum1").read_text()
    entries = list((root / "tensors").iterdir())
    assert all(e.suffix == ".pt" for e in entries), entries  # no temporary files
    # one basis entry (escnn's regular representations of groups built on the way are cached beside it)
    basis = [e for e in entries if torch.load(e, map_location="cpu", weights_only=True)["key"].startswith("basis|")]
    assert len(basis) == 1, entries
    raw = torch.load(basis[0], map_location="cpu", weights_only=True)
    assert raw["digest"] == cache._digest(raw["payload"])  # complete and valid
    assert float(raw["payload"]["basis"].double().abs().sum()) == float((tmp_path / "sum0").read_text())


# ------------------------------------------------------------------------------------------- 3. filter cache
def test_eval_filter_follows_weight_writes_through_data(small_model, cube_input):
    model = copy.deepcopy(small_model("unet", "octa")).eval()
    gen = torch.Generator().manual_seed(1)

    def check(write):
        with torch.no_grad():
            before = model(cube_input)  # an eval forward (where a stale filter could be kept)
            write()
            after = model(cube_input)
        fresh = copy.deepcopy(small_model("unet", "octa"))
        fresh.load_state_dict(copy.deepcopy(model.state_dict()))
        with torch.no_grad():
            expected = fresh.eval()(cube_input)
        assert (expected - before).abs().max() > 1e-3  # the write did change the function
        torch.testing.assert_close(after, expected, rtol=0, atol=1e-6)

    def ema_through_data():  # EMA-style update: writes through .data do not bump the version counters
        for p in model.parameters():
            p.data.mul_(0.9).add_(0.05)

    def vector():
        vec = torch.nn.utils.parameters_to_vector(model.parameters())
        torch.nn.utils.vector_to_parameters(vec + 0.1 * torch.randn(vec.shape, generator=gen), model.parameters())

    check(ema_through_data)
    check(vector)


# ------------------------------------------------------------------------------------------- 4. mesh folders
def _mesh_folder(root: Path) -> Path:
    for name, make in {"box": lambda k: trimesh.creation.box(extents=[1.0, 0.6 + 0.1 * k, 0.4]),
                       "ball": lambda k: trimesh.creation.icosphere(subdivisions=1)}.items():
        for split in ("train", "test"):
            d = root / name / split
            d.mkdir(parents=True)
            for k in range(3):
                (d / f"{name}_{k}.off").write_text(trimesh.exchange.off.export_off(make(k)))
    (root / "box" / "train" / "broken.off").write_text("OFF\n3 1 0\n0 0 0\n")
    (root / "ball" / "train" / "flat.off").write_text("OFF\n0 0 0\n")  # a valid header, no faces
    return root


def test_thin_watertight_part_auto_falls_back_to_fill():
    thin = trimesh.creation.box(extents=[1.0, 1.0, 0.01])  # a BGA-package-like plate: 0.3 voxel thick at 32^3
    assert thin.is_watertight
    with pytest.raises(DataError, match="empty grid"):
        voxelize_mesh(thin, size=32, method="inside")
    occ = voxelize_mesh(thin, size=32, method="auto")
    np.testing.assert_array_equal(occ, voxelize_mesh(thin, size=32, method="fill"))
    assert occ.sum() >= 30 * 30


def test_mesh_folder_skips_unusable_files_names_them_and_counts_them(tmp_path, monkeypatch):
    monkeypatch.setenv("EQUIVOX_CACHE_DIR", str(tmp_path / "cache"))  # build_datasets' default voxel cache
    root = _mesh_folder(tmp_path / "shapes")
    before = _hashes(root)
    with pytest.warns(DataWarning) as rec:
        ds = MeshFolderVoxels(root, "train", size=12, cache_dir=tmp_path / "vc", progress=False)
    msgs = [str(w.message) for w in rec if issubclass(w.category, DataWarning)]
    assert len(msgs) == 2
    assert any("broken.off" in m and "cannot read mesh" in m for m in msgs), msgs
    assert any("flat.off" in m and "empty (no faces)" in m for m in msgs), msgs
    assert len(ds) == 6 and len(ds.skipped) == 2 and ds.class_names == ["ball", "box"]
    assert [f.name for f in ds.files].count("broken.off") == 0 and list(ds.labels) == [0, 0, 0, 1, 1, 1]
    # from the cache: the same files skipped and warned about again
    with pytest.warns(DataWarning, match="broken.off"):
        again = MeshFolderVoxels(root, "train", size=12, cache_dir=tmp_path / "vc", progress=False)
    np.testing.assert_array_equal(again.voxels, ds.voxels)
    with pytest.raises(DataError, match=r"flat\.off is empty \(no faces\)"):  # the first unusable file, sorted
        MeshFolderVoxels(root, "train", size=12, cache_dir=tmp_path / "vc2", progress=False, strict=True)
    # the training data path reports the count (FitResult.skipped_files comes from it)
    with pytest.warns(DataWarning):
        train, val, info = build_datasets(TrainConfig(**{**TINY_CLS, "dataset": str(root), "input_size": None}))
    assert len(info.extra["skipped_files"]) == 2 and len(train) == 6 and len(val) == 6
    assert _hashes(root) == before


def test_voxel_cache_in_an_unusable_folder_warns_and_continues(tmp_path, fresh_warnings):
    root = _mesh_folder(tmp_path / "shapes")
    (tmp_path / "afile").write_text("x")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ds = MeshFolderVoxels(root, "test", size=8, cache_dir=tmp_path / "afile" / "cache", progress=False)
    assert len(ds) == 6
    cw = [w for w in rec if issubclass(w.category, cache.CacheWarning)]
    assert len(cw) == 1 and "could not write voxel cache" in str(cw[0].message)


# ------------------------------------------------------------------------------------------- 5. NIfTI
def _nifti_pair(folder: Path, name: str, image: np.ndarray, label: np.ndarray):
    folder.mkdir(parents=True, exist_ok=True)
    ip, lp = folder / f"{name}.nii.gz", folder / f"{name}_seg.nii.gz"
    nib.save(nib.Nifti1Image(image, np.eye(4)), str(ip))
    nib.save(nib.Nifti1Image(label, np.eye(4)), str(lp))
    return ip, lp


@pytest.mark.parametrize("value, word", [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "inf")])
def test_nifti_with_nan_or_inf_is_rejected_naming_the_file(tmp_path, value, word):
    img = np.random.default_rng(0).normal(size=(6, 6, 6)).astype(np.float32)
    img[2, 3, 4] = value
    lab = np.zeros((6, 6, 6), np.uint8)
    lab[1:3, 1:3, 1:3] = 1
    ip, lp = _nifti_pair(tmp_path / "d", "case", img, lab)
    before = _hashes(tmp_path / "d")
    with pytest.raises(DataError, match=rf"image file .*case\.nii\.gz.* 1 {word}"):
        validate_pair(ip, lp, num_classes=2)
    with pytest.raises(DataError, match=rf"case\.nii\.gz.*{word}"):  # the MONAI pipeline checks it too
        segmentation_transforms(spacing=None, intensity=None, num_classes=2)({"image": str(ip), "label": str(lp)})
    assert _hashes(tmp_path / "d") == before


def test_label_guards_non_integer_4d_and_duplicate_names(tmp_path):
    img = np.zeros((6, 6, 6), np.float32)
    ip, lp = _nifti_pair(tmp_path / "a", "frac", img, np.full((6, 6, 6), 0.5, np.float32))
    with pytest.raises(DataError, match=r"frac_seg\.nii\.gz.*not integers"):
        validate_pair(ip, lp)
    ip, lp = _nifti_pair(tmp_path / "b", "four", img, np.zeros((6, 6, 6, 2), np.uint8))
    with pytest.raises(DataError, match=r"four_seg\.nii\.gz must be a single 3D volume.*\(6, 6, 6, 2\)"):
        validate_pair(ip, lp)
    with pytest.raises(DataError, match=r"four_seg\.nii\.gz must have one channel"):
        segmentation_transforms(spacing=None, intensity=None, num_classes=2)({"image": str(ip), "label": str(lp)})
    for d in ("img", "lab"):
        (tmp_path / d).mkdir()
    for name in ("case.nii", "case.nii.gz"):
        nib.save(nib.Nifti1Image(img, np.eye(4)), str(tmp_path / "img" / name))
    nib.save(nib.Nifti1Image(img.astype(np.uint8), np.eye(4)), str(tmp_path / "lab" / "case.nii.gz"))
    before = _hashes(tmp_path)
    with pytest.raises(DataError, match=r"share the name 'case': case\.nii, case\.nii\.gz"):
        folder_pair_items(tmp_path / "img", tmp_path / "lab")
    assert _hashes(tmp_path) == before


# ------------------------------------------------------------------------------------------- 6. config
def test_yaml_train_section_is_honoured(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("train:\n  epochs: 3\n  dataset: furniture\n  intensity: none\nevaluate:\n  rotations: grid\n")
    d = load_yaml_config(f)
    cfg = TrainConfig.from_dict(d)
    assert (cfg.epochs, cfg.dataset, cfg.intensity) == (3, "furniture", None)
    f.write_text("train: [1, 2]\n")
    with pytest.raises(ValueError, match=r"run\.yaml.*'train:' section must be a mapping"):
        load_yaml_config(f)


def test_intensity_none_from_the_command_line():
    from equivox import cli

    args = cli.build_parser().parse_args(["train", "--intensity", "none"])
    assert cli.train_config_from_args(args).intensity is None
    with pytest.raises(ValueError, match="intensity must be 'ct', 'mri' or 'none'"):
        TrainConfig(intensity="hu")


# ------------------------------------------------------------------------------------------- training data
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
def test_classification_data_guards(tmp_path, case, pattern):
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
    before = _hashes(tmp_path)
    with pytest.raises(DataError, match=pattern):
        build_datasets(TrainConfig(**{**TINY_CLS, "dataset": str(p)}))
    assert _hashes(tmp_path) == before


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
def test_interrupted_checkpoint_save_keeps_the_previous_one_and_resume_works(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    data = _npz(tmp_path / "d.npz", images=rng.random((12, 8, 8, 8)).astype(np.float32), labels=np.arange(12) % 2)
    cfg = TrainConfig(**{**TINY_CLS, "dataset": str(data), "input_size": None}, out_dir=str(tmp_path / "out"))
    res = fit(cfg)
    last = res.last_checkpoint
    good, names = last.read_bytes(), sorted(p.name for p in last.parent.iterdir())
    real_save = torch.save

    def half_then_fail(obj, f, *args, **kwargs):  # a full disk (or a kill) halfway through writing epoch 2
        if isinstance(obj, dict) and obj.get("epoch") == 1:
            buf = io.BytesIO()
            real_save(obj, buf, *args, **kwargs)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        fit(cfg.merged({"epochs": 2, "resume": str(last)}))
    monkeypatch.setattr(torch, "save", real_save)
    assert last.read_bytes() == good  # the previous checkpoint is untouched ...
    assert sorted(p.name for p in last.parent.iterdir()) == names  # ... and no partial file is left
    model, hp = load_checkpoint(last)
    res2 = fit(cfg.merged({"epochs": 2, "resume": str(last)}))  # ... and training resumes from it
    assert res2.global_step == 2 * res.global_step and res2.trainer.current_epoch == 2


def test_killed_during_a_checkpoint_save_leaves_the_previous_file(tmp_path, monkeypatch):
    import signal

    from equivox.training.fit import atomic_checkpoint_io

    target = tmp_path / "last.ckpt"
    torch.save({"epoch": 0, "w": torch.zeros(10)}, target)
    good = target.read_bytes()
    real = torch.save

    def save_and_die(obj, f, *args, **kwargs):  # the process is killed with the new checkpoint half written
        buf = io.BytesIO()
        real(obj, buf)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def child():
        torch.save = save_and_die
        atomic_checkpoint_io().save_checkpoint({"epoch": 1, "w": torch.ones(100_000)}, str(target))

    _, status = os.waitpid(_fork(child), 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert target.read_bytes() == good
    assert torch.load(target, weights_only=True)["epoch"] == 0
    # the interrupted write left at most its hidden temporary file, never a partial last.ckpt
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["last.ckpt"]


def test_unwritable_output_folder_is_reported_before_training(tmp_path, capsys):
    from equivox import cli

    (tmp_path / "afile").write_text("x")
    bad = tmp_path / "afile" / "out"
    t0 = time.time()
    assert cli.main(["train", "--dataset", "/no/such/data.npz", "--out", str(bad), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("equivox: error: output folder") and str(bad) in err[0], err
    assert time.time() - t0 < 10
    with pytest.raises(OSError, match="output folder .* is not writable"):
        fit(TrainConfig(**TINY_CLS, out_dir=str(bad)))


def test_evaluate_split_for_segmentation_is_a_clear_error(tmp_path, capsys):
    from equivox import cli
    from equivox.training import build_model

    cfg = TrainConfig(task="segment", dataset="chest_ct", channels=(2, 2), strides=(2,), convs_per_level=1)
    model = build_model(cfg, 1, 6)
    ckpt = tmp_path / "seg.ckpt"
    torch.save({"hyper_parameters": {"model_spec": model.equivox_spec, "config": cfg.to_dict(), "num_classes": 6},
                "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, ckpt)
    assert cli.main(["evaluate", str(ckpt), "--split", "test", "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--split test" in err and "validation split" in err
