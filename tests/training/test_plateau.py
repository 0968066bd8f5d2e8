"""equivox.training.plateau: the plateau rule, and training that goes on until it holds (also after a resume)."""
from __future__ import annotations

import numpy as np
import pytest

from equivox.training import TrainConfig, fit, plateaued
from equivox.training.plateau import learning_curve, run_curve

TINY = dict(task="classify", input_size=None, channels=(2, 2), strides=(2,), convs_per_level=1, hidden_features=(8,),
            batch_size=4, progress=False, accelerator="cpu", plots=False)


def _data(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, images=rng.random((12, 8, 8, 8)).astype(np.float32), labels=np.arange(12) % 2)
    return str(path)


def test_plateau_rule():
    assert plateaued([(i, v) for i, v in enumerate([.1, .4, .6, .65, .66, .66, .665, .664, .66, .662])])
    assert not plateaued([(i, .1 * i) for i in range(10)])  # still climbing
    assert plateaued([(0, .5), (1, .6)]) is None  # too short to tell
    assert plateaued([(i, .5) for i in range(4)] + [(4, .509)]) and not plateaued([(i, .5) for i in range(4)] + [(4, .52)])


def test_training_stops_at_the_plateau_not_at_max_epochs(tmp_path):
    # a learning rate too small to move the weights: a flat validation curve, at its plateau after 5 points
    cfg = TrainConfig(**TINY, dataset=_data(tmp_path), epochs=2, until_plateau=True, max_epochs=9, lr=1e-12,
                      out_dir=str(tmp_path / "flat"))
    res = fit(cfg)
    assert res.trainer.current_epoch == 5 and len(res.curve) == 5 and plateaued(res.curve)
    assert res.curve == learning_curve(res.metrics_csv, "val_acc")


def test_without_the_switch_epochs_is_the_length(tmp_path):
    res = fit(TrainConfig(**TINY, dataset=_data(tmp_path), epochs=7, lr=1e-12, out_dir=str(tmp_path / "fixed")))
    assert res.trainer.current_epoch == 7 and len(res.curve) == 7


def test_a_resumed_run_counts_its_earlier_curve(tmp_path):
    data, out = _data(tmp_path), tmp_path / "run"
    first = fit(TrainConfig(**TINY, dataset=data, epochs=3, lr=1e-12, out_dir=str(out)))
    assert len(first.curve) == 3 and plateaued(first.curve) is None
    cfg = TrainConfig(**TINY, dataset=data, epochs=3, until_plateau=True, max_epochs=12, lr=1e-12, out_dir=str(out),
                      resume=str(first.last_checkpoint))
    res = fit(cfg)
    # 3 earlier points + 2 new ones make the 5 a plateau needs: it stops after epoch 5, not 12
    assert res.trainer.current_epoch == 5 and len(res.curve) == 5 and res.curve[:3] == first.curve
    assert run_curve(out, "val_acc") == res.curve and len(learning_curve(res.metrics_csv, "val_acc")) == 2


def test_max_epochs_below_epochs_is_refused():
    with pytest.raises(ValueError, match="max_epochs must be >= epochs"):
        TrainConfig(epochs=5, max_epochs=3)
