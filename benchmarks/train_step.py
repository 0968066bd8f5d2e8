"""One training step (forward + cross-entropy + backward + SGD step) of the default-width octa ``EquivariantUNet``
and ``EquivariantMonaiUNet`` vs MONAI ``UNet`` / ``BasicUNet`` of the same tensor width and of the same parameter
count, each compared with the equivox model of the same layout (see ``models.matched_specs``).

Each model and size runs in a fresh process. Time: median of ``--repeats`` steps after one warm-up step.
Memory: on CPU the peak RSS during the steps (``VmHWM`` of ``/proc/self/status``, reset just before the warm-up
step) minus the RSS before them, i.e. the activations/gradients/workspace the step needs (model build and import
excluded); on GPU ``torch.cuda.max_memory_allocated``.

Usage::

    python benchmarks/train_step.py                       # sizes 32 64, 2 repeats (about 10-15 min on 2 cores)
    python benchmarks/train_step.py --sizes 32 --repeats 3
    python benchmarks/train_step.py --quick               # smoke run: 16^3, tiny models, 1 repeat

Prints a table (with ratios to the equivox model, measured side by side in this run) and writes
``benchmarks/results/train_step.json`` (+ ``train_step.png``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import RESULTS, bar_plot, run_isolated, save, table  # noqa: E402

STEP_CODE = """
import json, resource, time, torch
import sys
sys.path.insert(0, {bench_dir!r})
from models import build
if {threads!r}:
    torch.set_num_threads({threads!r})
torch.manual_seed(0)
model, info = build({spec!r})
size = {size!r}
device = "cuda" if torch.cuda.is_available() else "cpu"
model = model.to(device).train()
batch = {batch!r}
x = torch.randn(batch, 1, size, size, size, device=device)
y = torch.randint(0, 2, (batch, size, size, size), device=device)
opt = torch.optim.SGD(model.parameters(), lr=1e-3)
def step():
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024  # MiB
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS high-water mark (Linux)
    rss0, use_hwm = status("VmRSS"), True
except OSError:
    rss0, use_hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, False
step()  # warm-up
times = []
for _ in range({repeats!r}):
    if device == "cuda": torch.cuda.synchronize()
    t = time.perf_counter(); step()
    if device == "cuda": torch.cuda.synchronize()
    times.append(time.perf_counter() - t)
rss1 = status("VmHWM") if use_hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
mem = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else rss1 - rss0
times.sort()
print(json.dumps(dict(info, size=size, batch=batch, step_s=times[len(times) // 2], step_min_s=times[0], memory_mib=mem,
                      memory_kind="cuda_max_allocated" if device == "cuda" else "peak_rss_increase",
                      device=device)))
"""


def specs(quick: bool):
    from models import matched_specs

    return matched_specs(quick)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=int, default=[32, 64])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch threads per process (0: torch default)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--name", default=None)
    args = p.parse_args(argv)
    sizes, repeats = ([16], 1) if args.quick else (args.sizes, args.repeats)
    bench_dir = str(Path(__file__).resolve().parent)
    rows = []
    for size in sizes:
        done = {}
        for spec in specs(args.quick):
            r = run_isolated(STEP_CODE.format(bench_dir=bench_dir, spec=spec, size=size, repeats=repeats,
                                               batch=2 if args.quick else 1, threads=args.threads))
            base = done.get(spec.get("ref"), r)  # equivox rows are their own reference
            done[spec["name"]] = r
            r["compared_with"] = spec.get("ref", "-")
            r["time_ratio_equivox_over_this"] = base["step_s"] / r["step_s"]
            r["memory_ratio_equivox_over_this"] = (base["memory_mib"] / r["memory_mib"]) if r["memory_mib"] > 1 else None
            rows.append(r)
            print(f"  {size}^3 {r['name']:32s} {r['step_s']:.3f}s  {r['memory_mib']:.0f} MiB", flush=True)
    cols = ["size", "name", "params", "tensor_channels", "step_s", "memory_mib", "compared_with",
            "time_ratio_equivox_over_this", "memory_ratio_equivox_over_this"]
    print(table(rows, cols))
    name = args.name or ("train_step_quick" if args.quick else "train_step")
    path = save(name, {"repeats": repeats, "rows": rows, "torch_threads_requested": args.threads or "default",
                       "notes": "ratios: the equivox model of the same layout (compared_with) / this model, same run"})
    labels = [f"{r['name']} {r['size']}^3" for r in rows]
    bar_plot(RESULTS / f"{name}.png", labels, {"step seconds": [r["step_s"] for r in rows]}, "seconds / step",
             "Training step")
    print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    main()
