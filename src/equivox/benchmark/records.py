"""One record schema for every benchmark row (classification and segmentation).

A record is a JSON-able dict per (dataset, competitor, train fraction, seed) with at least :data:`RECORD_KEYS`:

* what ran: ``dataset``, ``task``, ``model`` (competitor name), ``arch``, ``group``, ``augment``,
  ``train_fraction``, ``seed``, ``n_train``, ``n_test`` (scored items: test shapes, or test volumes), ``params``;
* cost: ``train_seconds``, ``train_steps``, ``eval_seconds``, ``eval_cost`` (forward passes per item);
* scores (``metric``: ``"accuracy"``, ``"auroc"`` or ``"dice"``): ``upright``, ``mean_grid``, ``worst_grid``
  (over the 24 cube rotations), ``worst_grid_split`` (the worst cube rotation free of selection bias:
  :func:`split_worst`), ``mean_so3``, ``worst_so3`` (random SO(3) rotations), ``std_grid``; each a mean
  over the test items of the per-item scores (:func:`scores_from_items`: the statistic the intervals are about;
  for Dice, each volume's mean foreground Dice averaged over volumes), except AUROC (not a mean over items);
* 95 % bootstrap intervals over the test items (:func:`equivox.statistics.record_intervals`): ``upright_ci``,
  ``worst_grid_ci``, ``mean_so3_ci`` (``[low, high]``; ``None`` where the per-item scores do not define the
  metric (AUROC) or the record scores fewer than :data:`MIN_ITEMS` items: then the report's interval over the
  (seed, item) pairs of several seeds is the one to read);
* ``per_item``: ``{rotation name: [score of item 0, item 1, ...]}`` (0/1 correctness or per-volume Dice), so
  paired intervals between any two records can be recomputed (:mod:`equivox.benchmark.report`).
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

__all__ = ["RECORD_KEYS", "SCORE_KEYS", "MIN_ITEMS", "make_record", "scores_from_items", "split_worst"]

#: fewest scored items for a per-record interval (one or two volumes give none: a bootstrap over one item is a
#: zero-width interval that says nothing; the report pools them with the seeds instead)
MIN_ITEMS = 3

SCORE_KEYS = ("upright", "mean_grid", "worst_grid", "worst_grid_split", "mean_so3", "worst_so3")
RECORD_KEYS = ("dataset", "task", "model", "arch", "group", "augment", "train_fraction", "seed", "n_train", "n_test",
               "params", "train_seconds", "train_steps", "eval_seconds", "eval_cost", "metric", *SCORE_KEYS,
               "std_grid", "upright_ci", "worst_grid_ci", "mean_so3_ci", "equivariance_error", "per_item")


def split_worst(matrix) -> np.ndarray:
    """Per-item scores at the worst rotation, with the rotation chosen on the *other* half of the items.

    The minimum over R noisy rotation means is biased low for a model whose rotation scores differ only by noise
    (the minimum of R draws), and not for an exactly invariant one. Cross-fitting removes the bias: the items are
    split into halves by position (even / odd, interleaving a store sorted by class), the worst rotation (lowest
    mean) is chosen on one half and each item of the other half is scored at it, both ways. The result is one
    score per item, so its mean, interval and paired differences are those of an ordinary per-item score.

    Args:
        matrix: ``(N items, R rotations)`` scores (NaN: undefined, skipped in the means).

    Returns:
        ``(N,)`` float64; with one item, its own worst rotation (no other half to choose on).

    Example: rotation scores that are pure noise (no rotation is worse for every item). The minimum of the rotation
    means is 0.5; here the even items' worst rotation (1) is the odd items' best and the other way round, so every
    item is scored 1.0:

        >>> split_worst([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]).tolist()
        [1.0, 1.0, 1.0, 1.0]
        >>> split_worst([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]).tolist()  # rotation 1 worse for all
        [0.0, 0.0, 0.0, 0.0]
    """
    m = np.asarray(matrix, dtype=np.float64)
    n = m.shape[0]
    if m.ndim != 2 or n == 0 or m.shape[1] == 0:
        raise ValueError(f"split_worst needs an (N items, R rotations) matrix with N, R > 0, got shape {m.shape}")
    if n == 1:
        return m[:, [int(np.nanargmin(m[0]))]][:, 0]
    halves = (np.arange(0, n, 2), np.arange(1, n, 2))
    out = np.empty(n)
    for pick, score in (halves, halves[::-1]):
        with np.errstate(all="ignore"):
            means = np.nanmean(m[pick], axis=0)
        out[score] = m[score, int(np.nanargmin(np.where(np.isnan(means), np.inf, means)))]
    return out


def scores_from_items(per_item: Dict[str, list]) -> Dict[str, Any]:
    """:data:`SCORE_KEYS` and ``std_grid`` from per-item scores ``{rotation name: [score per item]}`` (names
    ``"identity"``, ``"grid:..."``, ``"so3:..."``; ``None`` items skipped): each rotation's score is the mean over
    items, the grid and so3 statistics are taken over those means (``None`` where a kind is missing).

    ``worst_grid_split`` is the mean of :func:`split_worst` over the grid columns.

    Example:
        >>> s = scores_from_items({"identity": [1, 0], "grid:a": [1, 0], "grid:b": [0, 0], "so3:0": [1, None]})
        >>> s["upright"], s["mean_grid"], s["worst_grid"], s["worst_grid_split"], s["mean_so3"]
        (0.5, 0.25, 0.0, 0.5, 1.0)

    (``worst_grid_split``: item 0 is scored at item 1's worst rotation, ``a`` (a tie, the first), item 1 at item 0's,
    ``b``.)
    """
    means = {name: float(np.nanmean(np.asarray(v, dtype=np.float64))) for name, v in per_item.items()
             if any(x is not None for x in v)}
    grid = [m for name, m in means.items() if name.startswith("grid:")]
    so3 = [m for name, m in means.items() if name.startswith("so3:")]
    upright = means.get("identity", means.get("grid:[d,h,w]"))
    cols = [[np.nan if x is None else float(x) for x in v] for name, v in per_item.items()
            if name.startswith("grid:") and name in means]
    split = float(np.nanmean(split_worst(np.asarray(cols).T))) if cols else None
    return {"upright": upright, "mean_grid": float(np.mean(grid)) if grid else None,
            "worst_grid": min(grid) if grid else None, "worst_grid_split": split,
            "mean_so3": float(np.mean(so3)) if so3 else None,
            "worst_so3": min(so3) if so3 else None, "std_grid": float(np.std(grid)) if grid else None}


def make_record(*, dataset: str, task: str, comp, report, seed: int, train_fraction: float, n_train: int,
                params: int, train_seconds: float, train_steps: int, eval_seconds: float, **extra: Any) -> Dict:
    """The record of one evaluated competitor: :data:`RECORD_KEYS` from ``comp`` (a
    :class:`~equivox.benchmark.Competitor`) and ``report`` (a :class:`~equivox.evaluation.RotationReport` with
    per-item scores), then ``extra`` keys."""
    from ..statistics import record_intervals

    s = report.summary() if report.metric == "auroc" or not report.per_item else scores_from_items(report.per_item)
    n_test = len(next(iter(report.per_item.values()))) if report.per_item else 0
    ci = (record_intervals(report, seed=seed) if report.metric != "auroc" and n_test >= MIN_ITEMS
          else dict.fromkeys(("upright_ci", "worst_grid_ci", "mean_so3_ci")))
    return {"dataset": dataset, "task": task, "model": comp.name, "arch": comp.arch, "group": comp.model_group,
            "augment": comp.augment, "train_fraction": float(train_fraction), "seed": int(seed),
            "n_train": int(n_train), "n_test": int(n_test), "params": int(params),
            "train_seconds": round(float(train_seconds), 2), "train_steps": int(train_steps),
            "eval_seconds": round(float(eval_seconds), 2), "eval_cost": comp.eval_cost,
            "metric": report.metric, **{k: s.get(k) for k in SCORE_KEYS}, "std_grid": s["std_grid"], **ci,
            "equivariance_error": report.equivariance_error, "canonicalizer": comp.canonicalize,
            **extra, "per_item": report.per_item}
