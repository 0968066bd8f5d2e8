"""equivox.evaluation.classification: evaluate_classification scores a classifier on every rotation of the data.

Tiny models (channels=(2, 2), strides=(2,)) on 8^3 inputs; every equivariance claim is checked by rotating real
inputs, and each has a counterpart model on which the same check fails.
"""
from __future__ import annotations

import pytest
import torch

from equivox.evaluation import evaluate_classification, rotation_set

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_invariant_classifier_scores_equal_on_every_grid_rotation(classifiers, clf_data, small_rotations):
    x, y = clf_data
    rep = evaluate_classification(classifiers["octa"], (x, y), small_rotations, batch_size=8, progress=False,
                                  name="octa", metric="auroc", check_equivariance=True)
    s = rep.summary()
    grid = rep.scores("grid")
    assert len(grid) == 24 and len(rep.rows) == 27
    assert s["std_grid"] < 1e-9 and s["gap_grid"] == pytest.approx(0.0, abs=1e-9)
    for col in ("accuracy", "balanced_accuracy", "auroc"):
        vals = rep.scores("grid", col)
        assert max(vals) - min(vals) < 1e-9, col
    assert rep.equivariance_error is not None and rep.equivariance_error < 1e-4
    assert set(rep.element_errors) == {r.name[5:] for r in small_rotations if r.kind == "grid"}


def test_non_equivariant_classifier_scores_differ(classifiers, clf_data, small_rotations, plain_cnn):
    x, y = clf_data
    rots = small_rotations[:9]  # identity + 8 cube rotations
    for model in (classifiers["trivial"], plain_cnn()):
        rep = evaluate_classification(model, (x, y), rots, batch_size=8, progress=False,
                                      metric="auroc", check_equivariance=True)
        assert rep.summary()["std_grid"] > 1e-3, type(model).__name__
        assert rep.equivariance_error > 1e-2


def test_classification_data_formats_agree(classifiers, clf_data):
    x, y = clf_data
    rots = rotation_set("identity") + rotation_set("grid")[1:3]
    model = classifiers["trivial"]
    ref = evaluate_classification(model, (x, y), rots, progress=False)
    dicts = [{"image": x[i], "label": int(y[i]), "id": f"s{i}"} for i in range(len(y))]
    pairs = [(x[i], y[i]) for i in range(len(y))]
    loader = torch.utils.data.DataLoader(dicts, batch_size=3)  # batches of dicts
    for data, bs, bar in ((dicts, 3, False), (pairs, 5, True), (iter(pairs), 3, False), (loader, 1, False)):
        rep = evaluate_classification(model, data, rots, batch_size=bs, progress=bar)
        assert rep.rows == ref.rows
    # accuracy agrees with a direct computation on the rotated inputs
    with torch.no_grad():
        pred = model(rots[1].apply_image(x)).argmax(1)
    assert ref.rows[1]["accuracy"] == pytest.approx(float((pred == y).float().mean()))
    with pytest.raises(ValueError, match="label"):
        evaluate_classification(model, [{"image": x[0]}], rots, progress=False)
    with pytest.raises(ValueError, match="class indices"):
        evaluate_classification(model, (x, y + 5), rots, progress=False)
