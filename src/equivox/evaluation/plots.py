"""Figures for rotation evaluation (matplotlib, Agg canvas: no display needed). Every function writes a PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from .report import RotationReport

__all__ = ["plot_rotation_scores", "plot_segmentation_slices", "plot_equivariance_errors"]


def _figure(figsize):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, rect=None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(rect=rect)
    fig.savefig(path, format="png")
    return path


#: smallest font on every figure (tick labels, legends), in points
MIN_FONT = 8


def plot_rotation_scores(reports: Union[RotationReport, Sequence[RotationReport]], path,
                         metric: Optional[str] = None, title: Optional[str] = None,
                         y_floor: float = 0.0) -> Path:
    """Score per rotation, one colour per model (the report's ``name``: give models their names, not file stems):
    identity (star), grid-exact rotations (circles), random SO(3) rotations (triangles), with each model's upright
    score as a dotted line. Models are drawn side by side (small horizontal offsets, open / filled markers) so equal
    scores stay visible. The y axis runs from ``y_floor`` (stated on the axis label when not 0) to 1 (scores
    are fractions). The legend gives each model's item count ``n``. Returns the path."""
    if isinstance(reports, RotationReport):
        reports = [reports]
    reports = list(reports)
    if not reports:
        raise ValueError("plot_rotation_scores needs at least one RotationReport")
    m = metric or reports[0].metric
    order = []
    for r in reports:
        for row in r.rows:
            if row["rotation"] not in order:
                order.append(row["rotation"])
    pos = {name: i for i, name in enumerate(order)}
    kinds = {row["rotation"]: row["kind"] for r in reports for row in r.rows}
    fig = _figure((max(6.0, 0.26 * len(order) + 2) + 3.0, 4.6))
    ax = fig.add_subplot(1, 1, 1)
    markers = {"identity": "*", "grid": "o", "so3": "^"}
    width = min(0.6, 0.15 * len(reports))
    for i, r in enumerate(reports):
        color = f"C{i % 10}"
        shift = (i - (len(reports) - 1) / 2) * (width / max(1, len(reports) - 1)) if len(reports) > 1 else 0.0
        xs = [pos[row["rotation"]] + shift for row in r.rows]
        ys = [np.nan if row.get(m) is None else row[m] for row in r.rows]
        ax.plot(xs, ys, "-", color=color, alpha=0.35, lw=1)
        n = (r.meta or {}).get("n_samples")
        label = f"{r.name}" + (f" (n={n})" if n is not None else "")
        for kind, mk in markers.items():
            sel = [(x, y) for x, y, row in zip(xs, ys, r.rows) if row["kind"] == kind]
            if sel:
                ax.plot(*zip(*sel), mk, color=color, ms=10 if kind == "identity" else 6,
                        mfc=color if i % 2 == 0 else "white", mew=1.2,
                        label=label if kind == "identity" else f"{r.name}: {kind}")
        up = r.summary(m)["upright"]
        if up is not None:
            ax.axhline(up, color=color, ls=":", lw=1)
    so3 = [pos[n] for n in order if kinds[n] == "so3"]
    if so3:
        ax.axvspan(min(so3) - 0.5, max(so3) + 0.5, color="0.9", zorder=0)
        ax.text(min(so3) - 0.3, 0.98, "random SO(3)\n(resampled)", transform=ax.get_xaxis_transform(),
                va="top", fontsize=MIN_FONT)
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels([n.replace("grid:", "") for n in order], rotation=90, fontsize=MIN_FONT)
    ax.tick_params(axis="y", labelsize=MIN_FONT + 1)
    ax.set_ylim(y_floor, 1.0)
    ax.set_ylabel(m + (f" (axis from {y_floor:g})" if y_floor else ""))
    ax.set_xlabel("rotation (dotted: upright score)")
    ax.set_title(title or f"{m} per rotation")
    ax.legend(fontsize=MIN_FONT, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _slice(t, axis: int, index: Optional[int]):
    a = t.detach().cpu().float().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, dtype=float)
    while a.ndim > 3:
        if a.shape[0] != 1 and a.ndim == 4:
            a = a.argmax(0) if a.shape[0] > 1 else a[0]  # (K, D, H, W) logits/probabilities -> class map
        else:
            a = a[0]
    if a.ndim != 3:
        raise ValueError(f"expected a volume (D, H, W), (1, D, H, W) or (K, D, H, W), got shape {a.shape}")
    i = a.shape[axis] // 2 if index is None else index
    return np.take(a, i, axis=axis), i


def plot_segmentation_slices(image, label, predictions: Mapping[str, object], path,
                             rotation_name: Optional[str] = None, axis: int = 0,
                             slice_index: Optional[int] = None, num_classes: Optional[int] = None,
                             class_names: Optional[Sequence[str]] = None) -> Path:
    """One slice of a volume: the image, the ground truth, then one panel per prediction (e.g.
    ``{"model upright": p0, "model rotated (mapped back)": p1}`` from
    :func:`equivox.evaluation.predict_rotated`), label maps drawn over the image.

    Args:
        image: ``(C, D, H, W)`` / ``(1, C, D, H, W)`` / ``(D, H, W)`` (first channel shown).
        label, predictions: class maps ``(D, H, W)`` / ``(1, D, H, W)`` or logits ``(K, D, H, W)`` (argmax taken).
        rotation_name: shown in the title. axis, slice_index: which slice (default: the middle one along ``D``).
        num_classes, class_names: the classes (background first) for the colours and the legend (default: the
            class indices found, named by number).
    """
    preds = dict(predictions)
    img = image
    if isinstance(img, torch.Tensor) and img.dim() == 5:
        img = img[0]
    if isinstance(img, torch.Tensor) and img.dim() == 4:
        img = img[0]
    img2, i = _slice(img, axis, slice_index)
    lab2, _ = _slice(label, axis, i)
    pred2 = {k: _slice(v, axis, i)[0] for k, v in preds.items()}
    k = num_classes or (len(class_names) if class_names else 0) or \
        int(max([lab2.max()] + [p.max() for p in pred2.values()])) + 1
    names = list(class_names or []) + [str(c) for c in range(len(class_names or []), k)]
    panels = [("image", None), ("ground truth", lab2)] + list(pred2.items())
    fig = _figure((3.0 * len(panels) + 1.6, 3.6))
    for j, (title, lab) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), j + 1)
        ax.imshow(img2, cmap="gray")
        if lab is not None:
            ax.imshow(np.ma.masked_where(lab == 0, lab), cmap="tab10", vmin=0, vmax=max(k - 1, 1), alpha=0.55,
                      interpolation="nearest")
        ax.set_title(title, fontsize=MIN_FONT)
        ax.axis("off")
    from matplotlib.patches import Patch
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    handles = [Patch(color=cmap(c / max(k - 1, 1)), alpha=0.7, label=names[c]) for c in range(1, k)]
    fig.legend(handles=handles, loc="center right", fontsize=MIN_FONT, title="classes", title_fontsize=MIN_FONT)
    sup = f"slice {i} along axis {'DHW'[axis]}"
    if rotation_name:
        sup += f" - rotation {rotation_name}"
    fig.suptitle(sup, fontsize=MIN_FONT + 1)
    return _save(fig, path, rect=(0, 0, 1 - 1.5 / (3.0 * len(panels) + 1.6), 1))


