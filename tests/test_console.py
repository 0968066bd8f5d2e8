"""equivox.console: progress lines printed at once (or not at all), Lightning's loggers lowered to WARNING, and
warnings formatted on one line."""
from __future__ import annotations

import logging
import warnings

from equivox.console import LIGHTNING_LOGGERS, one_line_warning, quiet_lightning, say


def test_say_prints_one_line_unless_quiet(capsys):
    say("epoch 1: loss 0.5")
    say("hidden", verbose=False)
    say()
    assert capsys.readouterr().out == "epoch 1: loss 0.5\n\n"


def test_quiet_lightning_lowers_every_lightning_logger(monkeypatch):
    for name in LIGHTNING_LOGGERS:
        monkeypatch.setattr(logging.getLogger(name), "level", logging.INFO)
    with warnings.catch_warnings():  # quiet_lightning adds a warnings filter: keep it inside this test
        quiet_lightning()
    assert all(logging.getLogger(name).level == logging.WARNING for name in LIGHTNING_LOGGERS)


def test_one_line_warning_joins_the_message_and_names_the_category():
    text = one_line_warning("a long\n   message\tsplit", UserWarning, "file.py", 12, "source line")
    assert text == "equivox: UserWarning: a long message split\n"
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        old = warnings.formatwarning
        warnings.formatwarning = one_line_warning
        try:
            assert warnings.formatwarning(RuntimeWarning("x\ny"), RuntimeWarning, "f.py", 1) == \
                "equivox: RuntimeWarning: x y\n"
        finally:
            warnings.formatwarning = old
