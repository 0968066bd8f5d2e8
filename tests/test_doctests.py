"""The runnable examples (``>>>``) in the docstrings of the public entry points run as part of the suite."""
import doctest
import importlib

import pytest

MODULES = ["equivox.core", "equivox.export", "equivox.testing", "equivox.nn.module", "equivox.nn.sampling",
           "equivox.nn.fieldwise", "equivox.nets.unet", "equivox.nnunet.rules", "equivox.benchmark.records"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no docstring example"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (output above)"
