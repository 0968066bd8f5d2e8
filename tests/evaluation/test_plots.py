"""equivox.evaluation.plots: every plot is written as a PNG, with readable axes, honest scales (a 0-1 score axis,
exact zeros marked), legends naming models and classes, and titles naming the data and the models."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from equivox.evaluation import (plot_equivariance_errors, plot_rotation_scores, plot_segmentation_slices,
                                predict_rotated, rotation_set)
from equivox.groups import cube_rotations
from equivox.testing import equivariance_errors

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_plots_are_written(tmp_path, small_model, seg_data, fake_report, assert_png):
    a = fake_report("equivariant", [0.8] * 24, [0.75, 0.7], 0.8)
    b = fake_report("plain", np.linspace(0.5, 0.9, 24).tolist(), [0.5, 0.6], 0.9)
    assert_png(plot_rotation_scores([a, b], tmp_path / "scores.png"))
    x, y = seg_data
    errs = {"trivial": equivariance_errors(small_model("unet", "trivial"), x[:1], cube_rotations()[:5]),
            "octa": equivariance_errors(small_model("unet", "octa"), x[:1], cube_rotations()[:5])}
    assert_png(plot_equivariance_errors(errs, tmp_path / "errors.png"))
    assert_png(plot_equivariance_errors(errs["octa"], tmp_path / "errors1.png"))
    rot = rotation_set("grid")[5]
    model = small_model("unet", "octa")
    preds = {"upright": predict_rotated(model.eval(), x[:1], rotation_set("identity")[0])[0],
             "rotated, mapped back": predict_rotated(model, x[:1], rot)[0]}
    assert_png(plot_segmentation_slices(x[0], y[0], preds, tmp_path / "slices.png", rotation_name=rot.name))


def test_plots_are_readable_and_honest(tmp_path, saved_figures, fake_report, assert_png):
    from equivox.testing import ElementError

    figures = saved_figures
    # scores: a 0-1 axis (not autoscaled to 0.279-0.289), model names and n in the legend, series side by side
    a = fake_report("EquivariantUNet (octa)", [0.284] * 24, [0.281, 0.289], 0.284)
    b = fake_report("plain UNet", [0.284] * 24, [0.281, 0.289], 0.284)
    a.meta, b.meta = {"n_samples": 1}, {"n_samples": 1}
    assert_png(plot_rotation_scores([a, b], tmp_path / "scores.png"))
    ax = figures[-1].axes[0]
    assert ax.get_ylim() == (0.0, 1.0)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "EquivariantUNet (octa) (n=1)" in legend and "plain UNet (n=1)" in legend
    xs = {tuple(line.get_xdata()) for line in ax.get_lines() if len(line.get_xdata()) == 24}
    assert len(xs) >= 2  # equal scores of two models are not drawn on top of each other
    assert min(t.get_fontsize() for t in ax.get_xticklabels() + ax.get_yticklabels()) >= 8

    # equivariance errors: an exact zero is marked, not drawn at 1e-12; the threshold is drawn
    errs = [ElementError("[d,h,w]", 0.0, 0.0), ElementError("[h,-d,w]", 3e-7, 3e-7)]
    assert_png(plot_equivariance_errors({"EquivariantUNet (octa)": errs}, tmp_path / "errors.png"))
    ax = figures[-1].axes[0]
    assert ax.get_ylim()[0] > 1e-9
    assert any(np.allclose(line.get_ydata(), 1e-4) for line in ax.get_lines())  # threshold line
    assert any("exactly zero" in t.get_text() for t in ax.get_legend().get_texts())

    # segmentation slices: a class legend with the class names
    lab = torch.zeros(1, 8, 8, 8, dtype=torch.long)
    lab[0, 2:6, 2:5, 2:6], lab[0, 2:6, 5:7, 2:6] = 1, 2
    assert_png(plot_segmentation_slices(torch.rand(1, 8, 8, 8), lab, {"model": lab}, tmp_path / "s.png",
                                        class_names=["background", "left lung", "right lung"]))
    texts = [t.get_text() for leg in figures[-1].legends for t in leg.get_texts()]
    assert texts == ["left lung", "right lung"]


def test_segmentation_slices_grid_rows_are_models_and_titles_name_data_and_models(tmp_path, saved_figures,
                                                                                   fake_report, assert_png):
    figures = saved_figures
    lab = torch.zeros(1, 8, 8, 8, dtype=torch.long)
    lab[0, 2:6, 2:5, 2:6] = 1
    preds = {m: {"upright": lab, "rotated, mapped back": lab} for m in ("equivariant", "plain", "plain + aug")}
    assert_png(plot_segmentation_slices(torch.rand(1, 8, 8, 8), lab, preds, tmp_path / "s.png", rotation_name="so3:0",
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
    a, b = fake_report("EquivariantUNet (octa)", [0.8] * 3, [0.7], 0.8), fake_report("plain UNet", [0.6] * 3, [], 0.9)
    plot_rotation_scores([a, b], tmp_path / "r.png")
    assert "EquivariantUNet (octa)" in figures[-1].axes[0].get_title() and "plain UNet" in figures[-1].axes[0].get_title()
    plot_rotation_scores([a, b], tmp_path / "r2.png", title="toy data: score per rotation")
    title = figures[-1].axes[0].get_title()
    assert title.startswith("toy data") and "models: EquivariantUNet (octa), plain UNet" in title
