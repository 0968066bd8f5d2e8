"""equivox.cache: entries are keyed, validated, rebuilt when corrupt or stale, never trusted blindly."""
import pytest
import torch

from equivox import cache
from equivox.cache import cached_tensors


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
