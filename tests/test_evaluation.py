"""Tests for equivox.evaluation: rotation sets, rotation-augmented evaluation, reports, plots, GroupTTA.

Tiny models (channels=(2, 2), strides=(2,)) on 8^3 inputs; every equivariance claim is checked by rotating
real inputs with real group elements, and each has a counterpart model on which the same check fails.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from equivox.evaluation import (GroupTTA, Rotation, RotationReport, compare_reports, evaluate_classification,
                                evaluate_segmentation, plot_equivariance_errors, plot_rotation_scores,
                                plot_segmentation_slices, predict_rotated, rotation_set)
from equivox.groups import cube_rotations
from equivox.testing import equivariance_errors

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny convolutions run ~100x faster single-threaded on a busy 2-core machine (no thread oversubscription)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def classifiers():
    """Two-class tiny classifiers: exactly invariant (octa) and not (trivial), eval mode."""
    from equivox.nets import InvariantClassifier

    out = {}
    for g in ("octa", "trivial"):
        torch.manual_seed(3)
        out[g] = InvariantClassifier(3, 1, 2, channels=(2, 2), strides=(2,), group=g).eval()
    return out


@pytest.fixture(scope="module")
def clf_data():
    """8 asymmetric random volumes (1, 8, 8, 8) with balanced labels."""
    x = torch.randn(8, 1, 8, 8, 8, generator=_gen(11)) * 2 + torch.linspace(0, 1, 8).view(1, 1, 8, 1, 1)
    y = torch.tensor([0, 1] * 4)
    return x, y


@pytest.fixture(scope="module")
def seg_data():
    """2 volumes (1, 8, 8, 8) with 3-class labels from thresholds of a smoothed image."""
    x = torch.randn(2, 1, 8, 8, 8, generator=_gen(5))
    smooth = torch.nn.functional.avg_pool3d(x, 3, stride=1, padding=1)
    y = (smooth > 0.1).long() + (smooth > 0.4).long()
    return x, y


@pytest.fixture(scope="module")
def small_rotations():
    """identity + the 24 cube rotations + 2 random rotations."""
    return rotation_set("standard", group="octa", n_random=2, seed=1)


class PlainCNN(nn.Module):
    """A plain torch classifier (no symmetry): conv, flatten, linear."""

    def __init__(self, k=2):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv3d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8 * 8, k)
        self.out_channels = k

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


class OracleSegmenter(nn.Module):
    """Per-voxel logits = one-hot of the rounded input: perfect when the image is the label itself."""

    def __init__(self, k=3):
        super().__init__()
        self.k = k

    def forward(self, x):
        cls = x[:, 0].round().clamp(0, self.k - 1).long()
        return torch.nn.functional.one_hot(cls, self.k).permute(0, 4, 1, 2, 3).float()


# --------------------------------------------------------------------------------------------- rotation sets


def test_rotation_set_sizes_and_names():
    assert len(rotation_set("identity")) == 1
    assert len(rotation_set("grid", group="octa")) == 24
    assert len(rotation_set("grid", group="full_octa")) == 48
    assert len(rotation_set("grid", group="trivial")) == 1
    assert len(rotation_set("so3", n_random=5)) == 6
    std = rotation_set("standard", group="octa", n_random=3)
    assert len(std) == 1 + 24 + 3
    assert [r.kind for r in std] == ["identity"] + ["grid"] * 24 + ["so3"] * 3
    assert len({r.name for r in std}) == len(std)
    assert std[0].name == "identity" and std[1].name == "grid:[d,h,w]" and std[-1].name == "so3:2"
    assert all(r.exact for r in std[:25]) and not any(r.exact for r in std[25:])
    for r in std:  # every matrix is a rotation
        m = r.matrix_array
        assert np.allclose(m @ m.T, np.eye(3), atol=1e-9) and np.isclose(np.linalg.det(m), 1.0)
    # seeds: same seed same rotations, other seed other rotations
    a, b, c = (rotation_set("so3", n_random=3, seed=s) for s in (0, 0, 1))
    assert a == b and a != c
    with pytest.raises(ValueError, match="kind"):
        rotation_set("random")


def test_rotation_set_ico_has_12_grid_elements():
    rots = rotation_set("grid", group="ico")
    assert len(rots) == 12
    mats = {tuple(np.rint(r.matrix_array).astype(int).ravel()) for r in rots}
    assert len(mats) == 12  # 12 distinct signed permutations (the tetrahedral subgroup)


def test_grid_rotation_is_exact_permutation_and_matches_resampling():
    x = torch.randn(1, 2, 6, 6, 6, generator=_gen(0))
    for r in rotation_set("grid", group="octa")[1:6]:
        y = r.apply_image(x)
        assert torch.equal(torch.sort(y.flatten())[0], torch.sort(x.flatten())[0])  # a permutation of voxels
        assert not torch.equal(y, x)
        # same convention as the resampled path: a 90-degree matrix resampled = the exact permutation
        as_so3 = Rotation.from_matrix(r.matrix_array, "as-so3")
        assert torch.allclose(as_so3.apply_image(x), y, atol=1e-5)
        assert torch.equal(r.inverse_apply_label(r.apply_label(x)), x)


def test_so3_label_rotation_keeps_label_values():
    lab = torch.zeros(1, 1, 10, 10, 10, dtype=torch.long)
    lab[0, 0, 2:7, 3:8, 1:5] = 2
    lab[0, 0, 5:9, 1:4, 4:9] = 5
    for r in rotation_set("so3", n_random=4, seed=3)[1:]:
        out = r.apply_label(lab)
        assert out.dtype == lab.dtype and out.shape == lab.shape
        assert set(out.unique().tolist()) <= {0, 2, 5}
        assert (out == 5).any() and (out == 2).any()
        img = r.apply_image(lab.float())  # trilinear: values in between appear (not exact)
        assert img.shape == lab.shape and img.dtype == torch.float32
        assert not set(img.unique().tolist()) <= {0.0, 2.0, 5.0}


# --------------------------------------------------------------------------------------------- classification


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


def test_non_equivariant_classifier_scores_differ(classifiers, clf_data, small_rotations):
    x, y = clf_data
    rots = small_rotations[:9]  # identity + 8 cube rotations
    for model in (classifiers["trivial"], PlainCNN()):
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


def test_group_tta_makes_plain_model_invariant(clf_data):
    x, y = clf_data
    plain = PlainCNN().eval()
    tta = GroupTTA(plain, group="octa", task="classification")
    els = cube_rotations()
    assert max(e.relative for e in equivariance_errors(plain, x[:3], els)) > 1e-2
    assert max(e.relative for e in equivariance_errors(tta, x[:3], els)) < 1e-5
    with torch.no_grad():  # outputs are log mean probabilities
        p = tta(x[:3]).exp()
    assert torch.allclose(p.sum(1), torch.ones(3), atol=1e-5)
    rep = evaluate_classification(tta, (x, y), rotation_set("grid")[::8], progress=False, metric="auroc")
    assert rep.summary()["std_grid"] < 1e-9


# --------------------------------------------------------------------------------------------- segmentation


def test_equivariant_unet_dice_equal_on_every_grid_rotation(small_model, seg_data, small_rotations):
    x, y = seg_data
    rep = evaluate_segmentation(small_model("unet", "octa"), (x, y), small_rotations, num_classes=3,
                                progress=False, name="octa-unet", check_equivariance=True)
    assert rep.metric == "dice" and {"dice", "dice_1", "dice_2"} <= set(rep.rows[0])
    for col in ("dice", "dice_1", "dice_2"):
        vals = rep.scores("grid", col)
        assert max(vals) - min(vals) < 1e-6, col
    assert rep.equivariance_error < 1e-4
    rep_t = evaluate_segmentation(small_model("unet", "trivial"), (x, y), small_rotations, num_classes=3,
                                  progress=False)
    assert rep_t.summary()["std_grid"] > 1e-3


def test_segmentation_rotates_image_and_label_together():
    lab = torch.zeros(1, 1, 8, 8, 8, dtype=torch.long)
    lab[0, 0, 1:5, 2:7, 0:3] = 1
    lab[0, 0, 4:8, 0:3, 3:8] = 2
    rots = rotation_set("standard", n_random=2, seed=0)
    rep = evaluate_segmentation(OracleSegmenter(3), [{"image": lab[0].float(), "label": lab[0]}], rots,
                                num_classes=3, progress=False, class_names=["bg", "a", "b"])
    assert "dice_a" in rep.rows[0] and "dice_b" in rep.rows[0]
    for row in rep.rows:
        if row["exact"]:
            assert row["dice"] == pytest.approx(1.0)
        else:  # trilinear image vs nearest label: not exact, but still close
            assert 0.5 < row["dice"] < 1.0
    # an empty prediction scores 0
    loader = torch.utils.data.DataLoader([{"image": lab[0].float(), "label": lab[0]}] * 2, batch_size=2)
    rep_l = evaluate_segmentation(OracleSegmenter(3), loader, rots, num_classes=3, progress=False,
                                  class_names=["bg", "a", "b"])
    assert rep_l.rows == rep.rows and rep_l.meta["n_samples"] == 2
    rep0 = evaluate_segmentation(OracleSegmenter(3), [(torch.zeros(1, 8, 8, 8), lab[0])], rots[:1], num_classes=3,
                                 progress=False)
    assert rep0.rows[0]["dice"] == pytest.approx(0.0)


def test_segmentation_pads_non_divisible_volumes(small_model):
    model = small_model("unet", "octa")  # size_multiple 2
    x = torch.randn(1, 7, 8, 9, generator=_gen(2))
    y = (x > 0.3).long() + (x > 1.0).long()
    rots = rotation_set("grid")[:6]
    rep = evaluate_segmentation(model, [(x, y)], rots, num_classes=3, progress=False)
    vals = rep.scores("grid")
    assert max(vals) - min(vals) < 1e-6 and rep.meta["padded_to_multiple"] == 2
    # predictions mapped back upright: same shape as the input, identical for every grid rotation
    p0 = predict_rotated(model, x[None], rots[0])
    assert p0.shape == (1, 1, 7, 8, 9)
    for r in rots[1:]:
        assert torch.equal(predict_rotated(model, x[None], r), p0)
    with pytest.raises(ValueError, match="size_multiple"):
        evaluate_segmentation(model, [(x, y)], rots, num_classes=3, progress=False, pad=False)
    with pytest.raises(ValueError, match="label values"):
        evaluate_segmentation(model, [(x[:, :8, :8, :8], y[:, :8, :8, :8] + 3)], rots, num_classes=3, progress=False)


def test_group_tta_makes_trivial_unet_equivariant(small_model, seg_data):
    x, _ = seg_data
    base = small_model("unet", "trivial")
    tta = GroupTTA(base, group="octa", task="segmentation")
    els = cube_rotations()
    assert max(e.relative for e in equivariance_errors(base, x[:1], els)) > 1e-2
    assert max(e.relative for e in equivariance_errors(tta, x[:1], els)) < 1e-5


# --------------------------------------------------------------------------------------------- reports, plots


def _fake_report(name, grid, so3, upright):
    rows = [{"rotation": "identity", "kind": "identity", "exact": True, "score": upright}]
    rows += [{"rotation": f"grid:{i}", "kind": "grid", "exact": True, "score": v} for i, v in enumerate(grid)]
    rows += [{"rotation": f"so3:{i}", "kind": "so3", "exact": False, "score": v} for i, v in enumerate(so3)]
    return RotationReport(name, "score", rows)


def test_report_summary_statistics():
    rng = np.random.default_rng(0)
    grid, so3 = rng.uniform(0.5, 1, 24).tolist(), rng.uniform(0.2, 0.9, 5).tolist()
    s = _fake_report("m", grid, so3, 0.95).summary()
    assert s["upright"] == 0.95
    assert s["mean_grid"] == pytest.approx(np.mean(grid)) and s["worst_grid"] == pytest.approx(min(grid))
    assert s["std_grid"] == pytest.approx(np.std(grid))
    assert s["mean_so3"] == pytest.approx(np.mean(so3)) and s["worst_so3"] == pytest.approx(min(so3))
    assert s["gap_grid"] == pytest.approx(0.95 - np.mean(grid)) and s["gap_so3"] == pytest.approx(0.95 - np.mean(so3))
    only_grid = _fake_report("g", grid, [], 0.9).summary()
    assert only_grid["mean_so3"] is None and only_grid["gap_so3"] is None


def test_report_json_csv_roundtrip_and_compare(tmp_path, classifiers, clf_data):
    x, y = clf_data
    rots = rotation_set("standard", n_random=1)[:4] + rotation_set("so3", n_random=1)[1:]
    rep = evaluate_classification(classifiers["trivial"], (x, y), rots, progress=False, name="trivial",
                                  check_equivariance=True)
    back = RotationReport.from_json(rep.to_json(tmp_path / "r.json"))
    assert back == rep and back.summary() == rep.summary()
    csv_back = RotationReport.from_csv(rep.to_csv(tmp_path / "r.csv"), name="trivial", metric="accuracy")
    assert [r["rotation"] for r in csv_back.rows] == [r["rotation"] for r in rep.rows]
    for a, b in zip(csv_back.rows, rep.rows):
        assert a["exact"] == b["exact"] and a["kind"] == b["kind"]
        for k in ("accuracy", "balanced_accuracy", "auroc"):
            assert a[k] == pytest.approx(b[k])
    table = rep.table()
    assert "grid:[d,h,w]" in table and "so3:0" in table and "gap_grid" in table
    other = _fake_report("other-model", [0.5] * 3, [0.4], 0.6)
    cmp = compare_reports([rep, other])
    lines = cmp.splitlines()
    assert any(line.startswith("trivial") for line in lines) and any(line.startswith("other-model") for line in lines)
    assert "mean_grid" in cmp and "gap_so3" in cmp
    with pytest.raises(ValueError, match="RotationReport JSON"):
        (tmp_path / "bad.json").write_text("{}")
        RotationReport.from_json(tmp_path / "bad.json")


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1024


def test_plots_are_written(tmp_path, small_model, seg_data):
    a = _fake_report("equivariant", [0.8] * 24, [0.75, 0.7], 0.8)
    b = _fake_report("plain", np.linspace(0.5, 0.9, 24).tolist(), [0.5, 0.6], 0.9)
    _assert_png(plot_rotation_scores([a, b], tmp_path / "scores.png"))
    x, y = seg_data
    errs = {"trivial": equivariance_errors(small_model("unet", "trivial"), x[:1], cube_rotations()[:5]),
            "octa": equivariance_errors(small_model("unet", "octa"), x[:1], cube_rotations()[:5])}
    _assert_png(plot_equivariance_errors(errs, tmp_path / "errors.png"))
    _assert_png(plot_equivariance_errors(errs["octa"], tmp_path / "errors1.png"))
    rot = rotation_set("grid")[5]
    model = small_model("unet", "octa")
    preds = {"upright": predict_rotated(model.eval(), x[:1], rotation_set("identity")[0])[0],
             "rotated, mapped back": predict_rotated(model, x[:1], rot)[0]}
    _assert_png(plot_segmentation_slices(x[0], y[0], preds, tmp_path / "slices.png", rotation_name=rot.name))


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures the plot functions save, in order (the PNGs are still written)."""
    from equivox.evaluation import plots

    saved = []
    real = plots._save

    def keep(fig, path, rect=None):
        saved.append(fig)
        return real(fig, path, rect)

    monkeypatch.setattr(plots, "_save", keep)
    return saved


