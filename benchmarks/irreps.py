"""Irreps fields (e3nn) vs Fourier fields (escnn ``so3``) vs regular fields (``octa``) vs a plain CNN, at matched
parameters: build time, training-step time and peak memory, as ratios to the plain CNN measured in the same run.

Models: the ``octa`` reference (``EquivariantUNet`` / ``InvariantClassifier``, fields per level ``--channels``,
strides 2) and, at its parameter count (``equivox.baselines.match_channels``), the same network on ``trivial``
(plain), ``so3`` (Fourier, L=2), ``so3_irreps`` and ``o3_irreps`` (fields 2x0e+1x1o+1x2e + gates), and for
segmentation the MELBA-layout irreps U-Net (kernel 5, fields 4x0e+2x1o+1x2e, :mod:`equivox.irreps.competitors`).

Every measurement runs in a fresh process (imports excluded from every number); the processes of one round visit
the models in turn and ``--rounds`` rounds are run, so each ratio has an interval (min-max over rounds; the
figure and table give the median).

* build: constructing the network (group data and kernel bases from the caches as a user has them: shipped escnn
  bases, the disk cache; the e3nn bases are closed-form and disk-cached after their first build);
* step: median of ``--repeats`` training steps (forward, cross-entropy, backward, SGD) after one warm-up, batch
  ``--batch`` of ``--size``^3 inputs;
* memory: peak RSS during the steps minus RSS before them (``VmHWM`` reset through ``/proc/self/clear_refs``).

Usage::

    python benchmarks/irreps.py                 # 3 rounds, 16^3, batch 2 (about 8 min on 2 busy cores)
    python benchmarks/irreps.py --quick         # smoke run: 1 round, 8^3, classify only

Writes ``benchmarks/results/irreps/irreps.json`` and ``irreps.png`` (``--name`` for another stem).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import PEAK_RSS_CODE, RESULTS, machine_info, run_isolated, table  # noqa: E402

OUT = RESULTS / "irreps"

#: (row name, group, kind) in display order; kind "melba" is the MELBA-layout U-Net builder
MODELS = [
    ("plain (trivial)", "trivial", "net"),
    ("regular (octa)", "octa", "net"),
    ("Fourier (so3)", "so3", "net"),
    ("irreps (so3_irreps)", "so3_irreps", "net"),
    ("irreps (o3_irreps)", "o3_irreps", "net"),
    ("irreps MELBA layout k5 (so3)", "so3_irreps_melba", "melba"),
]

CHILD = r"""
import json, resource, time, torch, sys
torch.manual_seed(0)
task, group, channels, kernel, size, batch, repeats = {task!r}, {group!r}, {channels!r}, {kernel!r}, {size!r}, \
    {batch!r}, {repeats!r}
from equivox.nets import EquivariantUNet, InvariantClassifier
if group == "so3_irreps_melba":
    from equivox.irreps.competitors import melba_group
    melba_group()
t0 = time.perf_counter()
if task == "segment":
    model = EquivariantUNet(3, 1, 2, channels=channels, strides=(2,) * (len(channels) - 1), group=group,
                            kernel_size=kernel)
else:
    model = InvariantClassifier(3, 1, 2, channels=channels, strides=(2,) * (len(channels) - 1), group=group,
                                kernel_size=kernel, hidden_features=(32,))
build_s = time.perf_counter() - t0
params = sum(p.numel() for p in model.parameters() if p.requires_grad)
x = torch.randn(batch, 1, size, size, size)
y = torch.randint(0, 2, (batch, size, size, size) if task == "segment" else (batch,))
opt = torch.optim.SGD(model.parameters(), lr=1e-3)
model.train()
def step():
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
""" + PEAK_RSS_CODE + r"""
rss0, hwm = rss_start()
step()
times = []
for _ in range(repeats):
    t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
