"""equivox.cli.predict: options and user errors (the runs are in tests/test_prediction.py)."""
from __future__ import annotations

from equivox import cli


def test_options():
    args = cli.build_parser().parse_args(["predict", "m.ckpt", "a.nii.gz", "b.nii.gz", "--out", "o", "--no-plots"])
    assert (args.model, args.files, args.out, args.no_plots, args.overlap) == ("m.ckpt", ["a.nii.gz", "b.nii.gz"], "o",
                                                                             True, 0.25)


def test_out_is_required_and_the_model_must_exist(capsys):
    assert cli.main(["predict", "m.ckpt"]) == 2
    assert "--out" in capsys.readouterr().err
    assert cli.main(["predict", "/no/such.ckpt", "--out", "x"]) == 2
    assert capsys.readouterr().err == "equivox: error: checkpoint not found: /no/such.ckpt\n"
