"""equivox.cli as a whole: ``main`` (a user error is one line with exit code 2, an internal error keeps its traceback;
the ``equivox`` console script and ``python -m equivox`` reach it), ``--help`` of every command and the one dialect
across them (shared option names, every default shown, old spellings, typos), argument and data errors, YAML merging,
and the journeys through several commands (train -> evaluate -> check-equivariance, canonicalize -> evaluate ->
predict, the user's own NIfTI folders). One command's own options: tests/cli/test_<command>.py."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from equivox import cli
from equivox.config import ConfigError
from equivox.data import DataError

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------------- cli.main
def _failing(monkeypatch, exc):
    """Make ``equivox data list`` raise ``exc``."""
    def run(args):
        raise exc

    monkeypatch.setitem(cli._RUN, "data", run)


@pytest.mark.parametrize("exc", [ConfigError("epochs must be a positive integer, got 0"), cli.CLIError("bad option"),
                                 DataError("image file /x.nii.gz is truncated"),
                                 FileNotFoundError("checkpoint not found: /x.ckpt"), NotADirectoryError("/x")])
def test_a_user_error_is_one_line_exit_2(exc, monkeypatch, capsys):
    _failing(monkeypatch, exc)
    assert cli.main(["data", "list"]) == 2
    err = capsys.readouterr().err
    assert err == f"equivox: error: {exc}\n"
    with pytest.raises(type(exc)):  # --debug: the traceback instead
        cli.main(["--debug", "data", "list"])


@pytest.mark.parametrize("exc", [ValueError("a bug's ValueError"), KeyError("x"), TypeError("bug"),
                                 RuntimeError("bug"), AttributeError("bug")])
def test_an_internal_error_keeps_its_traceback(exc, monkeypatch, capsys):
    """A plain ValueError is not a user error: a bug in the library or the CLI shows its traceback."""
    _failing(monkeypatch, exc)
    with pytest.raises(type(exc)):
        cli.main(["data", "list"])
    assert "equivox: error" not in capsys.readouterr().err


def test_interrupt_is_exit_130(monkeypatch, capsys):
    _failing(monkeypatch, KeyboardInterrupt())
    assert cli.main(["data", "list"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_python_m_equivox_user_error_one_line_and_internal_error_traceback(tmp_path):
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-m", "equivox", "train", "--epochs", "0"], capture_output=True, text=True,
                         env=env, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert res.stderr == "equivox: error: epochs must be a positive integer, got 0\n"
    code = ("import sys\nfrom equivox import cli\ndef run(args):\n    raise ValueError('internal')\n"
            "cli._RUN['data'] = run\nsys.exit(cli.main(['data', 'list']))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 1 and "Traceback" in res.stderr and "ValueError: internal" in res.stderr


def test_the_console_script_entry_point_is_main():
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["equivox"] == "equivox.cli:main"
    assert "from .cli import main" in (ROOT / "src" / "equivox" / "__main__.py").read_text()


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in cli.COMMANDS:
        assert command.NAME in out
    assert [m.NAME for m in cli.COMMANDS] == ["train", "evaluate", "predict", "demo", "canonicalize",
                                               "check-equivariance", "data", "nnunet"]


# ------------------------------------------------------------------------------------------------ --help and errors
COMMANDS = [[], ["train"], ["canonicalize"], ["evaluate"], ["demo"], ["check-equivariance"], ["data"], ["data", "list"],
            ["data", "info"], ["data", "build"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "equivox")
def test_help_works_for_every_command(cmd, capsys):
    assert cli.main(cmd + ["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: equivox") and "--help" in out


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize("argv, expected", [
    (["train", "--epochs", "abc"], "invalid int value"),
    (["train", "--channels", "2,x"], "comma-separated integers"),
    (["frobnicate"], "invalid choice"),
    (["train", "--task", "classify", "--dataset", "/no/such/file.npz", "--no-progress"], "not found"),
    (["train", "--task", "segment", "--dataset", "/no/such/folder", "--no-progress"], "/no/such/folder"),
    (["train", "--task", "segment", "--image-dir", "/no/img", "--label-dir", "/no/lab", "--num-classes", "2",
      "--no-progress"], "/no/img"),
    (["train", "--epochs", "0"], "epochs must be a positive integer"),
    (["train", "--augment", "flip"], "augment must be"),
    (["evaluate", "/no/such.ckpt"], "checkpoint not found: /no/such.ckpt"),
    (["canonicalize", "/no/such.pt"], "model not found: /no/such.pt"),
    (["train", "--canonical-mode", "topk"], "canonical_mode must be"),
    (["train", "--canonical-sample", "maybe"], "expected true or false"),
    (["data", "info", "nope"], "unknown dataset 'nope'"),
    (["data", "build", "nope"], "unknown dataset 'nope'"),
    (["check-equivariance", "--group", "nogroup", "--size", "8"], "nogroup"),
])
def test_bad_arguments_and_missing_data_exit_2(argv, expected, capsys):
    assert cli.main(argv) == 2
    assert expected in _error_line(capsys)


def test_config_yaml_merges_with_flags(tmp_path, capsys):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("epochs: 3\nlr: 0.01\nchannels: [2, 2]\nstrides: [2]\ndataset: furniture\n")
    args = cli.build_parser().parse_args(["train", "--config", str(cfg_file), "--epochs", "1", "--out", "x"])
    cfg = cli.train_config_from_args(args)
    assert (cfg.epochs, cfg.lr, cfg.channels, cfg.dataset, cfg.out_dir) == (1, 0.01, (2, 2), "furniture", "x")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epoch: 3\n")
    assert cli.main(["train", "--config", str(bad)]) == 2
    assert "unknown config keys ['epoch']" in _error_line(capsys)
    assert cli.main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in _error_line(capsys)


def test_data_list_and_info(capsys):
    assert cli.main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "lidc_nodules_32" in out and "CC BY 3.0" in out
    assert cli.main(["data", "info", "chest_ct"]) == 0
    assert "chest_ct_3mm" in capsys.readouterr().out


def test_train_then_evaluate_then_check(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--task", "classify", "--dataset", "lidc", "--input-size", "8", "--max-train", "16",
                     "--max-val", "8", "--channels", "2,2", "--strides", "2", "--convs-per-level", "1",
                     "--epochs", "1", "--batch-size", "8", "--out", str(out), "--no-progress"]) == 0
    assert "last checkpoint" in capsys.readouterr().out
    ckpt = out / "checkpoints" / "last.ckpt"
    ev = tmp_path / "eval"
    assert cli.main(["evaluate", str(ckpt), "--rotations", "standard", "--n-random", "1", "--max-items", "8",
                     "--out", str(ev), "--no-progress"]) == 0
    rep = json.loads((ev / "report.json").read_text())
    accs = [r["accuracy"] for r in rep["rows"] if r["kind"] == "grid"]
    assert len(accs) == 24 and max(accs) - min(accs) < 1e-9  # the octa model: same score on every cube rotation
    assert (ev / "rotation_scores.png").stat().st_size > 1000 and (ev / "report.csv").is_file()
    capsys.readouterr()
    chk = tmp_path / "chk"
    assert cli.main(["check-equivariance", "--checkpoint", str(ckpt), "--size", "8", "--out", str(chk)]) == 0
    table = capsys.readouterr().out
    assert "relative" in table and (chk / "equivariance_errors.png").is_file()
    errs = json.loads((chk / "equivariance_errors.json").read_text())["errors"]
    assert len(errs) == 24 and max(e["relative"] for e in errs) < 1e-4


def test_canonicalize_a_trained_plain_model_then_train_with_a_canonicalizer_from_yaml(tmp_path, capsys):
    """`equivox canonicalize CKPT` fits a canonicalizer for a trained plain model (weights untouched) and saves an
    exactly invariant model; `train` with `canonicalize: octa` in YAML trains one jointly and evaluate scores it."""
    import torch

    from equivox.training import load_checkpoint

    run = tmp_path / "plain"
    common = ["--task", "classify", "--dataset", "lidc", "--input-size", "8", "--max-train", "16", "--max-val", "8",
              "--channels", "2,2", "--strides", "2", "--convs-per-level", "1", "--epochs", "1", "--batch-size", "8",
              "--no-progress"]
    assert cli.main(["train", "--arch", "baseline", *common, "--out", str(run)]) == 0
    ckpt = run / "checkpoints" / "last.ckpt"
    plain, _ = load_checkpoint(ckpt)
    out = tmp_path / "canon"
    assert cli.main(["canonicalize", str(ckpt), "--epochs", "1", "--canonicalizer-input-size", "8",
                     "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "mapped to the identity" in text and "canonicalized.pt" in text
    assert "worst of the 24 octa rotations" in text and "already invariant" not in text  # a plain model
    model = torch.load(out / "canonicalized.pt", weights_only=False).eval()
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), model.model.state_dict().values()))
    x = torch.rand(3, 1, 8, 8, 8)
    with torch.no_grad():
        assert (model(torch.rot90(x, 1, (2, 3))) - model(x)).abs().max() < 1e-5
    for i, path in enumerate([out / "canonicalized.pt", out / "checkpoints" / "last.ckpt"]):  # evaluate takes both
        assert cli.main(["evaluate", str(path), "--rotations", "grid", "--max-items", "8", "--out",
                         str(tmp_path / f"ev-canon{i}"), "--no-progress"]) == 0
        accs = [r["accuracy"] for r in json.loads((tmp_path / f"ev-canon{i}" / "report.json").read_text())["rows"]]
        assert len(accs) == 24 and max(accs) - min(accs) < 1e-9
    cfg = tmp_path / "c.yaml"
    cfg.write_text("arch: baseline\ncanonicalize: octa\ncanonicalizer_input_size: 8\n")
    joint = tmp_path / "joint"
    assert cli.main(["train", "--config", str(cfg), *common, "--out", str(joint)]) == 0
    ev = tmp_path / "eval"
    assert cli.main(["evaluate", str(joint / "checkpoints" / "last.ckpt"), "--rotations", "grid", "--max-items", "8",
                     "--out", str(ev), "--no-progress"]) == 0
    accs = [r["accuracy"] for r in json.loads((ev / "report.json").read_text())["rows"]]
    assert len(accs) == 24 and max(accs) - min(accs) < 1e-9


# ---------------------------------------------------------------------------------- the user's own image/label folders
SEG = ["--task", "segment", "--channels", "1,1", "--strides", "2", "--convs-per-level", "1", "--epochs", "1",
       "--batch-size", "1", "--patch-size", "8", "--patches-per-epoch", "2", "--val-crop", "8", "--no-progress"]


def _pairs(root, n=3, size=(8, 8, 8), zooms=(1.0, 1.0, 1.0), ct=False, channels=None):
    """``root/images`` + ``root/labels``: MRI-like (0..~300) or CT-like (HU, -1000..1000) volumes, labels {0, 1}.
    ``channels``: {case index: number of channels} for odd cases."""
    import nibabel as nib
    import numpy as np

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    aff = np.diag(list(zooms) + [1.0])
    for i in range(n):
        lab = np.zeros(size, np.uint8)
        lab[2:6, 1 + i % 2:5, 2:6] = 1
        img = (lab * (1800.0 if ct else 150.0) + rng.normal(0, 5, size) + (-900.0 if ct else 40.0)).astype(np.float32)
        c = (channels or {}).get(i, 1)
        if c > 1:
            img = np.stack([img] * c, -1)
        nib.save(nib.Nifti1Image(img, aff), str(root / "images" / f"case{i}.nii.gz"))
        nib.save(nib.Nifti1Image(lab, aff), str(root / "labels" / f"case{i}.nii.gz"))
    return root / "images", root / "labels"


def _hashes(*folders):
    import hashlib

    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for f in folders for p in sorted(f.iterdir())}


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("problem", ["two_channel_image", "truncated_nifti"])
def test_bad_nifti_folder_one_line_naming_the_file(problem, tmp_path, capsys):
    imgs, labs = _pairs(tmp_path, n=4, channels={2: 2} if problem == "two_channel_image" else None)
    if problem == "truncated_nifti":
        _truncate(imgs / "case2.nii.gz")
    before = _hashes(imgs, labs)
    out = tmp_path / "new" / "run"
    assert cli.main(["train", *SEG, "--group", "c4_axial", "--image-dir", str(imgs), "--label-dir", str(labs),
                     "--num-classes", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert str(imgs / "case2.nii.gz") in err and "{" not in err
    assert ("2 channel(s)" in err) if problem == "two_channel_image" else ("truncated" in err)
    assert _hashes(imgs, labs) == before  # the user's files are unchanged
    assert not (tmp_path / "new").exists()  # a failed run leaves no empty output folder


def test_truncated_npz_one_line(tmp_path, capsys):
    import numpy as np

    f = tmp_path / "data.npz"
    np.savez(f, train_images=np.zeros((4, 8, 8, 8), np.uint8), train_labels=np.zeros((4, 1)),
             test_images=np.zeros((2, 8, 8, 8), np.uint8), test_labels=np.zeros((2, 1)))
    _truncate(f)
    assert cli.main(["train", "--dataset", str(f), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    line = _error_line(capsys)
    assert str(f) in line and "truncated" in line and "BadZipFile" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, expected", [
    (["train", "--channels", "2,0"], "channels must be a list of positive integers, got [2, 0]"),
    (["train", "--group", "octo"], "group 'octo' is not a group name; did you mean 'octa'?"),
    (["train", "--intensity", "hu"], "intensity must be 'ct', 'mri' or 'none', or 'auto'"),
    (["train", "--resize", "squash"], "resize must be one of auto, pool, pad, crop"),
    (["train", "--spacing", "1,2"], "expected 1 or 3 positive comma-separated numbers"),
    (["train", "--model-arg", "head"], "--model-arg expects key=value"),
    (["train", "--model-arg", "nohead=1", "--dataset", "lidc", "--out", "/nonexistent/x"],
     "unknown model argument nohead for InvariantClassifier; valid: spatial_dims, in_channels"),
    (["predict", "/no/such.ckpt", "--out", "x"], "checkpoint not found: /no/such.ckpt"),
    (["check-equivariance", "--group", "full_octo"], "did you mean 'full_octa'?"),
])
def test_more_bad_arguments_exit_2(argv, expected, capsys):
    assert cli.main(argv) == 2
    assert expected in _error_line(capsys)


def test_model_section_and_model_args_reach_the_constructor(tmp_path, capsys):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("model:\n  head: linear\n  norm: null\n")
    args = cli.build_parser().parse_args(["train", "--config", str(cfg_file), "--model-arg", "head=oriented",
                                          "--model-arg", "class_swaps=[[1, 2]]"])
    assert cli.train_config_from_args(args).model == {"head": "oriented", "norm": None, "class_swaps": [[1, 2]]}
    bad = tmp_path / "bad.yaml"
    bad.write_text("extra:\n  head: oriented\n")  # an unknown key of extra: refused, never ignored
    assert cli.main(["train", "--config", str(bad)]) == 2
    assert "unknown extra keys ['head']" in _error_line(capsys)

    # trained and evaluated from the CLI with the option, which the checkpoint keeps
    imgs, labs = _pairs(tmp_path / "own")
    (tmp_path / "m.yaml").write_text("model:\n  head: oriented\n")
    out = tmp_path / "run"
    assert cli.main(["train", *SEG, "--group", "c4_axial", "--config", str(tmp_path / "m.yaml"), "--image-dir",
                     str(imgs), "--label-dir", str(labs), "--num-classes", "2", "--out", str(out)]) == 0
    assert "model={'head': 'oriented'}" in capsys.readouterr().out
    from equivox.training import load_checkpoint

    ck = out / "checkpoints" / "last.ckpt"
    model, hp = load_checkpoint(ck)
    assert model.head_kind == "oriented" and hp["model_spec"]["kwargs"]["head"] == "oriented"
    assert cli.main(["evaluate", str(ck), "--rotations", "grid", "--out", str(tmp_path / "ev"), "--no-progress"]) == 0


def test_intensity_auto_and_group_auto_from_the_headers(tmp_path, capsys):
    import warnings

    from equivox.training import TrainConfig
    from equivox.training.data import resolve_data_settings

    ct_imgs, ct_labs = _pairs(tmp_path / "ct", ct=True)
    cfg, notes = resolve_data_settings(TrainConfig(task="segment", image_dir=str(ct_imgs), label_dir=str(ct_labs),
                                                   num_classes=2, group="c4_axial"))
    assert cfg.intensity == "ct" and any("Hounsfield" in n for n in notes)

    imgs, labs = _pairs(tmp_path / "aniso", zooms=(0.7, 0.7, 3.0))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        cfg, _ = resolve_data_settings(TrainConfig(task="segment", image_dir=str(imgs), label_dir=str(labs),
                                                   num_classes=2, group="octa"))
    msg = str(w[0].message)
    assert "(0.7, 0.7, 3.0)" in msg and "trivial, c4_axial, d4_axial" in msg
    from equivox.console import one_line_warning

    assert one_line_warning(w[0].message, UserWarning, "x.py", 1).count("\n") == 1
    assert cfg.intensity == "mri"

    out = tmp_path / "run"
    assert cli.main(["train", *SEG, "--group", "auto", "--image-dir", str(imgs), "--label-dir", str(labs),
                     "--num-classes", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "group auto -> d4_axial" in text and "spacing 0.7x0.7x3 mm (from the headers)" in text
    assert "intensity mri" in text
    ck = str(out / "checkpoints" / "last.ckpt")
    from equivox.training import load_checkpoint

    model, hp = load_checkpoint(ck)
    assert model.group == "d4_axial" and hp["data_info"]["spacing"] == [0.7, 0.7, 3.0]
    # random rotations of anisotropic voxels are not rotations: refused, and the standard set keeps the exact ones
    assert cli.main(["evaluate", ck, "--rotations", "so3", "--out", str(tmp_path / "ev")]) == 2
    assert "anisotropic (0.7x0.7x3 mm)" in _error_line(capsys)
    assert cli.main(["evaluate", ck, "--out", str(tmp_path / "ev"), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "no random SO(3) rotations" in text and "so3:" not in text


#--------------------------------------------------------------------------------- re-runs and the canonicalize journey
def _tree_bytes(folder):
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def test_rerun_into_the_same_out_is_refused_and_overwrite_gives_the_new_runs_last_ckpt(tmp_path, capsys):
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(data, images=rng.random((12, 8, 8, 8)).astype(np.float32), labels=np.arange(12) % 2)
    out = tmp_path / "run"
    base = ["train", "--task", "classify", "--dataset", str(data), "--input-size", "8", "--channels", "2,2",
            "--strides", "2", "--convs-per-level", "1", "--epochs", "1", "--batch-size", "4", "--accelerator", "cpu",
            "--out", str(out), "--no-progress"]
    assert cli.main(base) == 0
    first = _tree_bytes(out)
    capsys.readouterr()
    assert cli.main(base + ["--seed", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line naming the folder and the options
    assert str(out) in err[0] and "--overwrite" in err[0] and f"--resume {out}/checkpoints/last.ckpt" in err[0]
    assert _tree_bytes(out) == first  # nothing touched
    assert cli.main(base + ["--seed", "1", "--overwrite"]) == 0
    last = out / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["hyper_parameters"]["config"]["seed"] == 1  # the new run's
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert len(names) == 2 and "last.ckpt" in names and not any("-v1" in n for n in names), names
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["version_0"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no earlier run left aside
    # the same option from YAML, and its default shown in --help
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("overwrite: true\n")
    assert cli.train_config_from_args(cli.build_parser().parse_args(["train", "--config", str(yaml_file)])).overwrite
    assert not cli.train_config_from_args(cli.build_parser().parse_args(["train"])).overwrite
    capsys.readouterr()
    assert cli.main(["train", "--help"]) == 0
    assert "default: off, such a folder is refused" in " ".join(capsys.readouterr().out.split())


def _monai_unet_source(tmp_path, kind: str):
    """A trained-looking MONAI UNet as a user has it: ``torch.save(model)`` (.pt) or a MONAI bundle folder (its
    network_def in configs/inference.json, the weights' state dict in models/model.pt)."""
    import torch
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    kwargs = dict(spatial_dims=3, in_channels=1, out_channels=2, channels=[4, 8], strides=[2], num_res_units=1)
    unet = UNet(**kwargs)
    if kind == "pt":
        torch.save(unet, tmp_path / "unet.pt")
        return tmp_path / "unet.pt"
    root = tmp_path / "bundle"
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "configs" / "inference.json").write_text(json.dumps(
        {"network_def": {"_target_": "monai.networks.nets.UNet", **kwargs}}))
    torch.save(unet.state_dict(), root / "models" / "model.pt")
    return root


