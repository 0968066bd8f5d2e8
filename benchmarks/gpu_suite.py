"""The GPU benchmark suite: one prepared run for the day a CUDA device is available (``benchmarks/gpu_suite.sh``).

Sections, in the order they run (each writes ``<out>/<section>.json`` as soon as it finishes; ``<out>/suite.json``
sums them up):

* ``train``: one training step (forward, cross-entropy, backward, SGD) of the default-width octa
  ``EquivariantMonaiUNet`` and of MONAI ``UNet`` of the same tensor width, fp32 and AMP (``torch.autocast``,
  bf16 by default), at 96^3 and 128^3: median step time, peak memory, voxels/s, ratio equivox / MONAI
  (target <= 1.1 with AMP), next to nnU-Net's published training throughput where one is given;
* ``inference``: eval forward of the exported equivox model (``model.export()``), the eager one and MONAI UNet of
  the same width, fp32 and AMP (target: exported <= 1.0x MONAI), with the export's max abs difference;
* ``profile``: where the AMP training step's time goes (``torch.profiler``): per model the top operators by self
  device time, their calls per step and share;
* ``compile``: graph breaks of ``torch.compile`` (``torch._dynamo.explain``), compile time, compiled vs eager
  forward time and max abs difference;
* ``amp_equivariance``: relative equivariance error over all grid-exact elements, fp32 and AMP;
* ``memory``: peak memory and step time with and without activation checkpointing (``benchmarks/memory.py``);
* ``construction``: default ``EquivariantUNet()`` + ``InvariantClassifier()`` per group from an empty cache in a
  fresh process (shipped bases; CPU work, recorded with the GPU machine's CPU), then warm.

nnU-Net reference: nnU-Net v2's ``documentation/benchmarking.md`` (github.com/MIC-DKFZ/nnUNet) publishes its
reference epoch times only in a linked spreadsheet, not as citable text, so no published figure is built in
(``null`` in the JSON). Give one with ``--nnunet-epoch-s S --nnunet-batch B --nnunet-patch D H W`` (an epoch is
250 iterations) and the suite reports its voxels/s, ``250 * B * D * H * W / S``, beside equivox's.

Usage::

    bash benchmarks/gpu_suite.sh                           # CUDA; about 5 minutes on one large GPU (limit 8)
    bash benchmarks/gpu_suite.sh --device cpu --tiny --out /tmp/smoke   # smoke run on CPU (seconds)

Exits with status 2 and a clear message when ``--device cuda`` and CUDA is not available.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

EPOCH_ITERATIONS = 250  # nnU-Net's iterations per epoch


def _sync(device):
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _median_time(fn, device, repeats, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def _autocast(device, amp, dtype):
    import contextlib

    import torch

    return torch.autocast(device_type=device, dtype=dtype) if amp else contextlib.nullcontext()


def _peak_reset(device):
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_mib(device):
    import torch

    return torch.cuda.max_memory_allocated() / 2 ** 20 if device == "cuda" else None


def _pair_specs(cfg):
    """(equivox EquivariantMonaiUNet spec, MONAI UNet of the same tensor width spec)."""
    from models import matched_specs

    specs = matched_specs(cfg.tiny, cfg.group)
    eq = next(s for s in specs if s["kind"] == "equivox" and s.get("layout") == "monai")
    monai = next(s for s in specs if s["kind"] == "monai_unet" and s.get("ref") == eq["name"])
    return eq, monai


def section_construction(cfg):
    """Cold (empty cache, shipped bases) and warm default-model builds per group, each in a fresh process."""
    if cfg.tiny:  # smoke: the same code in this process, trivial group only
        import equivox.nets as N

        t = time.perf_counter()
        N.EquivariantUNet(group="trivial", channels=(2, 2), strides=(2,))
        N.InvariantClassifier(group="trivial", channels=(2, 2), strides=(2,))
        return {"rows": [{"group": "trivial", "how": "in-process (smoke)", "defaults_s": time.perf_counter() - t}]}
    from construction import measure

    rows = []
    for g in cfg.groups:
        for r in measure(g, {}, escnn=False, timeout=300, wide=0, solved=False):
            r["defaults_s"] = r["group_s"] + r["unet_s"] + r["classifier_s"]
            rows.append(r)
    return {"rows": rows, "target": "defaults_s < 3 s cold"}


def _training_step(spec, cfg, size, amp):
    """``(step, info)``: one training step (forward, cross-entropy, backward, SGD) of the model ``spec`` builds, on
    a random batch ``(cfg.batch, 1, size, size, size)`` with binary labels; AMP with ``cfg.amp_dtype`` if ``amp``."""
    import torch

    from models import build

    torch.manual_seed(0)
    model, info = build(spec)
    model = model.to(cfg.device).train()
    x = torch.randn(cfg.batch, 1, size, size, size, device=cfg.device)
    y = torch.randint(0, 2, (cfg.batch, size, size, size), device=cfg.device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(cfg.device, enabled=amp and cfg.amp_dtype == torch.float16)

    def step():
        opt.zero_grad(set_to_none=True)
        with _autocast(cfg.device, amp, cfg.amp_dtype):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return step, info


def section_train(cfg):
    import torch

    eq_spec, monai_spec = _pair_specs(cfg)
    rows = []
    for size in cfg.sizes:
        for amp in (False, True):
            pair = {}
            for spec in (eq_spec, monai_spec):
                step, info = _training_step(spec, cfg, size, amp)
                _peak_reset(cfg.device)
                t = _median_time(step, cfg.device, cfg.repeats, cfg.warmup)
                vox = cfg.batch * size ** 3 / t
                row = {"model": info["name"], "tensor_channels": info["tensor_channels"], "params": info["params"],
                       "size": size, "batch": cfg.batch, "precision": str(cfg.amp_dtype).split(".")[-1] if amp
                       else "fp32", "step_s": t, "voxels_per_s": vox, "peak_mib": _peak_mib(cfg.device)}
                pair[spec["kind"]] = row
                rows.append(row)
                del step
                if cfg.device == "cuda":
                    torch.cuda.empty_cache()
            pair["equivox"]["ratio_vs_monai_same_width"] = pair["equivox"]["step_s"] / pair["monai_unet"]["step_s"]
    return {"rows": rows, "target": "equivox / MONAI UNet same width <= 1.1 with AMP at 96^3 and 128^3",
            "nnunet": cfg.nnunet}


def section_profile(cfg):
    """Where a training step's time goes (``torch.profiler``, 3 steps after warm-up, AMP, first size): per model the
    total and the top operators by self time on the device (self CPU time without CUDA), so the equivox / MONAI gap
    of the ``train`` section can be read operator by operator."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = cfg.device == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    out = {"size": cfg.sizes[0], "precision": str(cfg.amp_dtype).split(".")[-1], "steps": 3,
           "time": "self device time" if cuda else "self CPU time", "models": []}
    for spec in _pair_specs(cfg):
        step, info = _training_step(spec, cfg, cfg.sizes[0], amp=True)
        for _ in range(cfg.warmup):
            step()
        _sync(cfg.device)
        with profile(activities=activities) as prof:
            for _ in range(out["steps"]):
                step()
            _sync(cfg.device)
        events = prof.key_averages()

        def self_us(e):
            return getattr(e, "self_device_time_total", 0) if cuda else e.self_cpu_time_total

        total = sum(self_us(e) for e in events)
        top = sorted(events, key=self_us, reverse=True)[:15]
        out["models"].append({
            "model": info["name"], "total_ms_per_step": total / 1e3 / out["steps"],
            "operators": len(events), "calls_per_step": sum(e.count for e in events) / out["steps"],
            "top": [{"op": e.key, "ms_per_step": self_us(e) / 1e3 / out["steps"], "share": self_us(e) / max(total, 1),
                     "calls_per_step": e.count / out["steps"]} for e in top]})
        del step
    return out


