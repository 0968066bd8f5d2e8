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


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def plot_rotation_scores(reports: Union[RotationReport, Sequence[RotationReport]], path,
                         metric: Optional[str] = None, title: Optional[str] = None) -> Path:
    """Score per rotation, one line + marker set per model: identity (star), grid-exact rotations (circles),
    random SO(3) rotations (triangles), with each model's upright score as a dotted line. Returns the path."""
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
    fig = _figure((max(6.0, 0.22 * len(order) + 2) + 2.5, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    markers = {"identity": "*", "grid": "o", "so3": "^"}
    for i, r in enumerate(reports):
        color = f"C{i % 10}"
        xs = [pos[row["rotation"]] for row in r.rows]
        ys = [np.nan if row.get(m) is None else row[m] for row in r.rows]
        ax.plot(xs, ys, "-", color=color, alpha=0.35, lw=1)
        for kind, mk in markers.items():
            sel = [(x, y) for x, y, row in zip(xs, ys, r.rows) if row["kind"] == kind]
            if sel:
                ax.plot(*zip(*sel), mk, color=color, ms=9 if kind == "identity" else 5,
                        label=f"{r.name} ({kind})" if kind != "identity" else f"{r.name}")
        up = r.summary(m)["upright"]
        if up is not None:
            ax.axhline(up, color=color, ls=":", lw=1)
    so3 = [pos[n] for n in order if kinds[n] == "so3"]
    if so3:
        ax.axvspan(min(so3) - 0.5, max(so3) + 0.5, color="0.9", zorder=0)
        ax.text(min(so3) - 0.3, 1.0, "random SO(3)\n(resampled)", transform=ax.get_xaxis_transform(),
                va="top", fontsize=8)
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels([n.replace("grid:", "") for n in order], rotation=90, fontsize=6)
    ax.set_ylabel(m)
    ax.set_xlabel("rotation")
    ax.set_title(title or f"{m} per rotation")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
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
                             slice_index: Optional[int] = None, num_classes: Optional[int] = None) -> Path:
    """One slice of a volume: the image, the ground truth, then one panel per prediction (e.g.
    ``{"model upright": p0, "model rotated (mapped back)": p1}`` from
    :func:`equivox.evaluation.predict_rotated`), label maps drawn over the image.

    Args:
        image: ``(C, D, H, W)`` / ``(1, C, D, H, W)`` / ``(D, H, W)`` (first channel shown).
        label, predictions: class maps ``(D, H, W)`` / ``(1, D, H, W)`` or logits ``(K, D, H, W)`` (argmax taken).
        rotation_name: shown in the title. axis, slice_index: which slice (default: the middle one along ``D``).
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
    k = num_classes or int(max([lab2.max()] + [p.max() for p in pred2.values()])) + 1
    panels = [("image", None), ("ground truth", lab2)] + list(pred2.items())
    fig = _figure((3.0 * len(panels), 3.4))
    for j, (title, lab) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), j + 1)
        ax.imshow(img2, cmap="gray")
        if lab is not None:
            ax.imshow(np.ma.masked_where(lab == 0, lab), cmap="tab10", vmin=0, vmax=max(k - 1, 1), alpha=0.55,
                      interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    sup = f"slice {i} along axis {'DHW'[axis]}"
    if rotation_name:
        sup += f" - rotation {rotation_name}"
    fig.suptitle(sup, fontsize=9)
    return _save(fig, path)


def plot_equivariance_errors(errors, path, title: Optional[str] = None, floor: float = 1e-12) -> Path:
    """Bar chart of the relative equivariance error per group element (log scale), one bar set per model.

    ``errors``: a list of :class:`equivox.testing.ElementError`, a dict ``{model name: list of ElementError}``,
    or a dict ``{model name: {element: relative error}}`` (as ``RotationReport.element_errors``). Errors below
    ``floor`` (e.g. exact zeros for the identity) are drawn at ``floor``."""
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
    fig = _figure((max(6.0, 0.25 * len(elements) * max(1, len(series)) ** 0.5 + 2), 4.0))
    ax = fig.add_subplot(1, 1, 1)
    w = 0.8 / len(series)
    for i, (name, s) in enumerate(series.items()):
        xs = np.arange(len(elements)) + (i - (len(series) - 1) / 2) * w
        ys = [max(float(s.get(e, np.nan)), floor) for e in elements]
        ax.bar(xs, ys, width=w, label=name, color=f"C{i % 10}")
    ax.set_yscale("log")
    ax.set_xticks(range(len(elements)))
    ax.set_xticklabels(elements, rotation=90, fontsize=6)
    ax.set_ylabel("relative error  max|f(gx) - g f(x)| / max|f(x)|")
    ax.set_title(title or "equivariance error per grid element")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)