@pytest.mark.parametrize("kind", ["pt", "bundle"])
def test_canonicalize_a_saved_monai_unet_then_evaluate_predict_and_check_its_outputs(kind, tmp_path, capsys):
    """The journey: a MONAI UNet (.pt or bundle) -> `equivox canonicalize` -> `equivox evaluate` on canonicalized.pt
    and on the run's last.ckpt (the same score under every cube rotation), `predict`, `check-equivariance`."""
    import re

    source = _monai_unet_source(tmp_path, kind)
    imgs, labs = _pairs(tmp_path / "own", n=4)
    out = tmp_path / "canon"
    argv = ["canonicalize", str(source), "--task", "segment", "--image-dir", str(imgs), "--label-dir", str(labs),
            "--num-classes", "2", "--patch-size", "8", "--patches-per-epoch", "2", "--val-crop", "8",
            "--batch-size", "1", "--epochs", "1", "--canonicalizer-input-size", "8", "--canonicalizer-channels", "2,2",
            "--out", str(out), "--no-progress"]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "preprocessing: spacing 1x1x1 mm (from the headers); intensity mri" in text
    assert re.search(r"UNet as given, on the validation data: dice upright [\d.]+, worst of the 24 octa rotations",
                     text), text
    assert re.search(r"canonicalized, on the validation data: dice upright [\d.]+, worst of the 24 octa", text)
    assert re.search(r"mapped to the identity: \d+/1 \(chance 1/24\)", text), text
    assert "already" not in text  # a plain UNet is not invariant
    outputs = [out / "canonicalized.pt", out / "checkpoints" / "last.ckpt"]
    for i, path in enumerate(outputs):
        ev = tmp_path / f"ev{i}"
        assert cli.main(["evaluate", str(path), "--rotations", "grid", "--out", str(ev), "--no-progress"]) == 0
        rep = json.loads((ev / "report.json").read_text())
        dice = [r["dice"] for r in rep["rows"]]
        assert len(dice) == 24 and max(dice) - min(dice) < 1e-9, dice  # the same score under every cube rotation
        assert rep["equivariance_error"] < 1e-4
    assert "Canonicalized (octa)" in capsys.readouterr().out
    assert cli.main(["predict", str(outputs[0]), "--image-dir", str(imgs), "--out", str(tmp_path / "pred")]) == 0
    assert len(list((tmp_path / "pred").glob("*_seg.nii.gz"))) == 4
    for i, path in enumerate(outputs):
        chk = tmp_path / f"chk{i}"
        assert cli.main(["check-equivariance", "--checkpoint", str(path), "--size", "8", "--out", str(chk)]) == 0
        errs = json.loads((chk / "equivariance_errors.json").read_text())["errors"]
        assert len(errs) == 24 and max(e["relative"] for e in errs) < 1e-4
    # a second canonicalize into the same folder is refused, nothing touched
    before = _tree_bytes(out)
    capsys.readouterr()
    assert cli.main(argv) == 2
    assert "already holds a run" in _error_line(capsys) and _tree_bytes(out) == before


