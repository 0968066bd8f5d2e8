"""Figures for rotation evaluation (matplotlib, Agg canvas: no display needed). Every function writes a PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from .report import RotationReport

__all__ = ["plot_rotation_scores", "plot_segmentation_slices", "plot_equivariance_errors", "plot_learning_curve",
           "plot_segmentation_overlay"]


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
    are fractions). The legend gives each model's item count ``n``. The title (default: the metric and the models)
    gets a second line naming the models when a given ``title`` does not name them all. Returns the path."""
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
    names = [r.name for r in reports]
    if title is None:
        title = f"{m} per rotation: {', '.join(names)}"
    elif not all(n in title for n in names):
        title = f"{title}\nmodels: {', '.join(names)}"
    ax.set_title(title, fontsize=MIN_FONT + 2)
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


def _classes(k: int, class_names: Optional[Sequence[str]]):
    """``(names, colour of class c)`` for ``k`` classes (background first; tab10 colours)."""
    import matplotlib

    names = list(class_names or [])[:k] + [str(c) for c in range(len(class_names or []), k)]
    cmap = matplotlib.colormaps["tab10"]
    return names, (lambda c: cmap(c / max(k - 1, 1)))


def _draw_labels(ax, img2, lab, k: int, aspect=1.0):
    ax.imshow(img2, cmap="gray", aspect=aspect)
    if lab is not None:
        ax.imshow(np.ma.masked_where(lab == 0, lab), cmap="tab10", vmin=0, vmax=max(k - 1, 1), alpha=0.55,
                  interpolation="nearest", aspect=aspect)
    ax.set_xticks([])
    ax.set_yticks([])


def _class_legend(fig, k: int, names, colour):
    from matplotlib.patches import Patch

    handles = [Patch(color=colour(c), alpha=0.7, label=names[c]) for c in range(1, k)]
    if handles:
        fig.legend(handles=handles, loc="center right", fontsize=MIN_FONT + 1, title="classes",
                   title_fontsize=MIN_FONT + 1)


def plot_segmentation_slices(image, label, predictions: Mapping[str, object], path,
                             rotation_name: Optional[str] = None, axis: int = 0,
                             slice_index: Optional[int] = None, num_classes: Optional[int] = None,
                             class_names: Optional[Sequence[str]] = None, title: Optional[str] = None) -> Path:
    """One slice of a volume as a grid: a first row with the image and the ground truth, then one row per model
    with one column per prediction of it, label maps drawn over the image, and a class legend.

    Args:
        image: ``(C, D, H, W)`` / ``(1, C, D, H, W)`` / ``(D, H, W)`` (first channel shown).
        label: class map ``(D, H, W)`` / ``(1, D, H, W)`` or logits ``(K, D, H, W)`` (argmax taken).
        predictions: ``{model name: {column title: prediction}}`` (rows = models, e.g. columns ``"upright"`` and
            ``"rotated, mapped back"`` from :func:`equivox.evaluation.predict_rotated`), or a flat ``{name:
            prediction}`` (one row each); predictions as ``label``.
        rotation_name: shown in the title. axis, slice_index: which slice (default: the middle one along ``D``).
        num_classes, class_names: the classes (background first) for the colours and the legend (default: the
            class indices found, named by number).
        title: the figure title (e.g. naming the dataset); the slice (and rotation) is added to it.
    """
    rows = {str(name): (dict(v) if isinstance(v, Mapping) else {"prediction": v}) for name, v in predictions.items()}
    img = image
    if isinstance(img, torch.Tensor) and img.dim() == 5:
        img = img[0]
    if isinstance(img, torch.Tensor) and img.dim() == 4:
        img = img[0]
    img2, i = _slice(img, axis, slice_index)
    lab2, _ = _slice(label, axis, i)
    rows2 = {name: {col: _slice(v, axis, i)[0] for col, v in cols.items()} for name, cols in rows.items()}
    found = [lab2.max()] + [p.max() for cols in rows2.values() for p in cols.values()]
    k = num_classes or (len(class_names) if class_names else 0) or int(max(found)) + 1
    names, colour = _classes(k, class_names)
    ncols = max([2] + [len(c) for c in rows2.values()])
    nrows = 1 + len(rows2)
    side, legend_w, label_w = 2.6, 1.9, 0.5
    fig = _figure((label_w + side * ncols + legend_w, side * nrows + 0.9))
    grid = [[None] * ncols for _ in range(nrows)]
    for j, (t, lab) in enumerate([("image", None), ("ground truth", lab2)]):
        ax = grid[0][j] = fig.add_subplot(nrows, ncols, j + 1)
        _draw_labels(ax, img2, lab, k)
        ax.set_title(t, fontsize=MIN_FONT + 2)
    for r, (name, cols) in enumerate(rows2.items(), start=1):
        for j, (col, lab) in enumerate(cols.items()):
            ax = grid[r][j] = fig.add_subplot(nrows, ncols, r * ncols + j + 1)
            _draw_labels(ax, img2, lab, k)
            ax.set_title(col, fontsize=MIN_FONT + 1)
            if j == 0:
                ax.set_ylabel(name, fontsize=MIN_FONT + 2)
    _class_legend(fig, k, names, colour)
    sup = f"slice {i} along axis {'DHW'[axis]}"
    if rotation_name:
        sup += f"; rotation {rotation_name}"
    fig.suptitle(f"{title}\n{sup}" if title else sup, fontsize=MIN_FONT + 4)
    return _save(fig, path, rect=(0, 0, 1 - legend_w / (label_w + side * ncols + legend_w), 1))


