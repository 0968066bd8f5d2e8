"""Peak memory and time per training step at large inputs, with and without activation checkpointing
(:func:`equivox.nn.checkpointing.enable_activation_checkpointing`).

Each (size, checkpointing) pair runs in a fresh process: build the model, one warm-up step, ``--repeats`` timed
steps (forward, cross-entropy, backward, SGD). Memory: on CPU the peak RSS during the steps (``VmHWM``, reset just
before the warm-up step) minus the RSS before them; on CUDA ``torch.cuda.max_memory_allocated`` (reset likewise).

CPU defaults fit a 2-core machine in a few minutes: batch 1, ``c4_axial`` (4 channels per field), fields (2, 4).
On a GPU use the default-width octa model::

    python benchmarks/memory.py                                   # CPU: 96^3 and 128^3, c4_axial (2, 4)
    python benchmarks/memory.py --device cuda --group octa --channels 4 8 16 --strides 2 2 --name gpu/memory
    python benchmarks/memory.py --quick                           # smoke run: 16^3, 1 repeat

Writes ``benchmarks/results/<name>.json`` (+ ``.png``); ratios (checkpointed / plain) are measured side by side.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import PEAK_RSS_CODE, RESULTS, bar_plot, run_isolated, save, table  # noqa: E402

STEP_CODE = """
import json, resource, time, torch
from equivox.nets import EquivariantUNet, EquivariantMonaiUNet
from equivox.nn.checkpointing import enable_activation_checkpointing, checkpointed_modules
if {threads!r}:
    torch.set_num_threads({threads!r})
device = {device!r}
torch.manual_seed(0)
cls = EquivariantMonaiUNet if {layout!r} == "monai" else EquivariantUNet
model = cls(3, 1, 2, channels={channels!r}, strides={strides!r}, group={group!r})
if {ckpt!r}:
    enable_activation_checkpointing(model)
model = model.to(device).train()
size, batch = {size!r}, {batch!r}
x = torch.randn(batch, 1, size, size, size, device=device)
y = torch.randint(0, 2, (batch, size, size, size), device=device)
opt = torch.optim.SGD(model.parameters(), lr=1e-3)
def step():
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
""" + PEAK_RSS_CODE + """
if device == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); use_hwm = False; rss0 = 0
else:
    rss0, use_hwm = rss_start()
step()
times = []
for _ in range({repeats!r}):
    if device == "cuda": torch.cuda.synchronize()
    t = time.perf_counter(); step()
    if device == "cuda": torch.cuda.synchronize()
    times.append(time.perf_counter() - t)
if device == "cuda":
    mem = torch.cuda.max_memory_allocated() / 2**20
else:
    mem = rss_peak(use_hwm) - rss0
times.sort()
print(json.dumps(dict(size=size, batch=batch, checkpointing=bool({ckpt!r}), step_s=times[len(times) // 2],
                      step_min_s=times[0], memory_mib=mem, device=device,
                      memory_kind="cuda_max_allocated" if device == "cuda" else "peak_rss_increase",
                      checkpointed_blocks=len(checkpointed_modules(model)),
                      tensor_channels=list(getattr(model, "tensor_channels", []) or []))))
"""


def run(sizes, device, group, channels, strides, layout, batch, repeats, threads, timeout):
    """Rows ``{size, checkpointing, step_s, memory_mib, ...}``, one fresh process each (checkpointing off, on)."""
    rows = []
    for size in sizes:
        for ckpt in (False, True):
            code = STEP_CODE.format(threads=threads, device=device, layout=layout, channels=tuple(channels),
                                    strides=tuple(strides), group=group, ckpt=ckpt, size=size, batch=batch,
                                    repeats=repeats)
            print(f"  {size}^3 checkpointing={'on ' if ckpt else 'off'} ...", end="", flush=True)
            r = run_isolated(code, {}, timeout)
            r.update(group=group, channels=list(channels), layout=layout)
            rows.append(r)
            print(f" {r['step_s']:.2f} s/step, {r['memory_mib']:.0f} MiB", flush=True)
        plain, ck = rows[-2], rows[-1]
        ck["memory_ratio"] = ck["memory_mib"] / max(plain["memory_mib"], 1e-9)
        ck["time_ratio"] = ck["step_s"] / plain["step_s"]
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=int, default=[96, 128])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--group", default="c4_axial")
    p.add_argument("--channels", nargs="+", type=int, default=[2, 4])
    p.add_argument("--strides", nargs="+", type=int, default=[2])
    p.add_argument("--layout", default="unet", choices=["unet", "monai"])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch threads per process (0: torch default)")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--quick", action="store_true", help="smoke run: 16^3, 1 repeat")
    p.add_argument("--name", default=None, help="results name (default memory / memory_quick)")
    args = p.parse_args(argv)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            sys.exit("memory.py --device cuda: CUDA is not available on this machine")
    sizes = [16] if args.quick else args.sizes
    print(f"memory: {args.layout} {args.group} channels {args.channels} on {args.device}, batch {args.batch}")
    rows = run(sizes, args.device, args.group, args.channels, args.strides, args.layout, args.batch, args.repeats,
               args.threads, args.timeout)
    print(table(rows, ["size", "checkpointing", "step_s", "memory_mib", "time_ratio", "memory_ratio"]))
    name = args.name or ("memory_quick" if args.quick else "memory")
    path = save(name, {"notes": "each row a fresh process; ratios = checkpointed / plain at the same size",
                       "rows": rows})
    labels = [f"{s}^3" for s in sizes]
    for key, ylabel, suffix in (("memory_mib", "peak memory (MiB)", ""), ("step_s", "s / training step", "_time")):
        series = {f"checkpointing {'on' if c else 'off'}": [next(r[key] for r in rows if r["size"] == s and
                                                                 r["checkpointing"] == c) for s in sizes]
                  for c in (False, True)}
        bar_plot(RESULTS / f"{name}{suffix}.png", labels, series, ylabel,
                 f"{args.layout} {args.group} {args.channels}, batch {args.batch}, {args.device}")
    print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    main()
