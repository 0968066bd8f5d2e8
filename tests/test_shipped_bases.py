"""Shipped, pre-solved kernel bases and group tables (``equivox/_bases``): they match what escnn solves, and any
corrupted, stale or mismatched piece is rejected with a warning, then solved as if nothing had been shipped."""
import hashlib
import json
import lzma
import shutil
import warnings

import numpy as np
import pytest
import torch

from equivox import cache
from equivox.cache import CacheWarning, cached_tensors, pack_payload, shipped_tensors, unpack_payload

MANIFEST = json.loads((cache.shipped_dir() / "manifest.json").read_text())


@pytest.fixture
def fresh_state(monkeypatch):
    """Forget what this process read from the shipped folder and which warnings it gave (restored after)."""
    monkeypatch.setattr(cache, "_shipped_state", {})
    monkeypatch.setattr(cache, "_warned", set())
    monkeypatch.delenv("EQUIVOX_NO_SHIPPED", raising=False)
    monkeypatch.delenv("EQUIVOX_NO_CACHE", raising=False)


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch, fresh_state):
    """A writable copy of the shipped folder that equivox reads instead of the real one."""
    dst = tmp_path / "_bases"
    shutil.copytree(cache.shipped_dir(), dst)
    monkeypatch.setattr(cache, "shipped_dir", lambda: dst)
    return dst


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
def test_shipped_bases_equal_a_fresh_escnn_solve(group, fresh_state, monkeypatch):
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


def test_model_built_from_shipped_bases_loads_weights_of_a_solved_one(fresh_state, monkeypatch, tmp_path):
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


def test_no_shipped_and_no_cache_env_bypass_shipped_entries(fresh_state, monkeypatch):
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


def test_joblib_seeds_are_checked_and_copied(shipped_copy, tmp_path):
    from equivox._escnn import ESCNN_VERSION
    from equivox._escnn_tables import seed_joblib

    loc = tmp_path / "loc"
    n = seed_joblib(str(loc), ESCNN_VERSION)
    members = MANIFEST["joblib"]["members"]
    assert n == len(members)
    for rel, sha in members.items():
        assert hashlib.sha256((loc / "joblib" / rel).read_bytes()).hexdigest() == sha
    assert seed_joblib(str(loc), ESCNN_VERSION) == 0  # nothing missing: nothing copied, nothing overwritten
    assert seed_joblib(str(tmp_path / "other"), "0.0.1") == 0  # made for another escnn: not used
    archive = shipped_copy / MANIFEST["joblib"]["file"]
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.warns(CacheWarning, match="rejected"):
        assert seed_joblib(str(tmp_path / "third"), ESCNN_VERSION) == 0
    assert not (tmp_path / "third" / "joblib").exists() or not list((tmp_path / "third").rglob("*.pkl"))


def test_cached_regular_representation_equals_escnn_and_bad_entries_are_rejected(fresh_state, monkeypatch):
    import escnn.group.representation as rep_module

    from equivox import _escnn_tables
    from equivox._escnn import quiet
    from equivox.groups import get_group

    group = get_group("octa").gspace.fibergroup
    with quiet():  # equivox's escnn set-up (the wrapper) is active inside quiet() only
        assert getattr(rep_module.build_regular_representation, "_equivox_wrapped", False)
        original = rep_module._equivox_original_regular
        irreps_a, cob_a, inv_a = rep_module.build_regular_representation(group)  # shipped / cached
        irreps_b, cob_b, inv_b = original(group)  # escnn's own
    assert [r.id for r in irreps_a] == [r.id for r in irreps_b]
    assert np.allclose(cob_a, cob_b, atol=1e-10) and np.allclose(inv_a, inv_b, atol=1e-10)

    def wrong(key, build):
        data = build()
        return {**data, "cob": data["cob"].flip(0)}  # rows of another element order

    monkeypatch.setattr(_escnn_tables, "cached_tensors", wrong)
    with pytest.warns(CacheWarning, match="fails its check"), quiet():  # reported even inside quiet()
        irreps_c, cob_c, _ = rep_module.build_regular_representation(group)
    assert np.allclose(cob_c, cob_b, atol=1e-10)


def test_shipped_entries_give_no_warning(fresh_state):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        for meta in list(MANIFEST["entries"].values())[:: max(1, len(MANIFEST["entries"]) // 6)]:
            assert shipped_tensors(meta["key"]) is not None
