"""equivox.cache: entries are keyed, validated, rebuilt when corrupt or stale, never trusted blindly."""
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from equivox import cache
from equivox.cache import cached_tensors


@pytest.fixture
def fresh_warnings(monkeypatch):
    """Reset equivox's warn-once memory so this test sees its own cache warnings."""
    monkeypatch.setattr(cache, "_warned", set())


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


# ------------------------------------------------------------------------------------------- 3. filter cache
