"""benchmarks/cpu_proxy.py: the operator counters see a known difference between two tiny models, and the script
writes both models' counts, the ratio and the verdicts (tiny channels, 8^3: seconds)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def proxy():
    spec = importlib.util.spec_from_file_location("cpu_proxy", ROOT / "benchmarks" / "cpu_proxy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _step(model):
    torch.manual_seed(0)
    x = torch.randn(3, 4)

    def step():  # grads reset each time: the second call does what the first did (no accumulation)
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()

    return step


@pytest.mark.parametrize("counter", ["count_aten_ops", "count_dispatched_ops"])
def test_counters_see_one_extra_relu(proxy, counter):
    count = getattr(proxy, counter)
    torch.manual_seed(0)
    one = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    two = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.ReLU())
    a, b = count(_step(one)), count(_step(two))
    assert a["aten::relu"] == 1 and b["aten::relu"] == 2
    assert b["aten::threshold_backward"] == a["aten::threshold_backward"] + 1
    assert sum(b.values()) > sum(a.values())
    assert count(_step(one)) == a  # deterministic
    excess = {r["op"]: r["excess_calls"] for r in proxy.excess_ops(b, a)}
    assert excess["aten::relu"] == 1 and "aten::addmm" not in excess


def _run(proxy, tmp_path, *extra):
    out = tmp_path / "cpu_proxy.json"
    doc = proxy.main(["--size", "8", "--channels", "1", "2", "--out", str(out), *extra])
    assert json.loads(out.read_text()) == json.loads(json.dumps(doc))
    return doc


def test_main_writes_counts_and_ratio(proxy, tmp_path):
    doc = _run(proxy, tmp_path, "--no-timing")
    eq, mo = doc["models"]
    assert eq["model"].startswith("equivox octa MonaiUNet [1, 2]")
    assert mo["model"] == "MONAI UNet same width [24, 48]"  # the equivox tensor width (24 channels per octa field)
    for m in (eq, mo):
        assert m["aten_ops"] > 0 and m["dispatched_ops"] > 0 and m["step_time"] is None
        assert 0 < len(m["top_aten_ops"]) <= 15
        assert m["top_aten_ops"][0]["calls"] >= m["top_aten_ops"][-1]["calls"]
    assert doc["aten_ops_ratio"] == pytest.approx(eq["aten_ops"] / mo["aten_ops"])
    assert doc["verdict_aten_ops"] == ("met" if doc["aten_ops_ratio"] <= 1.2 else "missed")
    assert doc["verdict_step_time"].startswith("not measured") and doc["step_time_ratio"] is None
    assert doc["targets"]["aten_ops_ratio_max"] == 1.2 and doc["targets"]["step_time_ratio_max"] == 0.99
    assert doc["versions"]["escnn"] and doc["machine"]["cpu_count"]
    assert "--no-timing" in doc["command"]


def test_main_timing_under_load_note(proxy, tmp_path):
    doc = _run(proxy, tmp_path, "--repeats", "2", "--note", "beside a benchmark")
    eq, mo = doc["models"]
    assert len(eq["step_time"]["per_repeat_s"]) == 2 and len(mo["step_time"]["per_repeat_s"]) == 2
    assert doc["step_time_ratio"] == pytest.approx(eq["step_time"]["median_s"] / mo["step_time"]["median_s"])
    assert doc["timing_condition"] == "measured under load: beside a benchmark"
    assert doc["verdict_step_time"].split(":")[0] in ("met", "missed", "unresolved")