def section_inference(cfg):
    import torch

    from models import build

    eq_spec, monai_spec = _pair_specs(cfg)
    torch.manual_seed(0)
    eq, info = build(eq_spec)
    with torch.no_grad():  # non-trivial batch-norm statistics, as after training
        eq.train()(torch.randn(2, 1, 16, 16, 16))
    eq.eval()
    exported = eq.export()
    monai, minfo = build(monai_spec)
    models = {"equivox eager": eq, "equivox exported": exported, "MONAI UNet same width": monai.eval()}
    rows = []
    for size in cfg.sizes:
        x = torch.randn(1, 1, size, size, size, device=cfg.device)
        for amp in (False, True):
            times, outs = {}, {}
            for name, m in models.items():
                m.to(cfg.device)
                with torch.no_grad(), _autocast(cfg.device, amp, cfg.amp_dtype):
                    times[name] = _median_time(lambda: m(x), cfg.device, cfg.repeats, cfg.warmup)
                    outs[name] = m(x).float()
            diff = float((outs["equivox exported"] - outs["equivox eager"]).abs().max())
            for name in models:
                rows.append({"model": name, "size": size, "precision": "amp" if amp else "fp32",
                             "forward_s": times[name], "voxels_per_s": size ** 3 / times[name],
                             "ratio_vs_monai_same_width": times[name] / times["MONAI UNet same width"],
                             "export_max_abs_diff": diff if name == "equivox exported" else None})
    return {"rows": rows, "target": "exported equivox / MONAI UNet same width <= 1.0"}


