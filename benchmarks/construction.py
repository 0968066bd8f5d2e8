"""Construction time of the default models per group: equivox cold / warm cache vs building the same layers with
plain escnn (``R3Conv`` + ``InnerBatchNorm``, escnn's own init and Clebsch-Gordan solver).

Every measurement runs in a fresh Python process (so nothing is shared in memory):

* ``equivox cold``: ``EQUIVOX_CACHE_DIR`` = a new empty folder (no kernel bases, no escnn joblib caches); the
  kernel bases and group tables shipped with equivox (``equivox/_bases``, see ``scripts/build_shipped_bases.py``)
  are used: what a fresh machine pays;
* ``equivox cold, solved``: another empty folder with ``EQUIVOX_NO_SHIPPED=1``: everything solved by escnn (what a
  fresh machine paid before the shipped bases, and what any non-default configuration pays once);
* ``equivox warm``: the first folder again (whatever the cold run cached);
* with ``--escnn``: ``escnn cold`` builds the same layers as ``R3Conv`` s from another empty folder with escnn's own
  solvers (equivox's faster Clebsch-Gordan solver switched off), ``escnn warm`` repeats that in the same folder
  (escnn's joblib caches warm; escnn has no cache for the sampled kernel basis, so this is what every escnn run
  costs).

Usage::

    python benchmarks/construction.py                    # octa, so3
    python benchmarks/construction.py --groups all --wide 0 --name construction_groups   # every registered group
    python benchmarks/construction.py --groups octa full_octa ico so3 o3
    python benchmarks/construction.py --groups octa full_octa --escnn
    python benchmarks/construction.py --quick            # smoke run: trivial group, tiny model

Prints a table and writes ``benchmarks/results/construction.json`` (+ ``construction.png``).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import RESULTS, bar_plot, run_isolated, save, table  # noqa: E402

EQUIVOX_CODE = """
import json, time
t0 = time.perf_counter()
import equivox.nets as N
from equivox.groups import get_group
t1 = time.perf_counter()
c1 = time.process_time()
get_group({group!r})
t2 = time.perf_counter()
N.EquivariantUNet(group={group!r}, **{kwargs!r})
t3 = time.perf_counter()
N.InvariantClassifier(group={group!r}, **{kwargs!r})
t4 = time.perf_counter()
c4 = time.process_time()
N.EquivariantMonaiUNet(group={group!r}, **{kwargs!r})
t5 = time.perf_counter()
print(json.dumps(dict(import_s=t1 - t0, group_s=t2 - t1, unet_s=t3 - t2, classifier_s=t4 - t3, monai_unet_s=t5 - t4,
                      defaults_cpu_s=c4 - c1)))
