"""Paired bootstrap statistics over evaluation items (numpy only).

Benchmark numbers (accuracy, Dice, worst case over rotations) are means over a finite set of items, so they carry
sampling noise. Every interval here is a *percentile bootstrap over items*: the items (rows) are resampled with
replacement ``n_boot`` times and the statistic is recomputed on each resample; the interval is the central
``level`` quantile range of those values. Rotations (columns) and seeds are never resampled: they are the
conditions under which the same items were scored.

Inputs (``scores``):

* a 1-D array ``(N,)`` of per-item scores (0/1 correctness, per-volume Dice, ...);
* a 2-D numpy array ``(N items, R rotations)`` of per-item scores under each rotation
  (:meth:`equivox.evaluation.RotationReport.item_matrix`);
* several seeds (models trained with different seeds, scored on the SAME items in the same order): a list or
  tuple of such arrays, one per seed, all the same shape. The items are resampled jointly across seeds (one
  resample of item indices is applied to every seed) and the statistic is the average over seeds of the
  per-seed statistic. A list of numbers is one 1-D array; a list of arrays/lists is a list of seeds (so pass
  an ``(N, R)`` matrix as a numpy array, not as a nested list).

Statistics: ``"mean"``: mean over items (for a matrix: mean over rotations of the per-rotation mean over items);
``"worst"``: minimum over rotations of the per-rotation mean over items. NaN scores (e.g. a volume with no
foreground class) are left out of the mean of their rotation.

Functions: :func:`bootstrap_ci`, :func:`worst_case_ci`, :func:`paired_difference`, :func:`verdict`,
:func:`items_needed`, :func:`record_intervals`.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["bootstrap_ci", "worst_case_ci", "paired_difference", "verdict", "items_needed", "record_intervals",
           "STATISTICS", "DIRECTIONS"]

STATISTICS = ("mean", "worst")
DIRECTIONS = (">=", ">", "<=", "<")
_CHUNK = 256  # bootstrap replicates drawn per block (memory: _CHUNK x N counts)


# ------------------------------------------------------------------------------------------------ internals


def _stack(scores, what: str = "scores") -> np.ndarray:
    """Normalise ``scores`` to a float array ``(S seeds, N items, R columns)``."""
    if isinstance(scores, (list, tuple)) and len(scores) > 0 and all(
            isinstance(s, (np.ndarray, list, tuple)) or (hasattr(s, "shape") and len(getattr(s, "shape")) > 0)
            for s in scores):
        seeds = [np.asarray(s, dtype=np.float64) for s in scores]
    else:
        seeds = [np.asarray(scores, dtype=np.float64)]
    out = []
    for i, a in enumerate(seeds):
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise ValueError(f"{what}: expected per-item scores (N,) or (N items, R rotations) per seed, got shape "
                             f"{a.shape}" + (f" for seed {i}" if len(seeds) > 1 else ""))
        out.append(a)
    shapes = {a.shape for a in out}
    if len(shapes) > 1:
        raise ValueError(f"{what}: all seeds must have the same shape (same items, same rotations), got "
                         f"{sorted(shapes)}")
    stack = np.stack(out)
    if stack.shape[1] == 0 or stack.shape[2] == 0:
        raise ValueError(f"{what}: no items or no rotations (shape {stack.shape[1:]})")
    return stack


def _statistic(counts: np.ndarray, stack: np.ndarray, statistic: str) -> np.ndarray:
    """Statistic for each row of item ``counts`` ``(B, N)`` (how often each item is drawn): ``(B,)``."""
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
    s, n, r = stack.shape
    valid = ~np.isnan(stack)
    filled = np.where(valid, stack, 0.0).transpose(1, 0, 2).reshape(n, s * r)
    num = counts @ filled                                                     # (B, S*R)
    den = counts @ valid.transpose(1, 0, 2).reshape(n, s * r).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        col = (num / den).reshape(-1, s, r)                                   # per-seed, per-rotation means
        per_seed = np.nanmin(col, axis=2) if statistic == "worst" else np.nanmean(col, axis=2)
        return np.nanmean(per_seed, axis=1)


def _count_blocks(n: int, n_boot: int, seed: int):
    """Blocks of bootstrap item counts ``(b, n)``: resampling n items with replacement, deterministic in seed."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_boot:
        b = min(_CHUNK, n_boot - done)
        idx = rng.integers(0, n, size=(b, n))
        flat = (np.arange(b)[:, None] * n + idx).ravel()
        yield np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)
        done += b