def plot_segmentation_overlay(image, mask, path, title: Optional[str] = None,
                              class_names: Optional[Sequence[str]] = None, num_classes: Optional[int] = None,
                              spacing: Optional[Sequence[float]] = None) -> Path:
    """Three orthogonal middle slices of ``image`` (``(D, H, W)``, or with channels last / first: the first one
    shown) with the class map ``mask`` (same ``(D, H, W)``) drawn over it in colour, a class legend (background
    not drawn) and ``title`` (e.g. the input file and the model). ``spacing`` (voxel sizes along D, H, W) keeps
    the slices' proportions. Returns the path."""
    a = np.asarray(image, dtype=float)
    m = np.asarray(mask)
    if m.ndim != 3:
        raise ValueError(f"mask must be a volume (D, H, W), got shape {m.shape}")
    if a.ndim == 4:
        a = a[..., 0] if a.shape[:3] == m.shape else a[0]
    if a.shape != m.shape:
        raise ValueError(f"image shape {a.shape} does not match mask shape {m.shape}")
    k = num_classes or (len(class_names) if class_names else 0) or int(m.max()) + 1
    names, colour = _classes(k, class_names)
    sp = [float(v) for v in (spacing or (1.0, 1.0, 1.0))][:3]
    fig = _figure((3.2 * 3 + 1.9, 3.9))
    for axis in range(3):
        img2, i = _slice(a, axis, None)
        lab2, _ = _slice(m, axis, i)
        rest = [d for d in range(3) if d != axis]
        ax = fig.add_subplot(1, 3, axis + 1)
        _draw_labels(ax, img2, lab2, k, aspect=sp[rest[0]] / sp[rest[1]])
        ax.set_title(f"slice {i} along axis {'DHW'[axis]}", fontsize=MIN_FONT + 2)
        ax.set_xlabel("DHW"[rest[1]], fontsize=MIN_FONT + 1)
        ax.set_ylabel("DHW"[rest[0]], fontsize=MIN_FONT + 1)
    _class_legend(fig, k, names, colour)
    fig.suptitle(title or "predicted mask", fontsize=MIN_FONT + 3)
    return _save(fig, path, rect=(0, 0, 1 - 1.9 / (3.2 * 3 + 1.9), 1))


def _read_metrics(paths) -> Dict[int, Dict[str, float]]:
    """``{epoch: {column: value}}`` from Lightning CSV logs (later files and rows win; step-only rows skipped)."""
    import csv

    out: Dict[int, Dict[str, float]] = {}
    for p in paths:
        with open(p, newline="") as f:
            for row in csv.DictReader(f):
                try:
                    epoch = int(float(row.get("epoch") or ""))
                except ValueError:
                    continue
                for key, v in row.items():
                    if key in ("epoch", "step") or v in (None, ""):
                        continue
                    try:
                        out.setdefault(epoch, {})[key] = float(v)
                    except ValueError:
                        pass
    return out


#: validation scores (0-1) looked for in the logs, in order
SCORE_COLUMNS = ("val_dice", "val_acc", "val_auroc")


def plot_learning_curve(metrics_csv, path, title: Optional[str] = None) -> Path:
    """Training loss per epoch (left axis; the validation loss dashed when logged) and the validation score per
    epoch (right axis, 0 to 1: ``val_dice`` for segmentation, ``val_acc`` for classification) from a run's
    ``logs/version_*/metrics.csv`` (one path or several: a resumed run's versions, in order). Returns the path.

    Raises ``ValueError`` when the logs hold no epoch-level training loss or validation score."""
    paths = [metrics_csv] if isinstance(metrics_csv, (str, Path)) else list(metrics_csv)
    rows = _read_metrics(paths)
    epochs = sorted(rows)
    loss_key = next((c for c in ("train_loss_epoch", "train_loss") if any(c in rows[e] for e in epochs)), None)
    score_key = next((c for c in SCORE_COLUMNS if any(c in rows[e] for e in epochs)), None)
    if loss_key is None and score_key is None:
        raise ValueError(f"no training loss or validation score per epoch in {', '.join(map(str, paths))}")
    fig = _figure((7.5, 4.4))
    ax = fig.add_subplot(1, 1, 1)
    handles = []

    def series(key):
        pts = [(e + 1, rows[e][key]) for e in epochs if key in rows[e]]
        return zip(*pts) if pts else ((), ())

    if loss_key is not None:
        handles += ax.plot(*series(loss_key), "o-", color="C0", label="training loss")
    if any("val_loss" in rows[e] for e in epochs):
        handles += ax.plot(*series("val_loss"), "s--", color="C0", alpha=0.6, label="validation loss")
    ax.set_xlabel("epoch", fontsize=MIN_FONT + 2)
    ax.set_ylabel("loss", fontsize=MIN_FONT + 2)
    ax.set_ylim(bottom=0)
    ax.tick_params(labelsize=MIN_FONT + 1)
    if epochs:
        ax.set_xlim(0.5, epochs[-1] + 1.5)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if score_key is not None:
        ax2 = ax.twinx()
        handles += ax2.plot(*series(score_key), "^-", color="C1", label=f"validation {score_key[4:]}")
        ax2.set_ylim(0.0, 1.0)
        ax2.set_ylabel(f"validation {score_key[4:]} (0-1)", fontsize=MIN_FONT + 2)
        ax2.tick_params(labelsize=MIN_FONT + 1)
    ax.legend(handles=handles, fontsize=MIN_FONT + 1, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
    ax.grid(alpha=0.3)
    ax.set_title(title or "learning curve", fontsize=MIN_FONT + 3)
    return _save(fig, path)


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
