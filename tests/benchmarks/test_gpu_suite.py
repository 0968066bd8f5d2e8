"""benchmarks/gpu_suite.sh cannot rot unnoticed: its CPU smoke mode runs every measuring section on tiny models, and
without CUDA it fails at once with a clear message (CI has no GPU)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "benchmarks" / "gpu_suite.sh"


def _run(args, timeout):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(SUITE), *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")
def test_fails_fast_without_cuda(tmp_path):
    proc = _run(["--out", str(tmp_path)], timeout=120)
    assert proc.returncode == 2
    assert "CUDA is not available" in proc.stderr
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_cpu_smoke_run_writes_every_section(tmp_path):
    # compile is covered by tests/test_compile.py, memory by `benchmarks/memory.py --quick` (fresh processes)
    sections = ["construction", "train", "inference", "profile", "amp_equivariance"]
    proc = _run(["--device", "cpu", "--tiny", "--out", str(tmp_path), "--sections", *sections], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "suite.json").read_text())
    assert {k: v["status"] for k, v in summary["sections"].items()} == {s: "ok" for s in sections}
    assert summary["nnunet"]["published_training_voxels_per_s"] is None and summary["nnunet"]["source"]
    train = json.loads((tmp_path / "train.json").read_text())
    assert {r["precision"] for r in train["rows"]} == {"fp32", "bfloat16"}
    assert any("ratio_vs_monai_same_width" in r for r in train["rows"])
    assert all(r["voxels_per_s"] > 0 for r in train["rows"])
    inference = json.loads((tmp_path / "inference.json").read_text())
    exported = [r for r in inference["rows"] if r["model"] == "equivox exported"]
    assert exported and all(r["export_max_abs_diff"] < 1e-4 for r in exported if r["precision"] == "fp32")
    profile = json.loads((tmp_path / "profile.json").read_text())
    assert [m["model"] for m in profile["models"]] == [r["model"] for r in train["rows"][:2]]
    for m in profile["models"]:
        assert m["total_ms_per_step"] > 0 and any("conv" in t["op"] for t in m["top"])
        top_ms = sum(t["ms_per_step"] for t in m["top"])
        assert abs(sum(t["share"] for t in m["top"]) - top_ms / m["total_ms_per_step"]) < 1e-6
    amp = json.loads((tmp_path / "amp_equivariance.json").read_text())
    assert amp["fp32"]["max_relative"] < 1e-4 and amp["fp32"]["elements"] == 24
    assert (tmp_path / "train.png").is_file()
