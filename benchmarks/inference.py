"""Inference (eval, no grad, batch 1) of the default octa ``EquivariantUNet``: equivox eager, its plain-PyTorch
export (:func:`equivox.export.export`), and MONAI ``UNet`` / ``BasicUNet`` of the same tensor width / parameters.

Usage::

    python benchmarks/inference.py                 # 64^3, 3 repeats (a few minutes on 2 cores)
    python benchmarks/inference.py --sizes 64 96
    python benchmarks/inference.py --quick         # smoke run: 16^3, tiny models

Prints a table and writes ``benchmarks/results/inference.json`` (+ ``inference.png``). All models run in this one
process, interleaved per repeat, so the ratios compare like with like on a shared machine.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import RESULTS, bar_plot, save, table  # noqa: E402
from models import build, matched_specs  # noqa: E402


def candidates(quick: bool, group: str = "octa"):
    """(name, params, width, module) of the models to compare, all in eval mode."""
    specs = matched_specs(quick, group)
    out = []
    eq, info = build(specs[0])
    eq.eval()
    with torch.no_grad():  # give batch norm non-trivial statistics, as after training
        eq.train()
        eq(torch.randn(2, 1, 16, 16, 16))
        eq.eval()
    out.append((info["name"] + " (eager)", info["params"], info["tensor_channels"], eq))
    out.append((info["name"] + " (exported)", info["params"], info["tensor_channels"], eq.export()))
    for spec in specs[1:]:
        m, i = build(spec)
        out.append((i["name"], i["params"], i["tensor_channels"], m.eval()))
    return out


def bench(models, size: int, repeats: int):
    x = torch.randn(1, 1, size, size, size)
    times = {name: [] for name, *_ in models}
    with torch.no_grad():
        for name, _, _, m in models:  # warm-up (and first-call filter expansion)
            m(x)
        for _ in range(repeats):
            for name, _, _, m in models:
                t = time.perf_counter()
                m(x)
                times[name].append(time.perf_counter() - t)
    return {k: sorted(v)[len(v) // 2] for k, v in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=int, default=[64])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--name", default=None)
    args = p.parse_args(argv)
    sizes, repeats = ([16], 1) if args.quick else (args.sizes, args.repeats)
    models = candidates(args.quick)
    eq = models[0][3]
    x = torch.randn(1, 1, sizes[0], sizes[0], sizes[0])
    with torch.no_grad():
        max_diff = (eq(x) - models[1][3](x)).abs().max().item()
    print(f"export max |difference| at {sizes[0]}^3: {max_diff:.2e}")
    rows = []
    for size in sizes:
        med = bench(models, size, repeats)
        exported = med[models[1][0]]
        for name, params, width, _ in models:
            rows.append({"size": size, "name": name, "params": params, "tensor_channels": width,
                         "infer_s": med[name], "ratio_exported_over_this": exported / med[name]})
            print(f"  {size}^3 {name:40s} {med[name]:.3f}s", flush=True)
    print(table(rows, ["size", "name", "params", "tensor_channels", "infer_s", "ratio_exported_over_this"]))
    name = args.name or ("inference_quick" if args.quick else "inference")
    path = save(name, {"repeats": repeats, "export_max_abs_diff": max_diff, "rows": rows})
    bar_plot(RESULTS / f"{name}.png", [f"{r['name']} {r['size']}^3" for r in rows],
             {"seconds": [r["infer_s"] for r in rows]}, "seconds / forward", "Inference, batch 1")
    print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    main()