"""

# the U-Net's convolutions (same field types) built with plain escnn: R3Conv (generalized He init) + InnerBatchNorm
ESCNN_CODE = """
import json, time
t0 = time.perf_counter()
from equivox._escnn import enn, quiet   # escnn with its joblib caches redirected to EQUIVOX_CACHE_DIR
from equivox import _escnn, _escnn_cg
import escnn.group._clebsh_gordan as cg
cg._clebsh_gordan_tensor = _escnn._memory.cache(_escnn_cg._FALLBACK)  # escnn's own solver, as plain escnn
from equivox.groups import get_group
t1 = time.perf_counter()
g = get_group({group!r})
t2 = time.perf_counter()
ch = {channels!r}
k = {kernel_size!r}
def hid(n): return g.hidden_type(n)
def sc(n): return g.scalar_type(n)
layers = []
with quiet():
    prev = sc(1)
    for c in ch:                                  # encoder: 2 convs per level
        layers += [enn.R3Conv(prev, hid(c), k, padding=k // 2), enn.R3Conv(hid(c), hid(c), k, padding=k // 2)]
        prev = hid(c)
    for i in range(len(ch) - 2, -1, -1):          # decoder: concat skip, 2 convs
        layers += [enn.R3Conv(hid(ch[i + 1] + ch[i]), hid(ch[i]), k, padding=k // 2),
                   enn.R3Conv(hid(ch[i]), hid(ch[i]), k, padding=k // 2)]
    layers.append(enn.R3Conv(hid(ch[0]), sc(2), 1))
    if g.kind == "regular":
        layers += [enn.InnerBatchNorm(l.out_type) for l in layers[:-1]]
t3 = time.perf_counter()
print(json.dumps(dict(import_s=t1 - t0, group_s=t2 - t1, unet_s=t3 - t2)))
"""


WIDE_CODE = """
import json, time
from equivox._escnn import enn, quiet
from equivox.groups import get_group
from equivox.nn import EquivariantConv3d, FieldSpec
g = get_group({group!r})
n = {fields!r}
EquivariantConv3d(FieldSpec.hidden(g.name, 1), FieldSpec.hidden(g.name, 1), 3)  # basis into memory
t0 = time.perf_counter()
EquivariantConv3d(FieldSpec.hidden(g.name, n), FieldSpec.hidden(g.name, n), 3)
t1 = time.perf_counter()
with quiet():
    conv = enn.R3Conv(g.hidden_type(n), g.hidden_type(n), 3, padding=1, initialize=False)
    t2 = time.perf_counter()
    enn.init.generalized_he_init(conv.weights.data, conv.basisexpansion)
t3 = time.perf_counter()
print(json.dumps(dict(fields=n, channels=n * g.field_size, equivox_s=t1 - t0, escnn_build_s=t2 - t1,
                      escnn_he_init_s=t3 - t2)))
"""


def measure(group: str, kwargs: dict, escnn: bool, timeout: float, wide: int = 0, solved: bool = True):
    rows = []
    with tempfile.TemporaryDirectory() as cold_dir, tempfile.TemporaryDirectory() as cold2, \
            tempfile.TemporaryDirectory() as cold3:
        env = {"EQUIVOX_CACHE_DIR": cold_dir, "EQUIVOX_NO_SHIPPED": ""}
        code = EQUIVOX_CODE.format(group=group, kwargs=kwargs)
        runs = [("equivox cold", env), ("equivox warm", env)]
        if solved:
            runs.append(("equivox cold, solved", {"EQUIVOX_CACHE_DIR": cold3, "EQUIVOX_NO_SHIPPED": "1"}))
        for label, e in runs:
            r = run_isolated(code, e, timeout)
            rows.append({"group": group, "how": label, **r})
            print(f"  {group:10s} {label:21s} group {r['group_s']:.2f}s + unet {r['unet_s']:.2f}s + classifier "
                  f"{r['classifier_s']:.2f}s (import {r['import_s']:.1f}s)", flush=True)
        channels = kwargs.get("channels", (4, 8, 16))
        escnn_code = ESCNN_CODE.format(group=group, channels=tuple(channels), kernel_size=3)
        if wide:
            r = run_isolated(WIDE_CODE.format(group=group, fields=wide), env, timeout)
            rows.append({"group": group, "how": f"wide layer {r['channels']}->{r['channels']} ch", **r})
            print(f"  {group:9s} wide layer {r['channels']} ch: equivox {r['equivox_s']:.2f}s, escnn R3Conv "
                  f"{r['escnn_build_s']:.2f}s + generalized_he_init {r['escnn_he_init_s']:.2f}s", flush=True)
        runs = [("escnn cold", {"EQUIVOX_CACHE_DIR": cold2}), ("escnn warm", {"EQUIVOX_CACHE_DIR": cold2})]
        for label, e in runs if escnn else []:
            r = run_isolated(escnn_code, e, timeout)
            rows.append({"group": group, "how": label, **r})
            print(f"  {group:9s} {label:16s} unet {r['unet_s']:.2f}s  (group {r['group_s']:.2f}s)", flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--groups", nargs="+", default=["octa", "so3"], help="group names, or 'all' (every registered)")
    p.add_argument("--no-solved", action="store_true", help="skip the cold runs without shipped bases")
    p.add_argument("--escnn", action="store_true", help="also build the same layers with plain escnn, cold and warm")
    p.add_argument("--quick", action="store_true", help="smoke run: trivial group, channels=(2, 2)")
    p.add_argument("--wide", type=int, default=16, help="also time one wide hidden->hidden layer of this many "
                   "fields (warm cache): equivox init vs escnn R3Conv + generalized_he_init (0: skip)")
    p.add_argument("--wide-only", action="store_true", help="only the wide-layer timing, in the current cache")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per subprocess")
    p.add_argument("--name", default=None, help="results file name (default construction / construction_quick)")
    args = p.parse_args(argv)
    groups = ["trivial"] if args.quick else args.groups
    if groups == ["all"]:
        from equivox.groups import available_groups

        groups = available_groups()
    kwargs = {"channels": (2, 2), "strides": (2,)} if args.quick else {}
    rows = []
    if args.wide_only:
        wide_rows = []
        for g in groups:
            r = run_isolated(WIDE_CODE.format(group=g, fields=args.wide), {}, args.timeout)
            wide_rows.append({"group": g, **r})
        print(table(wide_rows, ["group", "channels", "equivox_s", "escnn_build_s", "escnn_he_init_s"]))
        path = save(args.name or "construction_wide", {"notes": "warm cache, fresh process per group",
                                                      "wide_layer": wide_rows})
        print(f"wrote {path}")
        return wide_rows
    for g in groups:
        print(f"[{groups.index(g) + 1}/{len(groups)}] {g}", flush=True)
        rows += measure(g, kwargs, args.escnn, args.timeout, 0 if args.quick else args.wide,
                        solved=not args.no_solved)
    wide_rows = [r for r in rows if "fields" in r]
    rows = [r for r in rows if "fields" not in r]
    for r in rows:
        r["build_total_s"] = r["group_s"] + r["unet_s"]
        if "classifier_s" in r:
            r["defaults_s"] = r["group_s"] + r["unet_s"] + r["classifier_s"]
    print(table(rows, ["group", "how", "import_s", "group_s", "unet_s", "classifier_s", "monai_unet_s",
                       "build_total_s", "defaults_s", "defaults_cpu_s"]))
    if wide_rows:
        print(table(wide_rows, ["group", "channels", "equivox_s", "escnn_build_s", "escnn_he_init_s"]))
    name = args.name or ("construction_quick" if args.quick else "construction")
    path = save(name, {"model_kwargs": {k: list(v) for k, v in kwargs.items()} or "defaults",
                       "notes": "each row a fresh process; build_total_s = group_s + unet_s, defaults_s = group_s + "
                                "unet_s + classifier_s (default EquivariantUNet() and InvariantClassifier(); both "
                                "exclude imports), defaults_cpu_s the same span in process CPU time (less sensitive "
                                "to other jobs on a shared machine); 'equivox cold' uses the shipped bases, "
                                "'cold, solved' does not",
                       "rows": rows, "wide_layer": wide_rows})
    labels = sorted({r["group"] for r in rows}, key=groups.index)
    hows = list(dict.fromkeys(r["how"] for r in rows))
    series = {h: [next((r.get("defaults_s", r["build_total_s"]) for r in rows if r["group"] == g and r["how"] == h),
                       None) for g in labels]
              for h in hows}
    bar_plot(RESULTS / f"{name}.png", labels, series, "seconds (group + default U-Net + classifier)",
             "Default EquivariantUNet construction", log=True)
    print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    main()