def plot_equivariance_errors(errors, path, title: Optional[str] = None, threshold: float = 1e-4) -> Path:
    """Bar chart of the relative equivariance error per group element (log scale), one bar set per model, with
    the ``threshold`` below which an element counts as exact (float rounding) drawn as a dashed line.

    ``errors``: a list of :class:`equivox.testing.ElementError`, a dict ``{model name: list of ElementError}``,
    or a dict ``{model name: {element: relative error}}`` (as ``RotationReport.element_errors``). Exact zeros (e.g.
    the identity) cannot be drawn on a log axis: they get no bar but a "0" marker at the axis bottom, and the axis
    spans only the nonzero errors and the threshold."""
    if isinstance(errors, Mapping):
        series: Dict[str, Dict[str, float]] = {}
        for name, errs in errors.items():
            series[str(name)] = dict(errs) if isinstance(errs, Mapping) else {e.element: e.relative for e in errs}
    else:
        series = {"model": {e.element: e.relative for e in errors}}
    if not series or not any(series.values()):
        raise ValueError("plot_equivariance_errors got no errors")
    elements = []
    for s in series.values():
        for e in s:
            if e not in elements:
                elements.append(e)
    values = [float(v) for s in series.values() for v in s.values() if v is not None and np.isfinite(v)]
    positive = [v for v in values if v > 0]
    lo = min(positive + [threshold]) / 10.0
    hi = max(positive + [threshold]) * 10.0
    fig = _figure((max(6.0, 0.3 * len(elements) * max(1, len(series)) ** 0.5 + 2.5), 4.4))
    ax = fig.add_subplot(1, 1, 1)
    w = 0.8 / len(series)
    zero_drawn = False
    for i, (name, s) in enumerate(series.items()):
        xs = np.arange(len(elements)) + (i - (len(series) - 1) / 2) * w
        ys = np.array([float(s.get(e, np.nan)) for e in elements])
        bars = np.where(ys > 0, ys, np.nan)
        ax.bar(xs, bars, width=w, bottom=lo, label=name, color=f"C{i % 10}")
        zeros = xs[ys == 0]
        if len(zeros):
            ax.plot(zeros, np.full(len(zeros), lo * 1.6), "o", mfc="white", color=f"C{i % 10}", ms=5,
                    label=None if zero_drawn else "0 (exactly zero)")
            zero_drawn = True
    ax.axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:g} (float rounding)")
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    ax.set_xticks(range(len(elements)))
    ax.set_xticklabels(elements, rotation=90, fontsize=MIN_FONT)
    ax.tick_params(axis="y", labelsize=MIN_FONT + 1)
    ax.set_ylabel("relative error\nmax|f(gx) - g f(x)| / max|f(x)|", fontsize=MIN_FONT + 1)
    ax.set_title(title or "equivariance error per grid element")
    ax.legend(fontsize=MIN_FONT)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)
