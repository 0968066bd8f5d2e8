"""equivox._escnn_tables: escnn's group tables from equivox's shipped folder and cache: the joblib seeds are checked
before they are copied (never for another escnn version, never overwriting), and the cached regular representation
equals escnn's own, a wrong cached one being rejected with a warning."""
import hashlib
import json

import numpy as np
import pytest

from equivox import cache
from equivox.cache import CacheWarning


def test_joblib_seeds_are_checked_and_copied(shipped_copy, tmp_path):
    from equivox._escnn import ESCNN_VERSION
    from equivox._escnn_tables import seed_joblib

    manifest = json.loads((cache.shipped_dir() / "manifest.json").read_text())
    loc = tmp_path / "loc"
    n = seed_joblib(str(loc), ESCNN_VERSION)
    members = manifest["joblib"]["members"]
    assert n == len(members)
    for rel, sha in members.items():
        assert hashlib.sha256((loc / "joblib" / rel).read_bytes()).hexdigest() == sha
    assert seed_joblib(str(loc), ESCNN_VERSION) == 0  # nothing missing: nothing copied, nothing overwritten
    assert seed_joblib(str(tmp_path / "other"), "0.0.1") == 0  # made for another escnn: not used
    archive = shipped_copy / manifest["joblib"]["file"]
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.warns(CacheWarning, match="rejected"):
        assert seed_joblib(str(tmp_path / "third"), ESCNN_VERSION) == 0
    assert not (tmp_path / "third" / "joblib").exists() or not list((tmp_path / "third").rglob("*.pkl"))


def test_cached_regular_representation_equals_escnn_and_bad_entries_are_rejected(fresh_cache_state, monkeypatch):
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