def test_plots_are_readable_and_honest(tmp_path, figures):
    from equivox.testing import ElementError

    # scores: a 0-1 axis (not autoscaled to 0.279-0.289), model names and n in the legend, series side by side
    a = _fake_report("EquivariantUNet (octa)", [0.284] * 24, [0.281, 0.289], 0.284)
    b = _fake_report("plain UNet", [0.284] * 24, [0.281, 0.289], 0.284)
    a.meta, b.meta = {"n_samples": 1}, {"n_samples": 1}
    _assert_png(plot_rotation_scores([a, b], tmp_path / "scores.png"))
    ax = figures[-1].axes[0]
    assert ax.get_ylim() == (0.0, 1.0)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "EquivariantUNet (octa) (n=1)" in legend and "plain UNet (n=1)" in legend
    xs = {tuple(line.get_xdata()) for line in ax.get_lines() if len(line.get_xdata()) == 24}
    assert len(xs) >= 2  # equal scores of two models are not drawn on top of each other
    assert min(t.get_fontsize() for t in ax.get_xticklabels() + ax.get_yticklabels()) >= 8

    # equivariance errors: an exact zero is marked, not drawn at 1e-12; the threshold is drawn
    errs = [ElementError("[d,h,w]", 0.0, 0.0), ElementError("[h,-d,w]", 3e-7, 3e-7)]
    _assert_png(plot_equivariance_errors({"EquivariantUNet (octa)": errs}, tmp_path / "errors.png"))
    ax = figures[-1].axes[0]
    assert ax.get_ylim()[0] > 1e-9
    assert any(np.allclose(line.get_ydata(), 1e-4) for line in ax.get_lines())  # threshold line
    assert any("exactly zero" in t.get_text() for t in ax.get_legend().get_texts())

    # segmentation slices: a class legend with the class names
    lab = torch.zeros(1, 8, 8, 8, dtype=torch.long)
    lab[0, 2:6, 2:5, 2:6], lab[0, 2:6, 5:7, 2:6] = 1, 2
    _assert_png(plot_segmentation_slices(torch.rand(1, 8, 8, 8), lab, {"model": lab}, tmp_path / "s.png",
                                         class_names=["background", "left lung", "right lung"]))
    texts = [t.get_text() for leg in figures[-1].legends for t in leg.get_texts()]
    assert texts == ["left lung", "right lung"]


