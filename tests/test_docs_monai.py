"""docs/monai.md: every ```python block runs as written (was: section 2 used an undefined ``x``).

A block that cannot run here (needs data or a GPU) would be skipped by the marker comment ``# docs: not run`` on its
first line; keep that rare (none today)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "monai.md"
SKIP = "# docs: not run"


def python_blocks(text: str):
    """``[(line number, code)]`` of the fenced ```python blocks of a markdown text."""
    return [(text[: m.start()].count("\n") + 2, m.group(1))
            for m in re.finditer(r"^```python[ \t]*\n(.*?)^```[ \t]*$", text, flags=re.S | re.M)]


BLOCKS = python_blocks(DOC.read_text(encoding="utf-8"))


def test_the_page_has_python_blocks():
    assert len(BLOCKS) >= 2
    assert sum(code.lstrip().startswith(SKIP) for _, code in BLOCKS) <= 1  # skipping stays the exception


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"line{n}" for n, _ in BLOCKS])
def test_python_block_runs_as_written(line, code):
    if code.lstrip().startswith(SKIP):
        pytest.skip(f"docs/monai.md:{line} is marked '{SKIP}'")
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest on a shared CPU
    try:
        exec(compile(code, f"docs/monai.md:{line}", "exec"), {"__name__": "__docs_monai__"})
    finally:
        torch.set_num_threads(threads)