# ---------------------------------------------------------------------------------------- one dialect across commands
def _help_blocks(text: str) -> dict:
    """``{first name of an entry: its whole help text}`` of a ``--help`` output."""
    import re

    blocks, key = {}, None
    for line in text.splitlines():
        m = re.match(r"^  (-\S+|\w[\w-]*)", line)
        if m:
            key = m.group(1).rstrip(",")
            blocks[key] = line.strip()
        elif key and line.startswith("   "):
            blocks[key] += " " + line.strip()
        else:
            key = None
    return blocks


PARSERS = [words for words, _ in cli.all_parsers(cli.build_parser())]


@pytest.mark.parametrize("words", PARSERS, ids=lambda w: " ".join(w) or "equivox")
def test_every_help_shows_every_default(words, capsys):
    """Every option whose value is not simply unset by default says its default in ``--help``: argparse defaults,
    flags (off), and the TrainConfig flags (whose argparse default is None so that YAML can set them)."""
    import argparse

    parser = dict((" ".join(w), p) for w, p in cli.all_parsers(cli.build_parser()))[" ".join(words)]
    assert cli.main(words + ["--help"]) == 0
    blocks = _help_blocks(capsys.readouterr().out)
    checked = 0
    for action in parser._actions:
        if action.help is argparse.SUPPRESS or isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = action.option_strings[0] if action.option_strings else action.dest
        assert name in blocks, (name, sorted(blocks))
        has_default = (action.default not in (None, argparse.SUPPRESS) or action.nargs == 0
                       or getattr(action, "config_field", None) is not None)
        if has_default:
            checked += 1
            assert "default" in blocks[name], (name, blocks[name])
    assert checked or not [a for a in parser._actions if a.option_strings and a.help is not argparse.SUPPRESS
                           and not isinstance(a, argparse._HelpAction)]


