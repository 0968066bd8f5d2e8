"""Per-rotation score tables: :class:`RotationReport` (save/load, summary) and :func:`compare_reports`."""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

__all__ = ["RotationReport", "compare_reports", "SUMMARY_KEYS"]

SUMMARY_KEYS = ("upright", "mean_grid", "worst_grid", "std_grid", "mean_so3", "worst_so3", "std_so3",
                "gap_grid", "gap_so3")
_BASE_COLUMNS = ("rotation", "kind", "exact")


def _stats(values: List[float]):
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None, None, None
    a = np.asarray(vals, dtype=np.float64)
    return float(a.mean()), float(a.min()), float(a.std())


def _fmt(v, width: int = 10) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return f"{'-':>{width}}"
    if isinstance(v, bool):
        return f"{str(v):>{width}}"
    if isinstance(v, (int, float)):
        return f"{v:>{width}.4f}"
    return f"{str(v):>{width}}"


@dataclass
class RotationReport:
    """Scores of one model on one dataset under a set of rotations.

    Attributes:
        name: model / run name (used as the row label in :func:`compare_reports` and in plots).
        metric: the primary metric column (higher is better), e.g. ``"accuracy"`` or ``"dice"``.
        rows: one dict per rotation: ``{"rotation", "kind", "exact", <metric columns>...}``, in evaluation order.
        equivariance_error: max relative equivariance/invariance error of the model over the grid-exact
            rotations, measured on a batch of the real data (``None`` if not checked).
        element_errors: per-element relative errors behind ``equivariance_error`` (``{element name: error}``).
        meta: free-form information (task, number of samples, device, time, ...), saved with the report.
        per_item: per-item scores behind the primary metric, ``{rotation name: [score of item 0, item 1, ...]}``
            with the same item order for every rotation (classification: 0/1 correctness; segmentation: mean
            foreground Dice of each volume, ``None`` where the volume has no foreground class). ``None`` when not
            recorded (older reports, CSV). Used by :mod:`equivox.statistics` (bootstrap intervals) through
            :meth:`item_matrix`.
    """

    name: str
    metric: str
    rows: List[Dict[str, Any]] = field(default_factory=list)
    equivariance_error: Optional[float] = None
    element_errors: Optional[Dict[str, float]] = None
    meta: Dict[str, Any] = field(default_factory=dict)
    per_item: Optional[Dict[str, List[float]]] = None

    # ---------------------------------------------------------------- numbers
    @property
    def metric_columns(self) -> List[str]:
        cols: List[str] = []
        for r in self.rows:
            for k in r:
                if k not in _BASE_COLUMNS and k not in cols:
                    cols.append(k)
        return cols

    def scores(self, kind: Optional[str] = None, metric: Optional[str] = None) -> List[float]:
        """Values of ``metric`` (default: the primary one) for rows of ``kind`` (all rows if ``None``)."""
        m = metric or self.metric
        return [r.get(m) for r in self.rows if kind is None or r["kind"] == kind]

    def summary(self, metric: Optional[str] = None) -> Dict[str, Optional[float]]:
        """Summary of ``metric`` (default: primary):

        * ``upright``: score on the unrotated data (the ``identity`` row, else the grid identity element);
        * ``mean_grid`` / ``worst_grid`` (minimum) / ``std_grid`` (population std) over the grid-exact rotations;
        * ``mean_so3`` / ``worst_so3`` / ``std_so3`` over the random (resampled) rotations;
        * ``gap_grid = upright - mean_grid`` and ``gap_so3 = upright - mean_so3`` (score lost to rotation).

        Missing parts are ``None``. Grid statistics of an exactly equivariant model have ``std_grid`` ~ 0.
        """
        m = metric or self.metric
        upright = None
        for r in self.rows:
            if r["kind"] == "identity":
                upright = r.get(m)
                break
        if upright is None:
            for r in self.rows:
                if r["kind"] == "grid" and r["rotation"] == "grid:[d,h,w]":
                    upright = r.get(m)
                    break
        mg, wg, sg = _stats(self.scores("grid", m))
        ms, ws, ss = _stats(self.scores("so3", m))
        gap = lambda mean: None if upright is None or mean is None else float(upright) - mean  # noqa: E731
        return {"upright": None if upright is None else float(upright), "mean_grid": mg, "worst_grid": wg,
                "std_grid": sg, "mean_so3": ms, "worst_so3": ws, "std_so3": ss,
                "gap_grid": gap(mg), "gap_so3": gap(ms)}

    def item_matrix(self, kind: str = "grid") -> np.ndarray:
        """Per-item scores for the rotations of ``kind`` as a float array ``(N items, R rotations)``.

        ``kind``: ``"grid"`` or ``"so3"`` (the rows of that kind, in row order), ``"identity"``, or ``"upright"``
        (one column: the ``identity`` row, else the grid identity element ``grid:[d,h,w]``, as in
        :meth:`summary`). Missing scores (``None``) become NaN. A kind with no rows gives shape ``(N, 0)``.
        Raises ``ValueError`` when the report has no :attr:`per_item` or a row of ``kind`` has no entry in it.

        Example:
            >>> rows = [{"rotation": "grid:a", "kind": "grid", "exact": True, "accuracy": 0.5},
            ...         {"rotation": "grid:b", "kind": "grid", "exact": True, "accuracy": 1.0}]
            >>> r = RotationReport("m", "accuracy", rows, per_item={"grid:a": [1, 0], "grid:b": [1, 1]})
            >>> r.item_matrix("grid").tolist()
            [[1.0, 1.0], [0.0, 1.0]]
        """
        if self.per_item is None:
            raise ValueError(f"report {self.name!r} has no per-item scores (per_item is None); re-run the "
                             f"evaluation with a version that records them")
        if kind == "upright":
            names = [r["rotation"] for r in self.rows if r["kind"] == "identity"][:1]
            if not names:
                names = [r["rotation"] for r in self.rows
                         if r["kind"] == "grid" and r["rotation"] == "grid:[d,h,w]"][:1]
        elif kind in ("identity", "grid", "so3"):
            names = [r["rotation"] for r in self.rows if r["kind"] == kind]
        else:
            raise ValueError(f"item_matrix kind must be 'upright', 'identity', 'grid' or 'so3', got {kind!r}")
        missing = [nm for nm in names if nm not in self.per_item]
        if missing:
            raise ValueError(f"report {self.name!r}: no per-item scores for rotation(s) {missing}")
        lengths = {len(v) for v in self.per_item.values()}
        if len(lengths) > 1:
            raise ValueError(f"report {self.name!r}: per-item lists have different lengths {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        cols = [[np.nan if v is None else float(v) for v in self.per_item[nm]] for nm in names]
        if not cols:
            return np.zeros((n, 0), dtype=np.float64)
        return np.asarray(cols, dtype=np.float64).T

    # ---------------------------------------------------------------- text
    def table(self, columns: Optional[Sequence[str]] = None) -> str:
        """A fixed-width text table: one line per rotation, then the summary of the primary metric."""
        cols = list(columns) if columns is not None else self.metric_columns
        width = max([len("rotation")] + [len(str(r["rotation"])) for r in self.rows]) + 2
        cw = max([10] + [len(c) + 1 for c in cols])
        lines = [f"{self.name}  (metric: {self.metric})"]
        if self.equivariance_error is not None:
            lines[0] += f"  equivariance error (grid, relative): {self.equivariance_error:.2e}"
        lines.append(f"{'rotation':<{width}}{'kind':<10}{'exact':<7}" + "".join(f"{c:>{cw}}" for c in cols))
        for r in self.rows:
            lines.append(f"{str(r['rotation']):<{width}}{r['kind']:<10}{str(bool(r['exact'])):<7}"
                         + "".join(_fmt(r.get(c), cw) for c in cols))
        s = self.summary()
        lines.append("summary: " + "  ".join(f"{k}={_fmt(v, 0).strip()}" for k, v in s.items()))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    # ---------------------------------------------------------------- files
    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "metric": self.metric, "rows": self.rows,
                "equivariance_error": self.equivariance_error, "element_errors": self.element_errors,
                "meta": self.meta, "summary": self.summary(), "per_item": self.per_item}

    def to_json(self, path) -> Path:
        """Write the report (rows, summary, equivariance error, meta, per-item scores) as JSON; returns the
        path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=_json_default))
        return path

    @classmethod
    def from_json(cls, path) -> "RotationReport":
        """Load a report written by :meth:`to_json`."""
        path = Path(path)
        try:
            d = json.loads(path.read_text())
            return cls(name=d["name"], metric=d["metric"], rows=list(d["rows"]),
                       equivariance_error=d.get("equivariance_error"), element_errors=d.get("element_errors"),
                       meta=d.get("meta") or {}, per_item=d.get("per_item"))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a RotationReport JSON file ({e})") from e

    def to_csv(self, path) -> Path:
        """Write one CSV line per rotation (columns ``rotation, kind, exact, <metrics>``); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        cols = list(_BASE_COLUMNS) + self.metric_columns
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            for r in self.rows:
                w.writerow({c: r.get(c, "") for c in cols})
        return path

    @classmethod
    def from_csv(cls, path, name: Optional[str] = None, metric: Optional[str] = None) -> "RotationReport":
        """Read rows written by :meth:`to_csv` (name and metric are not in the CSV: pass them)."""
        path = Path(path)
        rows = []
        with path.open(newline="") as f:
            for r in csv.DictReader(f):
                row: Dict[str, Any] = {"rotation": r.pop("rotation"), "kind": r.pop("kind"),
                                       "exact": r.pop("exact") == "True"}
                for k, v in r.items():
                    row[k] = float(v) if v not in ("", None) else None
                rows.append(row)
        cols = [c for c in rows[0] if c not in _BASE_COLUMNS] if rows else []
        return cls(name=name or path.stem, metric=metric or (cols[0] if cols else "score"), rows=rows)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def compare_reports(reports: Sequence[RotationReport], metric: Optional[str] = None) -> str:
    """Side-by-side summary table, one row per report (model): upright score, mean / worst / std over the grid
    rotations and over the random SO(3) rotations, the gaps, and the equivariance error when measured."""
    reports = list(reports)
    if not reports:
        raise ValueError("compare_reports needs at least one RotationReport")
    width = max([len("model")] + [len(r.name) for r in reports]) + 2
    keys = list(SUMMARY_KEYS)
    m = metric or reports[0].metric
    lines = [f"metric: {m}", f"{'model':<{width}}" + "".join(f"{k:>11}" for k in keys) + f"{'equiv_err':>11}"]
    for r in reports:
        s = r.summary(m)
        err = f"{r.equivariance_error:>11.1e}" if r.equivariance_error is not None else f"{'-':>11}"
        lines.append(f"{r.name:<{width}}" + "".join(_fmt(s[k], 11) for k in keys) + err)
    return "\n".join(lines)
