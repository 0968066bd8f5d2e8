"""equivox.cli.demo (``equivox demo``): settings are validated before anything is written, ``--help`` shows the
presets' values, and a --quick run of each task trains and scores the four roles. (The presets themselves:
tests/test_demo.py.)"""
from __future__ import annotations

import json
import re

import pytest

from equivox import cli, demo


def test_a_bad_value_ends_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--epochs", "0", "--out", str(out)]) == 2
    assert "epochs must be a positive integer, got 0" in capsys.readouterr().err
    assert not out.exists()


def test_help_shows_the_presets_values(capsys):
    assert cli.main(["demo", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert re.search(r"--epochs EPOCHS training epochs .*\(default: classify 25, segment 8, segment on the chest CT "
                     r"20; with --quick 1\)", text)
    assert "(default: classify all, 16 with --quick; segment 120, 32 with --quick; segment on the chest CT all)" in text
    assert "--hidden-features" in text  # used by the classification preset, so listed
    assert cli.demo_settings() == {k for p in demo.DEMO_PRESETS for k in p.uses}


@pytest.mark.parametrize("task", ["classify", "segment"])
def test_demo_quick(task, tmp_path, capsys):
    out = tmp_path / task
    assert cli.main(["demo", "--task", task, "--quick", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    names = list(summary["summaries"])
    # the four roles: equivariant, plain (matched parameters), plain + rotation augmentation, plain + canonicalizer
    eq = next(n for n in names if "equivariant" in n)
    plain = next(n for n in names if "plain" in n and "aug" not in n and "canonical" not in n)
    aug = next(n for n in names if "plain" in n and "aug" in n)
    canon = next(n for n in names if "canonical" in n)
    assert len({eq, plain, aug, canon}) == 4 and all(n in text for n in (eq, plain, aug, canon)) and str(out) in text
    for n in (eq, plain, aug, canon):
        assert set(summary["summaries"][n]) >= {"upright", "mean_grid", "worst_grid", "mean_so3", "worst_so3"}
        assert summary["summaries"][n]["upright"] is not None
    # the equivariant and the canonicalized model score the same on all 24 rotations
    assert summary["summaries"][eq]["std_grid"] < 1e-9 and summary["summaries"][canon]["std_grid"] < 1e-9
    err = summary["max_equivariance_error"]
    assert max(err[eq], err[canon]) < 1e-4 < err[plain]
    for f in ("rotation_scores.png", "comparison.txt"):
        assert (out / f).is_file(), f
    if task == "segment":
        assert (out / "segmentation_slices.png").is_file() and (out / "segmentation.json").is_file()
    else:
        assert (out / "accuracy.json").is_file()
    assert (out / "report_plain_aug.csv").is_file() and (out / "report_canonical.csv").is_file()
    # a quick run is labelled a smoke test and draws no verdict
    assert summary["smoke_test"] and summary["paired"] == [] and "numbers are not results" in text
    assert "met " not in text and "numbers are not results" in (out / "comparison.txt").read_text()
    if task == "segment":  # the part data: whole parts, test parts never used for validation
        assert summary["settings"]["dataset"] == "kicad_part_segments" and summary["settings"]["test_crop"] is None