def test_help_uses_the_shared_names(capsys):
    """The trained model is the positional ``model``; scored/checked rotations are ``--elements``; the output folder
    ``--out``; crops ``--val-crop``; item limits ``--max-items``. The old spellings are not listed."""
    helps = {}
    for cmd in ("train", "evaluate", "predict", "demo", "canonicalize", "check-equivariance"):
        assert cli.main([cmd, "--help"]) == 0
        helps[cmd] = _help_blocks(capsys.readouterr().out)
        assert "--out" in helps[cmd], cmd
    for cmd in ("evaluate", "predict", "canonicalize", "check-equivariance"):
        assert "model" in helps[cmd] and "--checkpoint" not in helps[cmd] and "checkpoint" not in helps[cmd], cmd
    assert "--elements" in helps["evaluate"] and "--elements" in helps["check-equivariance"]
    assert "--group" not in helps["evaluate"] and "--group" in helps["train"]
    for cmd in ("train", "evaluate", "demo", "canonicalize"):
        assert "--val-crop" in helps[cmd] and "--crop" not in helps[cmd], cmd
    assert "--max-items" in helps["evaluate"] and "--max-items" in helps["demo"] and "--max-test" not in helps["demo"]
    assert "--model" not in helps["check-equivariance"] and "--task" in helps["check-equivariance"]
    # closed sets of values are listed, on/off settings are flags (not true/false strings)
    train = helps["train"]
    for name, choices in (("--task", "{classify,segment}"), ("--intensity", "{auto,ct,mri,none}"),
                          ("--augment", "{none,grid,so3}"), ("--resize", "{auto,pool,pad,crop}"),
                          ("--arch", "{equivariant,baseline,plain_compute,monai,monai_unet,MODEL}"),
                          ("--canonical-mode", "{hard,frame,soft}")):
        assert choices in train[name], name
    assert train["--canonical-sample"].startswith("--canonical-sample, --no-canonical-sample")
    assert "default: on" in train["--canonical-sample"] and "default: off" in train["--canonical-pose"]
    assert "true" not in train["--canonical-sample"] + train["--canonical-pose"]