def section_compile(cfg):
    import torch

    from models import build

    eq_spec, _ = _pair_specs(cfg)
    torch.manual_seed(0)
    model, info = build(eq_spec)
    model = model.to(cfg.device).eval()
    size = cfg.sizes[0]
    x = torch.randn(1, 1, size, size, size, device=cfg.device)
    torch._dynamo.reset()
    with torch.no_grad():
        explanation = torch._dynamo.explain(model)(x)
        torch._dynamo.reset()
        compiled = torch.compile(model, backend=cfg.compile_backend)
        t = time.perf_counter()
        y = compiled(x)
        _sync(cfg.device)
        compile_s = time.perf_counter() - t
        ref = model(x)
        eager_s = _median_time(lambda: model(x), cfg.device, cfg.repeats, cfg.warmup)
        comp_s = _median_time(lambda: compiled(x), cfg.device, cfg.repeats, cfg.warmup)
    return {"model": info["name"], "backend": cfg.compile_backend, "size": size,
            "graph_breaks": explanation.graph_break_count, "graphs": explanation.graph_count,
            "break_reasons": [str(b.reason) for b in explanation.break_reasons][:10],
            "compile_s": compile_s, "eager_forward_s": eager_s, "compiled_forward_s": comp_s,
            "speedup": eager_s / comp_s, "max_abs_diff": float((y - ref).abs().max())}


def section_amp_equivariance(cfg):
    import torch

    from equivox.testing import equivariance_errors
    from models import build

    eq_spec, _ = _pair_specs(cfg)
    torch.manual_seed(0)
    model, _ = build(eq_spec)
    with torch.no_grad():
        model.train()(torch.randn(2, 1, 16, 16, 16))
    model = model.to(cfg.device).eval()
    size = 16 if cfg.tiny else 64
    x = torch.randn(1, 1, size, size, size, device=cfg.device)
    out = {}
    for amp in (False, True):
        with _autocast(cfg.device, amp, cfg.amp_dtype):
            errs = equivariance_errors(model, x)
        out["amp" if amp else "fp32"] = {"max_relative": max(e.relative for e in errs),
                                         "elements": len(errs)}
    out["size"] = size
    out["amp_dtype"] = str(cfg.amp_dtype).split(".")[-1]
    return out


def section_memory(cfg):
    import memory

    if cfg.tiny:  # smoke: one size in fresh processes is the same code path; keep it to 16^3
        rows = memory.run([16], cfg.device, "c4_axial", (1, 1), (2,), "unet", 1, 1, 0, 300)
    else:
        rows = memory.run(cfg.sizes, cfg.device, cfg.group, (4, 8, 16), (2, 2), "unet", cfg.batch, 2, 0, 600)
    return {"rows": rows}


