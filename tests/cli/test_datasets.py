"""equivox.cli.datasets (``equivox data``): list, info, build."""
from __future__ import annotations

from equivox import cli


def test_list_and_info(capsys):
    assert cli.main(["data", "list"]) == 0
    assert "chest_ct" in capsys.readouterr().out
    assert cli.main(["data", "info", "chest_ct"]) == 0
    assert "licence" in capsys.readouterr().out


def test_unknown_dataset_is_one_line(capsys):
    assert cli.main(["data", "info", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown dataset 'nope'" in err[0]
    assert cli.main(["data"]) == 2  # an action is required