def test_demo_help_lists_only_the_flags_the_demo_uses(capsys):
    assert cli.main(["demo", "--help"]) == 0
    blocks = _help_blocks(capsys.readouterr().out)
    from equivox import demo
    from equivox.config import config_options

    used = {k for p in demo.DEMO_PRESETS for k in p.uses}
    train_flags = {o.flag: o.name for o in config_options()}
    own = {"--task", "--dataset", "--out"}  # the demo's own options (which demo, which bundled data, where)
    listed = {flag for flag in blocks if flag in train_flags} - own
    assert listed == {f for f, d in train_flags.items() if d in used} - own
    for ignored in ("--group", "--augment", "--arch", "--canonicalize", "--intensity", "--devices", "--resume",
                    "--strict", "--model-arg", "--num-workers", "--precision", "--spacing"):
        assert ignored not in blocks, ignored
    assert "with --quick 1" in blocks["--epochs"] and "classify 25" in blocks["--epochs"]
    # an ignored training flag is still accepted (the demo says it does not use it) rather than breaking scripts
    assert cli.build_parser().parse_args(["demo", "--group", "full_octa"]).group == "full_octa"


@pytest.mark.parametrize("argv, attr, value, note", [
    (["check-equivariance", "m.ckpt"], "model", "m.ckpt", None),
    (["check-equivariance", "--checkpoint", "m.ckpt"], "checkpoint_alias", "m.ckpt",
     "--checkpoint is deprecated; give the model as the positional argument"),
    (["check-equivariance", "--model", "classifier"], "task", "classify",
     "--model is deprecated; use --task segment (unet) or --task classify (classifier)"),
    (["evaluate", "m.ckpt", "--group", "full_octa"], "elements", "full_octa", "--group is deprecated; use --elements"),
    (["evaluate", "m.ckpt", "--crop", "16"], "val_crop", 16, "--crop is deprecated; use --val-crop"),
    (["demo", "--max-test", "5"], "max_items", 5, "--max-test is deprecated; use --max-items"),
    (["train", "--canonical-sample", "false"], "canonical_sample", False, None),  # the older true/false form
    (["train", "--no-canonical-sample"], "canonical_sample", False, None),
    (["train", "--canonical-pose"], "canonical_pose", True, None),
])
def test_old_spellings_still_work_and_say_so_in_one_line(argv, attr, value, note, capsys):
    args = cli.build_parser().parse_args(argv)
    assert getattr(args, attr) == value
    err = capsys.readouterr().err.strip().splitlines()
    if note is None:
        assert err == []
    else:
        assert len(err) == 1 and err[0].startswith("equivox: note: ") and note in err[0], err


