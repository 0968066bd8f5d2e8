"""examples/: the example scripts run and check what they claim."""
from __future__ import annotations

from pathlib import Path

import pytest

@pytest.mark.parametrize("name", ["custom_network"])
def test_example_runs(name, monkeypatch):
    """examples/custom_network.py (user nn.Module of equivox blocks -> plain torch, same outputs); the
    custom_group example runs in tests/groups/test_registry.py."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main()
    assert result["export_diff"] < 1e-4 and result["script_diff"] < 1e-4 and result["equivariance_error"] < 1e-4
