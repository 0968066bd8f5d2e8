"""equivox.benchmark.progress: the harness's progress lines and quiet Lightning loggers are equivox.console's."""
from __future__ import annotations

import equivox.console as console
from equivox.benchmark import progress


def test_the_harness_uses_the_console_functions(capsys):
    assert progress.say is console.say and progress.quiet_lightning is console.quiet_lightning
    assert progress.LIGHTNING_LOGGERS == console.LIGHTNING_LOGGERS
    progress.say("competitor 1/3")
    progress.say("not shown", verbose=False)
    assert capsys.readouterr().out == "competitor 1/3\n"
