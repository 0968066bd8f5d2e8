"""Scaling with input size and width: octa ``EquivariantMonaiUNet`` (eager, exported) vs MONAI ``UNet`` of the same
tensor width and layout, plus the exported classic ``EquivariantUNet`` (full-resolution first level).

Forward (eval, no grad, batch 1) and training step (forward + backward, batch 1) times.

Usage::

    python benchmarks/scaling.py                          # sizes 32 48 64 96, widths (2,4,8) (4,8,16) (8,16,32)
    python benchmarks/scaling.py --sizes 32 64 96 128     # 128^3 takes minutes per model on 2 CPU cores
    python benchmarks/scaling.py --quick                  # smoke run: 16^3 and 32^3 forward only, tiny widths

Prints tables and writes ``benchmarks/results/scaling.json`` (+ ``scaling.png``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import RESULTS, save, table  # noqa: E402


def _models(channels, group="octa"):
    """The MONAI-layout equivox U-Net (eager, exported), MONAI ``UNet`` of the same tensor width and layout, and the
    exported classic equivox U-Net (first level at full resolution) for scale."""
    from monai.networks.nets import UNet

    from equivox.nets import EquivariantMonaiUNet, EquivariantUNet

    strides = (2,) * (len(channels) - 1)
    eq = EquivariantMonaiUNet(3, 1, 2, channels=channels, strides=strides, group=group, num_res_units=2, norm="batch")
    classic = EquivariantUNet(3, 1, 2, channels=channels, strides=strides, group=group)
    width = list(eq.tensor_channels)
    monai = UNet(3, 1, 2, channels=width, strides=strides, num_res_units=2, norm="batch")
    return {"equivox MonaiUNet eager": eq, "equivox MonaiUNet exported": eq.eval().export(),
            "MONAI UNet same width": monai, "equivox UNet exported": classic.eval().export()}, width


def _time(fn, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def run(channels, sizes, repeats, train: bool):
    models, width = _models(channels)
    rows = []
    for size in sizes:
        x = torch.randn(1, 1, size, size, size)
        for name, m in models.items():
            row = {"channels": list(channels), "tensor_channels": str(width), "size": size, "name": name}
            m.eval()
            with torch.no_grad():
                row["infer_s"] = _time(lambda: m(x), repeats)
            if train and "exported" not in name:
                m.train()

                def step():
                    m.zero_grad(set_to_none=True)
                    m(x).square().mean().backward()

                row["train_step_s"] = _time(step, repeats)
            rows.append(row)
            print(f"  width {width} {size}^3 {name:28s} infer {row['infer_s']:.3f}s"
                  + (f" train {row['train_step_s']:.3f}s" if "train_step_s" in row else ""), flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=int, default=[32, 48, 64, 96])
    p.add_argument("--widths", nargs="+", default=["2,4,8", "4,8,16", "8,16,32"])
    p.add_argument("--width-size", type=int, default=48, help="input size for the width sweep")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--no-train", action="store_true", help="forward only")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--name", default=None)
    args = p.parse_args(argv)
    if args.quick:
        size_rows = run((1, 2), [16, 32], 1, train=False)
        width_rows = run((1, 1), [16], 1, train=False)
    else:
        size_rows = run((4, 8, 16), args.sizes, args.repeats, not args.no_train)
        width_rows = []
        for w in args.widths:
            ch = tuple(int(c) for c in w.split(","))
            if ch == (4, 8, 16) and args.width_size in args.sizes:
                width_rows += [r for r in size_rows if r["size"] == args.width_size]
                continue
            width_rows += run(ch, [args.width_size], args.repeats, not args.no_train)
    cols = ["channels", "tensor_channels", "size", "name", "infer_s", "train_step_s"]
    print("input size sweep\n" + table(size_rows, cols))
    print("width sweep\n" + table(width_rows, cols))
    name = args.name or ("scaling_quick" if args.quick else "scaling")
    path = save(name, {"size_sweep": size_rows, "width_sweep": width_rows})

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for nm in dict.fromkeys(r["name"] for r in size_rows):
        rs = [r for r in size_rows if r["name"] == nm]
        axes[0].plot([r["size"] for r in rs], [r["infer_s"] for r in rs], "o-", label=nm)
        rs = [r for r in width_rows if r["name"] == nm]
        axes[1].plot([r["tensor_channels"] for r in rs], [r["infer_s"] for r in rs], "o-", label=nm)
    axes[0].set(xlabel="input size (voxels per side)", ylabel="forward seconds", yscale="log", title="input size")
    axes[1].set(xlabel="tensor channels per level", ylabel="forward seconds", yscale="log", title="width")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
