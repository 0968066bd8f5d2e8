"""equivox.cli.canonicalize: the data / canonicalizer / trainer options of TrainConfig (no network ones), the
checkpoint's settings as defaults, its own fixed ones over them (and ``--help`` says so); user errors (a missing or
unreadable model, a TorchScript model) are one line before anything is written; an already invariant model is
reported as such."""
from __future__ import annotations

from equivox import cli
from equivox.cli import canonicalize


def test_options_and_defaults(tmp_path):
    args = cli.build_parser().parse_args(["canonicalize", "m.ckpt", "--epochs", "2", "--no-progress"])
    assert (args.model, args.epochs, args.progress) == ("m.ckpt", 2, False)
    base = {"task": "classify", "epochs": 30, "canonicalize": None, "progress": False, "resume": "x.ckpt",
            "overwrite": True, "out_dir": "elsewhere"}
    inherited = {k: v for k, v in base.items() if k not in canonicalize.NOT_INHERITED}
    inherited.update(canonicalize.FIXED)
    for k, v in canonicalize.FALLBACK.items():
        inherited[k] = inherited.get(k) or v
    cfg = cli.train_config_from_args(cli.build_parser().parse_args(["canonicalize", "m.ckpt"]), inherited)
    assert (cfg.epochs, cfg.canonicalize, cfg.out_dir, cfg.resume, cfg.overwrite, cfg.progress) == (
        10, "octa", "outputs/canonicalize", None, False, True)


def test_network_options_are_not_taken(capsys):
    assert cli.main(["canonicalize", "m.ckpt", "--group", "octa"]) == 2
    assert "unknown option --group" in capsys.readouterr().err


def test_missing_model_is_one_line(capsys):
    assert cli.main(["canonicalize", "/no/such.pt"]) == 2
    assert capsys.readouterr().err == "equivox: error: model not found: /no/such.pt\n"


def test_an_unreadable_model_file_is_a_user_error(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_text("not a model")
    assert cli.main(["canonicalize", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0]


def test_canonicalize_says_when_the_model_is_already_invariant(tmp_path, capsys):
    import re

    import numpy as np

    from equivox.training import TrainConfig, fit

    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(data, images=rng.random((12, 8, 8, 8)).astype(np.float32), labels=np.arange(12) % 2)
    res = fit(TrainConfig(task="classify", dataset=str(data), input_size=8, channels=(2, 2), strides=(2,),
                          convs_per_level=1, hidden_features=(8,), epochs=1, batch_size=4, progress=False,
                          accelerator="cpu", out_dir=str(tmp_path / "octa"), extra={"model_summary": False}))
    assert cli.main(["canonicalize", str(res.last_checkpoint), "--epochs", "1", "--canonicalizer-input-size", "8",
                     "--canonicalizer-channels", "2,2", "--out", str(tmp_path / "canon"), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "InvariantClassifier is already invariant under the 24 octa rotations" in text
    assert re.search(r"mapped to the identity: \d+/\d+ \(chance 1/24\)", text)


def test_canonicalize_refuses_a_torchscript_model_before_writing_anything(tmp_path, last_error_line):
    """A canonicalized model around a TorchScript module cannot be saved: refused with one line before fitting."""
    import torch
    from torch import nn

    scripted = torch.jit.script(nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.AdaptiveAvgPool3d(1), nn.Flatten()))
    torch.jit.save(scripted, tmp_path / "scripted.pt")
    out = tmp_path / "canon"
    assert cli.main(["canonicalize", str(tmp_path / "scripted.pt"), "--out", str(out), "--no-progress"]) == 2
    assert "is a TorchScript model" in last_error_line() and not out.exists()


def test_canonicalize_help_says_where_its_defaults_come_from(capsys, help_blocks):
    assert cli.main(["canonicalize", "--help"]) == 0
    blocks = {k: " ".join(v.split()) for k, v in help_blocks(capsys.readouterr().out).items()}
    assert "(default: 10)" in blocks["--epochs"] and "(default: outputs/canonicalize)" in blocks["--out"]
    assert "(default: the checkpoint's, else octa)" in blocks["--canonicalize"]
    assert "(default: the checkpoint's, else 24)" in blocks["--patch-size"]
    assert "(default: off, such a folder is refused)" in blocks["--overwrite"]  # never the checkpoint's
    for absent in ("--arch", "--group", "--channels", "--strides", "--model-arg", "--resume", "--kernel-size"):
        assert absent not in blocks