def _check(n_boot: int, level: float) -> None:
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < float(level) < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


def _interval(values: np.ndarray, level: float) -> Tuple[float, float]:
    alpha = (1.0 - float(level)) / 2.0
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _bootstrap(stacks: Sequence[np.ndarray], statistic: str, n_boot: int, level: float, seed: int,
               weights: Sequence[float]) -> Tuple[float, float, float]:
    """Point value and percentile interval of ``sum(w * statistic(stack))``, items resampled jointly."""
    _check(n_boot, level)
    n = stacks[0].shape[1]
    ones = np.ones((1, n))
    value = float(sum(w * _statistic(ones, st, statistic)[0] for w, st in zip(weights, stacks)))
    boots = []
    for counts in _count_blocks(n, int(n_boot), int(seed)):
        boots.append(sum(w * _statistic(counts, st, statistic) for w, st in zip(weights, stacks)))
    lo, hi = _interval(np.concatenate(boots), level)
    return value, lo, hi


# ------------------------------------------------------------------------------------------------ intervals


def bootstrap_ci(values, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Tuple[float, float, float]:
    """Mean over items and its percentile bootstrap interval.

    Args:
        values: per-item scores ``(N,)`` (0/1 correctness, per-volume Dice); or ``(N, R)`` numpy array (mean over
            the R rotations of the per-rotation mean); or a list of such arrays, one per seed (same items):
            items resampled jointly across seeds, statistic averaged over seeds.
        n_boot: bootstrap resamples of the N items (with replacement). level: interval coverage.
        seed: seed of the resampling (same seed, same interval).

    Returns:
        ``(mean, low, high)``.

    Example:
        >>> mean, low, high = bootstrap_ci([1] * 50 + [0] * 50)
        >>> mean
        0.5
        >>> abs(low - 0.402) < 0.02 and abs(high - 0.598) < 0.02
        True
    """
    return _bootstrap([_stack(values, "values")], "mean", n_boot, level, seed, [1.0])


def worst_case_ci(matrix, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Tuple[float, float, float]:
    """Worst case over rotations (min over columns of the per-column mean over items) and its bootstrap interval.

    Args:
        matrix: per-item scores ``(N items, R rotations)`` (numpy array), or a list of such matrices, one per seed
            (same items): statistic averaged over seeds.
        n_boot, level, seed: as :func:`bootstrap_ci`. Each resample draws N items (rows) with replacement and
            uses the same rows for every rotation (column) and every seed; the minimum is re-taken on each
            resample, so the interval includes the uncertainty of which rotation is worst.

    Returns:
        ``(value, low, high)``.

    Example:
        >>> import numpy as np
        >>> m = np.ones((40, 3)); m[:20, 1] = 0          # column 1 is worst: mean 0.5
        >>> value, low, high = worst_case_ci(m)
        >>> value, low < 0.5 < high
        (0.5, True)
    """
    return _bootstrap([_stack(matrix, "matrix")], "worst", n_boot, level, seed, [1.0])


def paired_difference(a, b, n_boot: int = 2000, level: float = 0.95, seed: int = 0,
                      statistic: str = "mean") -> Tuple[float, float, float]:
    """Difference ``statistic(a) - statistic(b)`` of two models scored on the same items, paired bootstrap.

    Args:
        a, b: per-item scores of model A and model B on the SAME items in the same order: ``(N,)`` arrays, or
            ``(N, R)`` numpy arrays (for ``statistic="worst"``, or ``"mean"`` over rotations), or lists of those
            (one per seed; a and b may have different numbers of seeds, each side averaged over its seeds).
        statistic: ``"mean"`` or ``"worst"`` (min over rotations of the per-rotation mean).
        n_boot, level, seed: as :func:`bootstrap_ci`. Each resample draws N item indices with replacement and
            applies them to both models (and all seeds, all rotations), so item difficulty cancels out.

    Returns:
        ``(diff, low, high)``; identical inputs give exactly ``(0.0, 0.0, 0.0)``.

    Example:
        >>> better = [1] * 90 + [0] * 10
        >>> worse = [1] * 50 + [0] * 50
        >>> diff, low, high = paired_difference(better, worse)
        >>> round(diff, 2), low > 0
        (0.4, True)
        >>> paired_difference(worse, worse)
        (0.0, 0.0, 0.0)
    """
    sa, sb = _stack(a, "a"), _stack(b, "b")
    if sa.shape[1] != sb.shape[1]:
        raise ValueError(f"paired_difference needs the same items for both models: a has {sa.shape[1]} items, b "
                         f"has {sb.shape[1]}")
    return _bootstrap([sa, sb], statistic, n_boot, level, seed, [1.0, -1.0])


# ------------------------------------------------------------------------------------------------ decisions


def verdict(low: Optional[float], high: Optional[float], threshold: float, direction: str = ">=") -> str:
    """Decide a claim ``value <direction> threshold`` from an interval ``[low, high]``.

    Returns ``"met"`` when every value of the interval satisfies the comparison, ``"missed"`` when every value
    violates it, else ``"unresolved"`` (also for a missing/NaN bound). ``direction``: ``">="``, ``">"``,
    ``"<="`` or ``"<"``.

    Example:
        >>> verdict(0.02, 0.10, 0.0), verdict(-0.3, -0.1, 0.0), verdict(-0.05, 0.1, 0.0)
        ('met', 'missed', 'unresolved')
        >>> verdict(0.1, 0.2, 0.25, "<=")
        'met'
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if low is None or high is None or math.isnan(float(low)) or math.isnan(float(high)):
        return "unresolved"
    low, high, t = float(low), float(high), float(threshold)
    if low > high:
        raise ValueError(f"interval low={low} > high={high}")
    met, missed = {
        ">=": (low >= t, high < t),
        ">": (low > t, high <= t),
        "<=": (high <= t, low > t),
        "<": (high < t, low >= t),
    }[direction]
    return "met" if met else "missed" if missed else "unresolved"


def items_needed(diff: float, low: float, high: float, threshold: float, n_items: int) -> int:
    """Rough number of items for the interval to exclude ``threshold`` (same effect size, same spread).

    The interval's half-width on the side facing the threshold (``diff - low`` when the threshold is below
    ``diff``, ``high - diff`` when above) shrinks like ``1/sqrt(n)``; the answer is the ``n`` at which it equals
    ``|diff - threshold|``: ``ceil(n_items * (half_width / |diff - threshold|)^2)``. At least 1. Returns ``-1``
    when ``diff == threshold`` up to float noise (no number of items separates them). Use it as "unresolved, needs ~N items".

    Example:
        >>> items_needed(0.05, -0.05, 0.15, 0.0, 100)   # half-width 0.10, gap 0.05 -> 4x the items
        400
    """
    if int(n_items) < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    gap = abs(float(diff) - float(threshold))
    if gap < 1e-9 or math.isnan(gap):  # equal up to float noise (0.30 - 0.20 vs 0.10)
        return -1
    half = float(diff) - float(low) if float(threshold) <= float(diff) else float(high) - float(diff)
    half = max(half, 0.0)
    # round the ratio a little first so that float noise (0.1/0.05 = 2.0000000000000004) does not add an item
    return max(1, int(math.ceil(round(int(n_items) * (half / gap) ** 2, 9))))


# ------------------------------------------------------------------------------------------------ reports


def record_intervals(report: Any, seed: int = 0, n_boot: int = 2000, level: float = 0.95) -> Dict[str, Any]:
    """Bootstrap intervals of a :class:`~equivox.evaluation.RotationReport`'s summary numbers from its
    ``per_item`` scores (duck-typed: anything with ``item_matrix(kind)``).

    Returns ``{"upright_ci": [low, high], "worst_grid_ci": [low, high], "mean_so3_ci": [low, high]}``:
    the upright score (identity row), the worst grid rotation (:func:`worst_case_ci` on the grid matrix) and
    the mean over the random SO(3) rotations (:func:`bootstrap_ci` on the so3 matrix). An entry is ``None``
    when the report has no rotation of that kind. Items are resampled; rotations are kept.
    """
    def matrix(kind: str) -> Optional[np.ndarray]:
        m = np.asarray(report.item_matrix(kind), dtype=np.float64)
        return m if m.ndim == 2 and m.shape[0] > 0 and m.shape[1] > 0 else None

    def pair(result) -> List[float]:
        return [result[1], result[2]]

    kw = dict(n_boot=n_boot, level=level, seed=seed)
    up, grid, so3 = matrix("upright"), matrix("grid"), matrix("so3")
    return {
        "upright_ci": None if up is None else pair(bootstrap_ci(up[:, 0], **kw)),
        "worst_grid_ci": None if grid is None else pair(worst_case_ci(grid, **kw)),
        "mean_so3_ci": None if so3 is None else pair(bootstrap_ci(so3, **kw)),
    }
