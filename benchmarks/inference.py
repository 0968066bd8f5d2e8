"""Inference (eval, no grad, batch 1) of the default-width octa ``EquivariantUNet`` and ``EquivariantMonaiUNet``:
equivox eager, the plain-PyTorch export (:func:`equivox.export.export`), and MONAI ``UNet`` / ``BasicUNet`` of the
same tensor width / parameters, each compared with the exported equivox model of the same layout.

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
    """(name, params, width, module, reference name) of the models to compare, all in eval mode.

    Each equivox model appears eager and exported; every other model is compared with the exported equivox model
    of the same layout."""
    out = []
    for spec in matched_specs(quick, group):
        m, info = build(spec)
        if spec["kind"] == "equivox":
            with torch.no_grad():  # give batch norm non-trivial statistics, as after training
                m.train()(torch.randn(2, 1, 16, 16, 16))
            m.eval()
            exported = info["name"] + " (exported)"
            out.append((info["name"] + " (eager)", info["params"], info["tensor_channels"], m, exported))
            out.append((exported, info["params"], info["tensor_channels"], m.export(), exported))
        else:
            out.append((info["name"], info["params"], info["tensor_channels"], m.eval(), spec["ref"] + " (exported)"))
    return out


def bench(models, size: int, repeats: int):
    x = torch.randn(1, 1, size, size, size)
    times = {name: [] for name, *_ in models}
    with torch.no_grad():
        for name, _, _, m, _ in models:  # warm-up (and first-call filter expansion)
            m(x)
        for _ in range(repeats):
            for name, _, _, m, _ in models:
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
    x = torch.randn(1, 1, sizes[0], sizes[0], sizes[0])
    max_diff = {}
    with torch.no_grad():
        for (name, _, _, eager, _), (_, _, _, plain, _) in zip(models, models[1:]):
            if name.endswith("(eager)"):
                max_diff[name[:-8]] = (eager(x) - plain(x)).abs().max().item()
                print(f"{name[:-8]}: export max |difference| at {sizes[0]}^3: {max_diff[name[:-8]]:.2e}")
    rows = []
    for size in sizes:
        med = bench(models, size, repeats)
        for name, params, width, _, ref in models:
            rows.append({"size": size, "name": name, "params": params, "tensor_channels": width, "infer_s": med[name],
                         "compared_with": ref, "ratio_exported_over_this": med[ref] / med[name]})
            print(f"  {size}^3 {name:40s} {med[name]:.3f}s", flush=True)
    print(table(rows, ["size", "name", "params", "tensor_channels", "infer_s", "compared_with",
                       "ratio_exported_over_this"]))
    name = args.name or ("inference_quick" if args.quick else "inference")
    path = save(name, {"repeats": repeats, "export_max_abs_diff": max_diff, "rows": rows})
    bar_plot(RESULTS / f"{name}.png", [f"{r['name']} {r['size']}^3" for r in rows],
             {"seconds": [r["infer_s"] for r in rows]}, "seconds / forward", "Inference, batch 1")
    print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    main()