def test_deprecated_spellings_run_end_to_end(tmp_path, capsys):
    out = tmp_path / "chk"
    assert cli.main(["check-equivariance", "--model", "classifier", "--group", "trivial", "--channels", "1,1",
                     "--size", "8", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "classifier-trivial" in captured.out and (out / "equivariance_errors.json").is_file()
    assert captured.err.count("equivox: note: --model is deprecated") == 1
    assert cli.main(["check-equivariance", "a.ckpt", "--checkpoint", "b.ckpt"]) == 2
    assert "give the model once" in _error_line(capsys)
    assert cli.main(["evaluate", str(tmp_path / "missing.ckpt"), "--val-crop", "8"]) == 2
    assert "--val-crop is for scoring a labelled folder" in _error_line(capsys)


NO_DATA = ["--dataset", "/no/such/data.npz"]  # were the option accepted, the command would stop here (not train)


@pytest.mark.parametrize("argv, expected", [
    (["train", "--epoch", "3", *NO_DATA], "unknown option --epoch; did you mean --epochs?"),
    (["train", "--epo", "3", *NO_DATA], "unknown option --epo"),  # no abbreviations: a prefix is not expanded
    (["train", "--no-canonical-sampel", *NO_DATA],
     "unknown option --no-canonical-sampel; did you mean --no-canonical-sample?"),
    (["evaluate", "m.ckpt", "--element", "octa"], "unknown option --element; did you mean --elements?"),
    (["predict", "m.ckpt", "--out", "x", "--probabilites"], "did you mean --probabilities?"),
    (["demo", "--quik", "--out", "{tmp}"], "unknown option --quik; did you mean --quick?"),
    (["check-equivariance", "--sise=8", "--out", "{tmp}"], "unknown option --sise; did you mean --size?"),
    (["nnunet", "plans", "--dry-rn"], "did you mean --dry-run?"),
    (["--debgu", "data", "list"], "unknown option --debgu; did you mean --debug?"),
])
def test_a_typo_is_an_error_with_the_closest_name(argv, expected, tmp_path, capsys):
    assert cli.main([a.format(tmp=tmp_path / "out") for a in argv]) == 2
    line = _error_line(capsys)
    assert expected in line, line
    assert "did you mean --group" not in line and "did you mean --crop" not in line  # hidden aliases not suggested


def test_patch_size_is_checked_before_training(tmp_path, capsys, monkeypatch):
    """A --patch-size the model cannot take (not a multiple of its strides' product) or larger than every training
    volume (all padding) ends with one line naming the option, before training starts and with nothing written."""
    import equivox.training

    monkeypatch.setattr(equivox.training, "fit", lambda *a, **k: pytest.fail("training started"))
    imgs, labs = _pairs(tmp_path / "own")  # 8^3 volumes
    for patch, expected in (("7", "--patch-size 7 is not a multiple of the model's size multiple 2"),
                            ("16", "--patch-size 16 is larger than every training volume")):
        argv = ["train", *SEG, "--group", "c4_axial", "--image-dir", str(imgs), "--label-dir", str(labs),
                "--num-classes", "2", "--out", str(tmp_path / "new" / "run")]
        argv[argv.index("--patch-size") + 1] = patch
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], err
        assert not (tmp_path / "new").exists()
