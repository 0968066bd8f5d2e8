"""equivox.cli.canonicalize: the data / canonicalizer / trainer options of TrainConfig (no network ones), the
checkpoint's settings as defaults, its own fixed ones over them."""
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
