"""Regenerate equivox's shipped, pre-solved kernel bases and group tables (``src/equivox/_bases/``).

For every selected group this builds the default ``EquivariantUNet()`` and ``InvariantClassifier()`` in a fresh
process from an empty cache (``EQUIVOX_NO_SHIPPED=1``, so everything is solved by escnn), then

* packs every equivox cache entry that build wrote (kernel bases, regular representations, Fourier sampling
  matrices) with :func:`equivox.cache.pack_payload` (orbit or irreps block form, checked to reproduce the solved
  tensors to 1e-6 of their largest value), skipping entries larger than ``--max-entry-mb`` packed, into one
  lzma-compressed file per group, ``_bases/<group>.pt.xz``;
* collects escnn's joblib entries of the group-construction functions (:data:`equivox._escnn_tables.JOBLIB_FUNCTIONS`)
  into ``_bases/escnn_joblib.tar.xz``;
* writes ``_bases/manifest.json``: escnn / joblib / torch versions, SHA-256 of every file, digest and full key of
  every entry (what :func:`equivox.cache.shipped_tensors` checks).

Usage (minutes: the big groups are solved from scratch)::

    python scripts/build_shipped_bases.py                      # every registered group
    python scripts/build_shipped_bases.py --groups octa ico    # only those (other groups' files are kept)

Rerun it after upgrading escnn (the manifest's escnn version must match the installed one, else nothing shipped
is used) or after changing how equivox keys or solves its bases.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

BUILD_CODE = """
import sys
from equivox.groups import get_group
import equivox.nets as N
g = get_group({group!r})
g.grid_elements
N.EquivariantUNet(group={group!r})
N.InvariantClassifier(group={group!r})
"""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_group(group: str, cache: Path, timeout: float) -> float:
    """Solve the default models of ``group`` into the empty cache folder ``cache``; return the seconds taken."""
    env = {**os.environ, "EQUIVOX_CACHE_DIR": str(cache), "EQUIVOX_NO_SHIPPED": "1", "PYTHONPATH": str(ROOT / "src")}
    env.pop("EQUIVOX_NO_CACHE", None)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", BUILD_CODE.format(group=group)], env=env, check=True, timeout=timeout)
    return time.perf_counter() - t0


def change_of_basis_for(group: str, key: str):
    """``{"basis": (Q_out, Q_out_inv, Q_in, Q_in_inv)}`` for a kernel-basis key of ``group``, else None."""
    if not key.startswith("basis|"):
        return None
    from equivox.groups import get_group

    parts = dict(p.split("=", 1) for p in key.split("|")[1:])
    reps = get_group(group).gspace.fibergroup.representations
    if parts.get("in") not in reps or parts.get("out") not in reps:
        return None
    ri, ro = reps[parts["in"]], reps[parts["out"]]
    return {"basis": (ro.change_of_basis, ro.change_of_basis_inv, ri.change_of_basis, ri.change_of_basis_inv)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--groups", nargs="+", default=None, help="default: every registered group")
    p.add_argument("--skip", nargs="*", default=[], help="groups not to ship")
    p.add_argument("--max-entry-mb", type=float, default=4.0, help="skip entries larger than this, packed")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per group build")
    p.add_argument("--out", type=Path, default=ROOT / "src" / "equivox" / "_bases")
    args = p.parse_args(argv)

    os.environ["EQUIVOX_NO_SHIPPED"] = "1"
    work = Path(tempfile.mkdtemp(prefix="equivox-ship-"))
    os.environ["EQUIVOX_CACHE_DIR"] = str(work / "parent")  # this process's own (change-of-basis) builds
    import joblib

    from equivox import cache
    from equivox._escnn import ESCNN_VERSION
    from equivox._escnn_tables import JOBLIB_FUNCTIONS
    from equivox.groups import available_groups

    groups = [g for g in (args.groups or available_groups()) if g not in args.skip]
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "manifest.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    if old.get("escnn") != ESCNN_VERSION or old.get("format") != cache._SHIPPED_FORMAT:
        old = {}
    manifest = {"format": cache._SHIPPED_FORMAT, "escnn": ESCNN_VERSION, "torch": torch.__version__,
                "files": {}, "entries": {}, "groups": {}}
    for name, meta in old.get("entries", {}).items():  # keep other groups' files
        if meta["group"] not in groups and (args.out / meta["file"]).is_file():
            manifest["entries"][name] = meta
            manifest["files"][meta["file"]] = old["files"][meta["file"]]
            manifest["groups"][meta["group"]] = old["groups"][meta["group"]]
    joblib_members = {}
    old_tar = args.out / "escnn_joblib.tar.xz"
    if old.get("joblib") and old_tar.is_file():
        with tarfile.open(fileobj=io.BytesIO(lzma.decompress(old_tar.read_bytes())), mode="r:") as tar:
            for m in tar.getmembers():
                if m.isfile():
                    joblib_members[m.name] = tar.extractfile(m).read()

    for n, group in enumerate(groups, 1):
        cdir = work / group
        print(f"[{n}/{len(groups)}] {group}: solving the default models ...", flush=True)
        secs = build_group(group, cdir, args.timeout)
        entries, skipped = {}, []
        for f in sorted((cdir / "tensors").glob("*.pt")):
            entry = torch.load(f, map_location="cpu", weights_only=True)
            key = entry["key"]
            name = hashlib.sha256(key.encode()).hexdigest()[:40]
            if name in manifest["entries"]:  # already shipped with another group
                continue
            packed = cache.pack_payload(entry["payload"], change_of_basis=change_of_basis_for(group, key))
            size = sum(cache._nbytes(v) for v in packed.values())
            if size > args.max_entry_mb * 1e6:
                skipped.append((key, size))
                continue
            back = cache.unpack_payload(packed)
            for k, t in entry["payload"].items():  # the packed entry reproduces the solved one
                scale = float(t.abs().max()) if t.numel() else 0.0
                err = float((back[k] - t).abs().max()) if t.numel() else 0.0
                assert back[k].shape == t.shape and err <= 1e-6 * scale + 1e-12, (key, k, err, scale)
            entries[name] = {"key": key, "packed": packed}
            manifest["entries"][name] = {"key": key, "file": f"{group}.pt.xz", "group": group,
                                         "digest": cache._packed_digest(packed), "packed_bytes": size}
        buf = io.BytesIO()
        torch.save({"format": cache._SHIPPED_FORMAT, "entries": entries}, buf)
        data = lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME)
        (args.out / f"{group}.pt.xz").write_bytes(data)
        manifest["files"][f"{group}.pt.xz"] = {"sha256": _sha(data), "bytes": len(data)}
        manifest["groups"][group] = {"entries": len(entries), "skipped": [k for k, _ in skipped],
                                     "bytes": len(data), "solve_s": round(secs, 1)}
        jroot = cdir / f"escnn-{ESCNN_VERSION}" / "joblib"
        for func in JOBLIB_FUNCTIONS:
            for path in sorted((jroot / func).rglob("*")) if (jroot / func).is_dir() else []:
                rel = str(path.relative_to(jroot))
                if path.is_file() and rel not in joblib_members and not path.name.endswith(".tmp"):
                    joblib_members[rel] = path.read_bytes()
        print(f"    solved in {secs:.0f}s; shipped {len(entries)} entries, {len(data) / 1e6:.2f} MB"
              + (f"; skipped {len(skipped)} (too large: " + ", ".join(f"{s / 1e6:.0f} MB" for _, s in skipped) + ")"
                 if skipped else ""), flush=True)

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:") as tar:
        for rel in sorted(joblib_members):
            info = tarfile.TarInfo(rel)
            info.size = len(joblib_members[rel])
            info.mtime = 0
            tar.addfile(info, io.BytesIO(joblib_members[rel]))
    data = lzma.compress(buf.getvalue(), preset=9)
    old_tar.write_bytes(data)
    manifest["joblib"] = {"file": old_tar.name, "sha256": _sha(data), "escnn": ESCNN_VERSION,
                          "joblib": joblib.__version__, "members": {k: _sha(v) for k, v in sorted(joblib_members.items())}}
    manifest["files"][old_tar.name] = {"sha256": _sha(data), "bytes": len(data)}
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    total = sum(f["bytes"] for f in manifest["files"].values())
    print(f"wrote {manifest_path}: {len(manifest['entries'])} entries, {len(manifest['files'])} files, "
          f"{total / 1e6:.2f} MB in all")


if __name__ == "__main__":
    main()