rss1 = rss_peak(hwm)
times.sort()
print(json.dumps(dict(build_s=build_s, step_s=times[len(times) // 2], memory_mib=rss1 - rss0, params=params,
                      tensor_channels=[level.out_spec.size for level in model.encoder.levels])))
"""


def matched_channels(task: str, group: str, kind: str, reference_channels):
    """Fields per level of ``group`` at the ``octa`` reference's parameter count (and that count)."""
    import torch

    from equivox.baselines import count_parameters, match_channels
    from equivox.nets import EquivariantUNet, InvariantClassifier

    def build(g, ch, k=3):
        torch.manual_seed(0)
        strides = (2,) * (len(ch) - 1)
        if task == "segment":
            return EquivariantUNet(3, 1, 2, channels=tuple(ch), strides=strides, group=g, kernel_size=k)
        return InvariantClassifier(3, 1, 2, channels=tuple(ch), strides=strides, group=g, kernel_size=k,
                                   hidden_features=(32,))

    target = count_parameters(build("octa", reference_channels))
    if group == "octa":
        return tuple(reference_channels), 3, target
    if kind == "melba":
        from equivox.irreps.competitors import melba_group

        melba_group()
        return tuple(match_channels(target, reference_channels, lambda ch: build(group, ch, 5))), 5, target
    return tuple(match_channels(target, reference_channels, lambda ch: build(group, ch))), 3, target


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["classify", "segment"], choices=["classify", "segment"])
    p.add_argument("--channels", nargs="+", type=int, default=[4, 8], help="octa reference: fields per level")
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--name", default="irreps")
    args = p.parse_args(argv)
    if args.quick:
        args.tasks, args.size, args.rounds, args.repeats, args.channels = ["classify"], 8, 1, 1, [2, 4]
    plan = []
    for task in args.tasks:
        for name, group, kind in MODELS:
            if kind == "melba" and task != "segment":
                continue
            ch, k, target = matched_channels(task, group, kind, args.channels)
            plan.append(dict(task=task, name=name, group=group, channels=ch, kernel=k, target_params=target))
            print(f"  {task:9s} {name:30s} fields {ch} kernel {k}", flush=True)
    raw = {i: [] for i in range(len(plan))}
    for r in range(args.rounds):
        for i, m in enumerate(plan):
            out = run_isolated(CHILD.format(task=m["task"], group=m["group"], channels=tuple(m["channels"]),
                                            kernel=m["kernel"], size=args.size, batch=args.batch,
                                            repeats=args.repeats))
            raw[i].append(out)
            print(f"  round {r} {m['task']:9s} {m['name']:30s} build {out['build_s']:.2f}s step {out['step_s']:.3f}s "
                  f"mem {out['memory_mib']:.0f} MiB", flush=True)
    rows = []
    for i, m in enumerate(plan):
        plain = next(j for j, q in enumerate(plan) if q["task"] == m["task"] and q["group"] == "trivial")
        row = dict(m, params=raw[i][0]["params"], tensor_channels=raw[i][0]["tensor_channels"])
        for key in ("build_s", "step_s", "memory_mib"):
            vals = [o[key] for o in raw[i]]
            ratios = [o[key] / max(b[key], 1e-9) for o, b in zip(raw[i], raw[plain])]
            row[key] = statistics.median(vals)
            row[key + "_per_round"] = vals
            row[key.split("_")[0] + "_ratio_to_plain"] = statistics.median(ratios)
            row[key.split("_")[0] + "_ratio_interval"] = [min(ratios), max(ratios)]
        rows.append(row)
    cols = ["task", "name", "channels", "kernel", "params", "build_s", "build_ratio_to_plain", "step_s",
            "step_ratio_to_plain", "memory_mib", "memory_ratio_to_plain"]
    print(table(rows, cols))
    OUT.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": "irreps", "machine": machine_info(), "command": "python benchmarks/irreps.py "
               + " ".join(argv if argv is not None else sys.argv[1:]), "settings": vars(args), "rows": rows,
               "notes": "ratios: this model / the plain (trivial-group) model of the same task in the same round; "
                        "value: median over rounds; interval: min-max over rounds. Each model in a fresh process."}
    path = OUT / f"{args.name}.json"
    path.write_text(json.dumps(payload, indent=2))
    plot(rows, OUT / f"{args.name}.png", payload["machine"], args)
    print(f"wrote {path}")
    return rows


def plot(rows, path, machine, args) -> None:
    """One panel per measure (log scale, ratio to plain = 1), bars = median, whiskers = min-max over rounds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    names = [n for n, _, _ in MODELS]
    colors = dict(zip(names, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    for ax, (key, label) in zip(axes, [("build", "build time"), ("step", "training-step time"),
                                       ("memory", "peak memory of a step")]):
        width = 0.8 / len(names)
        for j, name in enumerate(names):
            xs, ys, lo, hi = [], [], [], []
            for t, task in enumerate(tasks):
                r = next((r for r in rows if r["task"] == task and r["name"] == name), None)
                if r is None:
                    continue
                v, (a, b) = r[f"{key}_ratio_to_plain"], r[f"{key}_ratio_interval"]
                xs.append(t + (j - (len(names) - 1) / 2) * width)
                ys.append(v)
                lo.append(v - a)
                hi.append(b - v)
            if xs:
                ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=name, color=colors[name])
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(tasks)))
        ax.set_xticklabels([f"{t} ({'U-Net' if t == 'segment' else 'classifier'})" for t in tasks])
        ax.set_ylabel(f"{label} / plain CNN's (log)")
        ax.set_title(label)
    axes[0].legend(fontsize=8)
    cpu = machine.get("processor") or "cpu"
    fig.suptitle(f"Matched parameters ({args.size}^3, batch {args.batch}); median and min-max over {args.rounds} "
                 f"rounds; {cpu}, {machine.get('cpu_count')} cores, torch {machine.get('torch')}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
