"""Helpers of the tests/cli test files, handed out as fixtures."""
from __future__ import annotations

import re

import pytest


def _help_blocks(text: str) -> dict:
    """``{each option string of an entry: its whole help text}`` of a ``--help`` output."""
    blocks, keys = {}, []
    for line in text.splitlines():
        m = re.match(r"^  (-[^ ].*?)(  +|$)", line)
        if m:
            keys = [k.split(" ")[0] for k in m.group(1).split(", ")]
            for k in keys:
                blocks[k] = line.strip()
        elif keys and line.startswith("   "):
            for k in keys:
                blocks[k] += " " + line.strip()
        else:
            keys = []
    return blocks


@pytest.fixture
def help_blocks():
    """``help_blocks(text) -> {option string: its whole help text}`` of a ``--help`` output: every option string of
    an entry (``--canonical-sample`` and ``--no-canonical-sample``) maps to the entry's text."""
    return _help_blocks
