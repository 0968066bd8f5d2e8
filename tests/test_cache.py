"""equivox.cache: entries are keyed, validated, rebuilt when corrupt or stale, never trusted blindly; the shipped,
pre-solved kernel bases and group tables (``equivox/_bases``) match what escnn solves, and any corrupted, stale or
mismatched piece is rejected with a warning, then solved as if nothing had been shipped."""
import hashlib
import json
import lzma
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
import torch

from equivox import cache
from equivox.cache import CacheWarning, cached_tensors, pack_payload, shipped_tensors, unpack_payload


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EQUIVOX_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("EQUIVOX_NO_CACHE", raising=False)
    return tmp_path


class Builder:
    """Counts calls; returns a fixed dictionary of tensors."""

    def __init__(self, value=1.0):
        self.calls = 0
        self.value = value

    def __call__(self):
        self.calls += 1
        return {"a": torch.arange(1000, dtype=torch.float32) * self.value, "b": torch.eye(3)}


def _only_entry(root):
    files = list((root / "tensors").glob("*.pt"))
    assert len(files) == 1, files
    return files[0]


def test_second_call_reads_the_entry(tmp_cache):
    build = Builder()
    first = cached_tensors("k1", build)
    second = cached_tensors("k1", build)
    assert build.calls == 1
    assert torch.equal(first["a"], second["a"]) and torch.equal(first["b"], second["b"])


def test_key_change_is_a_miss(tmp_cache):
    build = Builder()
    cached_tensors("basis|escnn=1.0.11|k=3", build)
    cached_tensors("basis|escnn=1.0.12|k=3", build)
    cached_tensors("basis|escnn=1.0.11|k=5", build)
    assert build.calls == 3


@pytest.mark.parametrize("damage", ["truncate", "flip_bytes", "empty", "garbage"])
def test_damaged_entry_is_rebuilt_not_trusted(tmp_cache, damage, caplog):
    build = Builder()
    good = cached_tensors("key", build)
    path = _only_entry(tmp_cache)
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip_bytes":  # alter payload bytes inside the file (the archive stays readable)
        data = bytearray(raw)
        start = raw.find(bytes(torch.arange(1000, dtype=torch.float32)[500:510].numpy().tobytes()))
        assert start > 0
        data[start:start + 8] = b"\x00\x00\x80\x7f" * 2
        path.write_bytes(bytes(data))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.write_bytes(b"not a torch file" * 10)
    rebuilt = cached_tensors("key", build)
    assert build.calls == 2
    assert torch.equal(rebuilt["a"], good["a"])
    assert "rebuilding" in caplog.text
    # the rebuilt entry is valid again
    cached_tensors("key", build)
    assert build.calls == 2


def test_entry_with_another_key_at_the_same_path_is_stale(tmp_cache, monkeypatch):
    build_a, build_b = Builder(1.0), Builder(2.0)
    cached_tensors("key-a", build_a)
    path_a = cache._entry_path("key-a")
    # simulate a hash collision / an entry written for another key: point key-b at key-a's file
    monkeypatch.setattr(cache, "_entry_path", lambda key: path_a)
    out = cached_tensors("key-b", build_b)
    assert build_b.calls == 1
    assert torch.equal(out["a"], torch.arange(1000, dtype=torch.float32) * 2.0)


def test_no_cache_env_always_builds_and_writes_nothing(tmp_cache, monkeypatch):
    monkeypatch.setenv("EQUIVOX_NO_CACHE", "1")
    build = Builder()
    cached_tensors("key", build)
    cached_tensors("key", build)
    assert build.calls == 2
    assert not (tmp_cache / "tensors").exists() or not list((tmp_cache / "tensors").glob("*"))