# the quick sections first; construction (a fresh process per group and build, mostly import time) last
SECTIONS = {"train": section_train, "inference": section_inference, "profile": section_profile,
            "compile": section_compile, "amp_equivariance": section_amp_equivariance, "memory": section_memory,
            "construction": section_construction}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--tiny", action="store_true", help="smoke run: tiny models, 16^3, 1 repeat (seconds on CPU)")
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS))
    p.add_argument("--sizes", nargs="+", type=int, default=None, help="default 96 128 (16 with --tiny)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--group", default="octa")
    p.add_argument("--groups", nargs="+", default=["octa", "full_octa", "ico", "so3", "o3", "d4_axial"],
                   help="construction section")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5, 1 with --tiny)")
    p.add_argument("--amp-dtype", default="bf16", choices=["bf16", "fp16"])
    p.add_argument("--compile-backend", default=None, help="default inductor on CUDA, aot_eager on CPU")
    p.add_argument("--budget-s", type=float, default=450, help="skip sections that would start after this")
    p.add_argument("--nnunet-epoch-s", type=float, default=None, help="a published nnU-Net epoch time (s)")
    p.add_argument("--nnunet-batch", type=int, default=None)
    p.add_argument("--nnunet-patch", nargs=3, type=int, default=None)
    p.add_argument("--nnunet-source", default=None, help="where the nnU-Net figure comes from (cited in the JSON)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "gpu")
    cfg = p.parse_args(argv)

    import torch

    if cfg.device == "cuda" and not torch.cuda.is_available():
        print("gpu_suite: CUDA is not available on this machine (torch.cuda.is_available() is False). This suite "
              "measures GPU figures; run it where a CUDA device is lent, or use --device cpu --tiny for a smoke "
              "run.", file=sys.stderr)
        return 2
    cfg.tiny = bool(cfg.tiny)
    cfg.sizes = cfg.sizes or ([16] if cfg.tiny else [96, 128])
    cfg.repeats = cfg.repeats or (1 if cfg.tiny else 5)
    cfg.warmup = 1 if cfg.tiny else 2
    cfg.batch = 1 if cfg.tiny else cfg.batch
    cfg.amp_dtype = torch.bfloat16 if cfg.amp_dtype == "bf16" else torch.float16
    cfg.compile_backend = cfg.compile_backend or ("inductor" if cfg.device == "cuda" else "aot_eager")
    nn_vox = None
    if cfg.nnunet_epoch_s and cfg.nnunet_batch and cfg.nnunet_patch:
        d, h, w = cfg.nnunet_patch
        nn_vox = EPOCH_ITERATIONS * cfg.nnunet_batch * d * h * w / cfg.nnunet_epoch_s
    cfg.nnunet = {"published_training_voxels_per_s": nn_vox, "epoch_s": cfg.nnunet_epoch_s,
                  "batch": cfg.nnunet_batch, "patch": cfg.nnunet_patch,
                  "source": cfg.nnunet_source or ("not available: nnU-Net v2 documentation/benchmarking.md "
                                                  "(github.com/MIC-DKFZ/nnUNet) gives its reference epoch times "
                                                  "only in a linked spreadsheet")}
    from bench_common import machine_info

    cfg.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    summary = {"machine": machine_info(), "device": cfg.device, "tiny": cfg.tiny, "sizes": cfg.sizes,
               "batch": cfg.batch, "amp_dtype": str(cfg.amp_dtype), "nnunet": cfg.nnunet, "sections": {}}
    failed = False
    for n, name in enumerate(cfg.sections, 1):
        elapsed = time.perf_counter() - t0
        if elapsed > cfg.budget_s:
            summary["sections"][name] = {"status": f"skipped: {elapsed:.0f} s > budget {cfg.budget_s:.0f} s"}
            print(f"[{n}/{len(cfg.sections)}] {name}: skipped (time budget)", flush=True)
            continue
        print(f"[{n}/{len(cfg.sections)}] {name} ...", flush=True)
        ts = time.perf_counter()
        try:
            result = SECTIONS[name](cfg)
            status = "ok"
        except Exception as err:  # record and go on: one broken section must not lose the others' figures
            result = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-4000:]}
            status = "failed"
            failed = True
            print(result["traceback"], file=sys.stderr)
        secs = time.perf_counter() - ts
        (cfg.out / f"{name}.json").write_text(json.dumps({"section": name, "status": status, "seconds": secs,
                                                          "machine": summary["machine"], **result}, indent=2,
                                                         default=str))
        summary["sections"][name] = {"status": status, "seconds": round(secs, 2)}
        print(f"    {status} in {secs:.1f} s", flush=True)
    summary["total_s"] = time.perf_counter() - t0
    (cfg.out / "suite.json").write_text(json.dumps(summary, indent=2, default=str))
    _plots(cfg.out)
    print(f"wrote {cfg.out}/suite.json ({summary['total_s']:.0f} s)")
    return 1 if failed else 0


def _plots(out: Path):
    """Training-step and inference bars (equivox vs MONAI UNet of the same width) from the section JSON files."""
    from bench_common import bar_plot

    for name, key in (("train", "step_s"), ("inference", "forward_s")):
        path = out / f"{name}.json"
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        rows = data.get("rows") or []
        if not rows:
            continue
        labels = list(dict.fromkeys(f"{r['size']}^3 {r['precision']}" for r in rows))
        models = list(dict.fromkeys(r["model"] for r in rows))
        series = {m: [next((r[key] for r in rows if r["model"] == m and f"{r['size']}^3 {r['precision']}" == lab),
                           None) for lab in labels] for m in models}
        bar_plot(out / f"{name}.png", labels, series, key.replace("_", " "), f"{name} ({data['machine'].get('cuda')})")


if __name__ == "__main__":
    sys.exit(main())