def test_segmentation_evaluation_refuses_rotations_that_are_not_physical_on_anisotropic_voxels():
    """On 3 x 1 x 1 mm voxels a random rotation, or a quarter turn that swaps the 3 mm axis with a 1 mm one, is not
    a rotation of the scan: refused, naming the rotation; the rotations of the group exact for the spacing run."""
    from equivox.groups import auto_group

    class Ones(nn.Module):
        def forward(self, x):
            return torch.cat([torch.zeros_like(x[:, :1]), torch.ones_like(x[:, :1])], 1)

    vol = torch.zeros(1, 1, 4, 4, 4)
    lab = torch.zeros(1, 1, 4, 4, 4, dtype=torch.long)
    lab[..., 1:3, 1:3, 1:3] = 1
    spacing = (3.0, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"rotation (grid|so3):.* not a rotation of the scan on anisotropic voxels \(3x1x1"):
        evaluate_segmentation(Ones(), (vol, lab), rotation_set("standard", group="octa", n_random=1),
                              num_classes=2, progress=False, spacing=spacing)
    exact = rotation_set("grid", group=auto_group(spacing)[0])
    rep = evaluate_segmentation(Ones(), (vol, lab), exact, num_classes=2, progress=False, spacing=spacing)
    assert len(rep.rows) == len(exact) >= 4
    iso = evaluate_segmentation(Ones(), (vol, lab), rotation_set("grid", group="octa"), num_classes=2,
                                progress=False, spacing=(2.0, 2.0, 2.0))
    assert len(iso.rows) == 24