def test_unwritable_cache_still_returns_the_result(tmp_cache, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("read-only file system")

    monkeypatch.setattr(cache.tempfile, "mkstemp", fail)
    build = Builder()
    out = cached_tensors("key", build)
    assert build.calls == 1 and out["a"].shape == (1000,)


def test_clear_cache_removes_entries(tmp_cache):
    cached_tensors("key", Builder())
    assert cache.clear_cache() >= 1
    build = Builder()
    cached_tensors("key", build)
    assert build.calls == 1


def test_basis_key_names_everything_the_basis_depends_on():
    from equivox._escnn import ESCNN_VERSION
    from equivox.groups import get_group
    from equivox.nn.conv import _pair_key

    g = get_group("trivial")
    r = g.gspace.trivial_repr
    key = _pair_key(g.name, r, r, 3)
    for part in (f"escnn={ESCNN_VERSION}", "group=trivial", f"in={r.name}", f"out={r.name}", "k=3"):
        assert part in key
    assert _pair_key(g.name, r, r, 5) != key
    assert _pair_key("octa", r, r, 3) != key


ROOT = Path(__file__).resolve().parents[1]


def _env(**extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONWARNINGS": "default", **extra}
    env.pop("EQUIVOX_NO_CACHE", None)
    return env


def test_import_and_build_with_an_unusable_cache_folder(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("a regular file: nothing can be created below it")
    code = textwrap.dedent("""
        import torch, equivox
        from equivox.nn import EquivariantConv3d, FieldSpec
        conv = EquivariantConv3d(FieldSpec.scalar("trivial", 1), FieldSpec.hidden("trivial", 2))
        print("OUT", tuple(conv(torch.randn(1, 1, 5, 5, 5)).shape))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=_env(EQUIVOX_CACHE_DIR=str(blocker / "cache")), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "OUT (1, 2, 5, 5, 5)" in proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if "CacheWarning" in ln]
    assert len(lines) == 1 and str(blocker / "cache") in lines[0], proc.stderr[-2000:]
    assert blocker.read_text().startswith("a regular file")


def test_kernel_cache_read_and_write_failures_warn_once(tmp_path, monkeypatch, fresh_warnings):
    monkeypatch.setenv("EQUIVOX_CACHE_DIR", str(tmp_path))
    calls = []

    def build():
        calls.append(1)
        return {"a": torch.arange(5.0)}

    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.warns(cache.CacheWarning, match="could not write") as rec:
        for key in ("k1", "k2", "k3"):
            assert torch.equal(cache.cached_tensors(key, build)["a"], torch.arange(5.0))
    assert len([w for w in rec if issubclass(w.category, cache.CacheWarning)]) == 1 and len(calls) == 3
    assert not list((tmp_path / "tensors").iterdir())  # no partial entry, no temporary file left
    monkeypatch.setattr(torch, "save", real_save)
    cache.cached_tensors("k1", build)  # now written
    monkeypatch.setattr(Path, "read_bytes", lambda self: (_ for _ in ()).throw(PermissionError(13, "denied")))
    with pytest.warns(cache.CacheWarning, match="cannot read"):
        assert torch.equal(cache.cached_tensors("k1", build)["a"], torch.arange(5.0))
    assert len(calls) == 5


def test_two_processes_build_the_same_basis_into_one_empty_cache(tmp_path, monkeypatch, fork_child):
    from equivox.groups import get_group
    from equivox.nn import conv

    root = tmp_path / "cache"
    monkeypatch.setenv("EQUIVOX_CACHE_DIR", str(root))  # empty: the kernel basis is new to it
    monkeypatch.setenv("EQUIVOX_NO_SHIPPED", "1")  # ... and not read from equivox's shipped bases: both solve it
    go = tmp_path / "go"
    r = get_group("octa").gspace.regular_repr

    def child(i):
        def run():
            conv._PAIR_MEMO.clear()  # no in-process shortcut: read or build through the disk cache
            (tmp_path / f"ready{i}").touch()
            while not go.exists():
                time.sleep(0.005)
            b = conv.pair_basis("octa", r, r, 3)["basis"]
            (tmp_path / f"sum{i}").write_text(repr(float(b.double().abs().sum())))
        return run

    pids = [fork_child(child(i)) for i in range(2)]
    deadline = time.time() + 60
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)) and time.time() < deadline:
        time.sleep(0.01)
    go.touch()  # both start building at the same moment
    codes = [os.waitpid(pid, 0)[1] for pid in pids]
    assert codes == [0, 0]
    # float64 sums of the same tensor: equal up to the order of the reduction (thread counts differ between processes)
    assert float((tmp_path / "sum0").read_text()) == pytest.approx(float((tmp_path / "sum1").read_text()), rel=1e-12)
    entries = list((root / "tensors").iterdir())
    assert all(e.suffix == ".pt" for e in entries), entries  # no temporary files
    # one basis entry (escnn's regular representations of groups built on the way are cached beside it)
    basis = [e for e in entries if torch.load(e, map_location="cpu", weights_only=True)["key"].startswith("basis|")]
    assert len(basis) == 1, entries
    raw = torch.load(basis[0], map_location="cpu", weights_only=True)
    assert raw["digest"] == cache._digest(raw["payload"])  # complete and valid
    assert float(raw["payload"]["basis"].double().abs().sum()) == pytest.approx(float((tmp_path / "sum0").read_text()),
                                                                               rel=1e-12)


# ------------------------------------------------------------------ shipped bases and tables

MANIFEST = json.loads((cache.shipped_dir() / "manifest.json").read_text())


def _entry(group, prefix):
    for name, meta in MANIFEST["entries"].items():
        if meta["group"] == group and meta["key"].startswith(prefix):
            return name, meta
    raise LookupError((group, prefix))


def test_every_registered_group_but_full_ico_is_shipped_and_small():
    from equivox.groups import available_groups

    from equivox.groups import GROUPS
    from equivox.irreps import IrrepsFields

    # irreps fields' bases are closed-form e3nn expressions built in milliseconds: nothing to ship
    missing = [g for g in available_groups() if g != "full_ico" and g not in MANIFEST["groups"]
               and not isinstance(GROUPS[g].fields, IrrepsFields)]
    assert not missing, f"no shipped bases for {missing}: run scripts/build_shipped_bases.py"
    assert not [g for g, m in MANIFEST["groups"].items() if m["skipped"] and g != "full_ico"]
    total = sum(f["bytes"] for f in MANIFEST["files"].values())
    assert total < 8e6, f"shipped data {total / 1e6:.1f} MB"
    for name, meta in MANIFEST["files"].items():  # files on disk are the ones the manifest describes
        assert hashlib.sha256((cache.shipped_dir() / name).read_bytes()).hexdigest() == meta["sha256"], name


@pytest.mark.parametrize("group", ["octa", "c4_axial_h", "so3"])
def test_shipped_bases_equal_a_fresh_escnn_solve(group, fresh_cache_state, monkeypatch):
    """A sample of shipped bases against escnn's ``R3Conv`` solved now (no cache, no shipped data)."""
    from equivox.groups import get_group
    from equivox.nn.conv import _load_pair_basis, _pair_key

    g = get_group(group)
    trivial, hidden = g.gspace.trivial_repr, g.hidden_repr
    pairs = [(hidden, hidden, 3)] if group != "so3" else [(trivial, hidden, 3)]
    pairs.append((hidden, trivial, 1))
    for rin, rout, k in pairs:
        key = _pair_key(g.name, rin, rout, k)
        shipped = shipped_tensors(key)
        assert shipped is not None, f"{key} is not shipped"
        monkeypatch.setenv("EQUIVOX_NO_CACHE", "1")
        solved = _load_pair_basis(g, rin, rout, k, key)
        monkeypatch.delenv("EQUIVOX_NO_CACHE")
        a, b = shipped["basis"], solved["basis"]
        assert a.shape == b.shape and a.dtype == b.dtype, key
        assert torch.allclose(shipped["bias"], solved["bias"], atol=1e-6), key
        # escnn's solver may order or sign basis elements differently from one process to the next (the layer's
        # fingerprint remaps checkpoints for that): match each solved element to one shipped element, up to sign
        fa, fb = a.reshape(a.shape[0], -1).double(), b.reshape(b.shape[0], -1).double()
        perm = (fb @ fa.T).abs().argmax(dim=1)
        assert perm.unique().numel() == perm.numel(), key
        sign = torch.sign((fb * fa[perm]).sum(dim=1, keepdim=True))
        scale = float(fb.abs().max())
        err = float((fa[perm] * sign - fb).abs().max())
        assert err <= 2e-6 * scale, (key, err, scale)


def test_model_built_from_shipped_bases_loads_weights_of_a_solved_one(fresh_cache_state, monkeypatch, tmp_path):
    """A checkpoint made with freshly solved bases loads into a layer built from shipped ones (the fingerprints
    remap elements that escnn ordered or signed differently) and computes the same function."""
    from equivox.nn import EquivariantConv3d, FieldSpec
    from equivox.nn import conv as conv_mod

    monkeypatch.setattr(conv_mod, "_PAIR_MEMO", {})
    monkeypatch.setenv("EQUIVOX_NO_CACHE", "1")
    torch.manual_seed(0)
    solved = EquivariantConv3d(FieldSpec.hidden("octa", 1), FieldSpec.hidden("octa", 1), 3)
    monkeypatch.delenv("EQUIVOX_NO_CACHE")
    monkeypatch.setattr(conv_mod, "_PAIR_MEMO", {})
    shipped = EquivariantConv3d(FieldSpec.hidden("octa", 1), FieldSpec.hidden("octa", 1), 3)
    shipped.load_state_dict(solved.state_dict())
    x = torch.randn(1, 24, 5, 5, 5)
    assert torch.allclose(shipped(x), solved(x), atol=1e-5)


def _count_builds(key):
    calls = []

    def build():
        calls.append(1)
        return {"basis": torch.zeros(1), "bias": torch.zeros(1)}

    return calls, build


def test_corrupted_file_is_rejected_with_a_warning_and_solved(shipped_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("EQUIVOX_CACHE_DIR", str(tmp_path / "cache"))
    name, meta = _entry("octa", "basis|")
    path = shipped_copy / meta["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    calls, build = _count_builds(meta["key"])
    with pytest.warns(CacheWarning, match="rejected"):
        out = cached_tensors(meta["key"], build)
    assert calls == [1] and torch.equal(out["basis"], torch.zeros(1))


def test_corrupted_entry_with_a_valid_file_checksum_is_rejected(shipped_copy, tmp_path, monkeypatch):
    """Re-pack a file with one entry altered (and the file checksum updated): the entry digest catches it."""
    monkeypatch.setenv("EQUIVOX_CACHE_DIR", str(tmp_path / "cache"))
    name, meta = _entry("octa", "basis|")
    path = shipped_copy / meta["file"]
    import io

    data = torch.load(io.BytesIO(lzma.decompress(path.read_bytes())), weights_only=True)
    packed = data["entries"][name]["packed"]["basis"]
    field = "values" if "values" in packed else ("blocks" if "blocks" in packed else "raw")
    target = packed[field][0] if isinstance(packed[field], list) else packed[field]
    target.view(-1)[0] += 0.5
    buf = io.BytesIO()
    torch.save(data, buf)
    raw = lzma.compress(buf.getvalue())
    path.write_bytes(raw)
    manifest = json.loads((shipped_copy / "manifest.json").read_text())
    manifest["files"][meta["file"]]["sha256"] = hashlib.sha256(raw).hexdigest()
    (shipped_copy / "manifest.json").write_text(json.dumps(manifest))
    calls, build = _count_builds(meta["key"])
    with pytest.warns(CacheWarning, match="digest"):
        cached_tensors(meta["key"], build)
    assert calls == [1]
    # the other entries of that file are still used
    other = next(m for n, m in MANIFEST["entries"].items() if m["file"] == meta["file"] and n != name)
    assert shipped_tensors(other["key"]) is not None


def test_manifest_of_another_escnn_version_is_stale(shipped_copy):
    manifest = json.loads((shipped_copy / "manifest.json").read_text())
    manifest["escnn"] = "0.0.1"
    (shipped_copy / "manifest.json").write_text(json.dumps(manifest))
    name, meta = _entry("octa", "basis|")
    with pytest.warns(CacheWarning, match="escnn 0.0.1"):
        assert shipped_tensors(meta["key"]) is None


def test_entry_recorded_for_another_key_is_rejected(shipped_copy):
    manifest = json.loads((shipped_copy / "manifest.json").read_text())
    name, meta = _entry("octa", "basis|")
    manifest["entries"][name]["key"] = meta["key"] + "|tampered"
    (shipped_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(CacheWarning, match="another key"):
        assert shipped_tensors(meta["key"]) is None


def test_no_shipped_and_no_cache_env_bypass_shipped_entries(fresh_cache_state, monkeypatch):
    name, meta = _entry("octa", "basis|")
    assert shipped_tensors(meta["key"]) is not None
    monkeypatch.setenv("EQUIVOX_NO_SHIPPED", "1")
    assert shipped_tensors(meta["key"]) is None
    monkeypatch.delenv("EQUIVOX_NO_SHIPPED")
    monkeypatch.setenv("EQUIVOX_NO_CACHE", "1")
    calls, build = _count_builds(meta["key"])
    cached_tensors(meta["key"], build)
    assert calls == [1]


def test_pack_unpack_orbit_irreps_and_raw_forms():
    gen = torch.Generator().manual_seed(0)
    # orbit form: 4 distinct columns repeated
    cols = torch.randn(6, 4, generator=gen)
    t = cols[:, torch.arange(400) % 4].reshape(6, 4, 100)
    p = pack_payload({"t": t})["t"]
    assert "index" in p and torch.allclose(unpack_payload({"t": p})["t"], t, atol=1e-6)
    # irreps block form: elements that are one small block in the coordinates of random orthogonal matrices
    qo = torch.linalg.qr(torch.randn(12, 12, generator=gen, dtype=torch.float64))[0]
    qi = torch.linalg.qr(torch.randn(10, 10, generator=gen, dtype=torch.float64))[0]
    c = torch.zeros(8, 12, 10, 27, dtype=torch.float64)
    for b in range(8):
        c[b, b:b + 3, b % 5:b % 5 + 2] = torch.randn(3, 2, 27, generator=gen, dtype=torch.float64)
    basis = torch.einsum("po,bois,iq->bpqs", qo, c, qi.T).float()
    p = pack_payload({"basis": basis}, change_of_basis={"basis": (qo, qo.T, qi, qi.T)})["basis"]
    assert "blocks" in p
    assert torch.allclose(unpack_payload({"basis": p})["basis"], basis, atol=1e-6)
    # nothing to compress: raw
    noise = torch.randn(8, 12, 10, 27, generator=gen)
    assert "raw" in pack_payload({"n": noise})["n"]


def test_shipped_entries_give_no_warning(fresh_cache_state):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        for meta in list(MANIFEST["entries"].values())[:: max(1, len(MANIFEST["entries"]) // 6)]:
            assert shipped_tensors(meta["key"]) is not None
