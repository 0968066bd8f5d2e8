"""Shared helpers for the equivox benchmarks: machine info, timing, peak memory in a fresh process, JSON + plots."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

RESULTS = Path(__file__).resolve().parent / "results"


def machine_info() -> Dict[str, object]:
    """Platform, CPU count, torch/escnn/monai versions, GPU (if any), load average at the time of the run."""
    import torch

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        info["load_average_1_5_15"] = os.getloadavg()
    except OSError:
        pass
    for name in ("escnn", "monai"):
        try:
            info[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - reporting only
            info[name] = None
    return info


def timeit(fn: Callable[[], object], repeats: int, warmup: int = 1) -> Dict[str, float]:
    """Median / min wall time of ``fn`` over ``repeats`` runs after ``warmup`` runs (seconds)."""
    import torch

    for _ in range(warmup):
        fn()
    times: List[float] = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    times.sort()
    return {"median_s": times[len(times) // 2], "min_s": times[0], "repeats": repeats}


def run_isolated(code: str, env: Dict[str, str] = None, timeout: float = 1800) -> Dict[str, object]:
    """Run python ``code`` in a fresh interpreter; it must print one JSON line last. Returns that dict."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def save(name: str, payload: Dict[str, object]) -> Path:
    """Write ``benchmarks/results/<name>.json`` (with machine info) and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "machine": machine_info(), **payload}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path


def table(rows: List[Dict[str, object]], columns: List[str]) -> str:
    """Plain-text table of ``rows`` (dicts) with the given columns."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
        return "-" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def bar_plot(path: Path, labels: List[str], series: Dict[str, List[float]], ylabel: str, title: str,
             log: bool = False) -> None:
    """Grouped bar chart (matplotlib, Agg backend) saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, len(labels) * 1.2), 4))
    n = len(series)
    width = 0.8 / max(n, 1)
    for i, (name, vals) in enumerate(series.items()):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(labels))]
        ax.bar(xs, [v if v is not None else 0 for v in vals], width, label=name)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=20)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if log:
        ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


#: code for a child process's peak memory on the CPU (pasted into the benchmarks' child scripts; no braces, so it
#: survives ``str.format``): ``rss_start()`` resets the kernel's peak-RSS counter where Linux allows it and returns
#: ``(baseline MiB, use_hwm)``; ``rss_peak(use_hwm)`` is the peak since then (``VmHWM``), else the process maximum.
PEAK_RSS_CODE = """
import resource
def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
def rss_start():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return status("VmRSS"), True
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, False
def rss_peak(use_hwm):
    return status("VmHWM") if use_hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""