def test_segmentation_slices_grid_rows_are_models_and_titles_name_data_and_models(tmp_path, figures):
    lab = torch.zeros(1, 8, 8, 8, dtype=torch.long)
    lab[0, 2:6, 2:5, 2:6] = 1
    preds = {m: {"upright": lab, "rotated, mapped back": lab} for m in ("equivariant", "plain", "plain + aug")}
    _assert_png(plot_segmentation_slices(torch.rand(1, 8, 8, 8), lab, preds, tmp_path / "s.png", rotation_name="so3:0",
                                         title="toy data"))
    fig = figures[-1]
    assert len(fig.axes) == 2 + 3 * 2  # image + ground truth, then one row of two per model
    assert [ax.get_ylabel() for ax in fig.axes[2::2]] == ["equivariant", "plain", "plain + aug"]
    assert [ax.get_title() for ax in fig.axes[:4]] == ["image", "ground truth", "upright", "rotated, mapped back"]
    assert "toy data" in fig._suptitle.get_text() and "so3:0" in fig._suptitle.get_text()
    assert min(ax.title.get_fontsize() for ax in fig.axes) >= 9
    w, h = fig.get_size_inches()
    assert h > w  # four rows of two panels: taller than wide
    # rotation scores: the default title names the models; a given title without them gets them on a second line
    a, b = _fake_report("EquivariantUNet (octa)", [0.8] * 3, [0.7], 0.8), _fake_report("plain UNet", [0.6] * 3, [], 0.9)
    plot_rotation_scores([a, b], tmp_path / "r.png")
    assert "EquivariantUNet (octa)" in figures[-1].axes[0].get_title() and "plain UNet" in figures[-1].axes[0].get_title()
    plot_rotation_scores([a, b], tmp_path / "r2.png", title="toy data: score per rotation")
    title = figures[-1].axes[0].get_title()
    assert title.startswith("toy data") and "models: EquivariantUNet (octa), plain UNet" in title
