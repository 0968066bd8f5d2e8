"""equivox.cli.nnunet: ``nnunet plans`` options; the plans checks' ValueErrors are reported as user errors."""
from __future__ import annotations

import pytest

from equivox import cli


def test_needs_a_dataset(capsys):
    assert cli.main(["nnunet", "plans"]) == 2
    assert "give --dataset-id N (or --plans-file FILE)" in capsys.readouterr().err


def test_a_plans_problem_is_one_line_but_a_bug_is_not(monkeypatch, capsys):
    import equivox.nnunet.plans as plans

    def bad_plans(args):
        raise ValueError("configuration '2d' is 2D (patch_size [32, 32])")

    monkeypatch.setattr(plans, "run_plans_command", bad_plans)
    assert cli.main(["nnunet", "plans", "--plans-file", "p.json"]) == 2
    assert capsys.readouterr().err == "equivox: error: configuration '2d' is 2D (patch_size [32, 32])\n"

    def buggy(args):
        raise KeyError("arch_kwargs")

    monkeypatch.setattr(plans, "run_plans_command", buggy)
    with pytest.raises(KeyError):
        cli.main(["nnunet", "plans", "--plans-file", "p.json"])
