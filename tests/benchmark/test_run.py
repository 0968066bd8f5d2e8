"""equivox.benchmark.run: the module of both runs: one record schema for classification and segmentation (a user's
row through both), and the plateau rule and learning curves it re-exports from equivox.training.plateau (a Lightning
CSV read into (step, value) points)."""
from __future__ import annotations

import numpy as np
import pytest

from equivox.benchmark import RECORD_KEYS, competitor_names, learning_curve, run_classification, run_segmentation


def _check_schema(rec, n_test):
    assert set(RECORD_KEYS) <= set(rec)
    assert rec["n_test"] == n_test
    for key in ("upright", "worst_grid", "mean_so3"):
        if n_test < 3:  # one volume: no interval per record (the report pools seeds x items)
            assert rec[f"{key}_ci"] is None
            continue
        lo, hi = rec[f"{key}_ci"]
        assert lo <= rec[key] + 1e-9 and rec[key] - 1e-9 <= hi, (key, rec)
    # per-item scores: one list per rotation, the upright one averaging to the upright score (classification)
    assert all(len(v) == n_test for v in rec["per_item"].values())
    assert {n.split(":")[0] for n in rec["per_item"]} >= {"grid", "so3"}


def test_record_schema_is_the_same_for_both_tasks(tmp_path, user_row, bars_data, tiny_settings):
    name, calls = user_row
    data = bars_data()
    res = run_classification(data, [name], (1.0,), (0,), out=tmp_path / "c", verbose=False, **tiny_settings)
    rec = res["records"][0]
    _check_schema(rec, len(data.y_test))
    upright = rec["per_item"]["identity"] if "identity" in rec["per_item"] else rec["per_item"]["grid:[d,h,w]"]
    assert np.mean(upright) == pytest.approx(rec["upright"])
    seg = run_segmentation("chest_ct", [name], (0,), downsample=4, patch_size=16, val_crop=16, channels=(1, 2),
                           epochs=1, patches_per_epoch=4, batch_size=2, n_random=1, out=tmp_path / "s",
                           verbose=False)
    srec = seg["records"][0]
    _check_schema(srec, 1)
    assert srec["task"] == "segment" and rec["task"] == "classify" and calls[-1][0] == "segment"
    assert set(RECORD_KEYS) <= set(srec) and set(RECORD_KEYS) <= set(rec)


def test_plateau_rule_of_learning_curves():
    from equivox.benchmark import plateaued, run
    from equivox.training import plateau

    assert run.plateaued is plateau.plateaued and run.learning_curve is plateau.learning_curve
    assert plateaued([(i, v) for i, v in enumerate([.1, .4, .6, .65, .66, .66, .665, .664, .66, .662])])
    assert not plateaued([(i, .1 * i) for i in range(10)])  # still climbing
    assert plateaued([(0, .5), (1, .6)]) is None  # too short to tell


def test_learning_curve_reads_lightning_csv(tmp_path):
    p = tmp_path / "metrics.csv"
    p.write_text("epoch,step,train_loss,val_dice\n0,1,2.0,\n0,1,,0.25\n1,3,,0.5\n")
    assert learning_curve(p) == [(2, 0.25), (4, 0.5)]
    assert learning_curve(None) == [] and set(competitor_names("segment")) >= {"equivariant (octa)", "plain + so3 aug"}
