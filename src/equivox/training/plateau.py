"""When a run has learned what it can: validation learning curves, the plateau rule, and a Lightning callback that
keeps training until the rule holds.

A curve is ``[(global step, validation score)]``, one point per validation (``val_dice`` for segmentation,
``val_acc`` for classification: higher is better). It has reached its plateau when the best score of its last fifth
exceeds the best before it by less than :data:`PLATEAU_GAIN`. With a constant learning rate (AdamW, no schedule)
training on until the rule holds is the same run as one given that many epochs from the start, so a run continued
from its ``last.ckpt`` follows the rule as well as a fresh one.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

__all__ = ["PLATEAU_GAIN", "plateaued", "learning_curve", "run_curve", "curve_key", "plateau_stop_callback"]

#: a validation curve has reached its plateau when its last fifth adds less than this over its best before
PLATEAU_GAIN = 0.01


def plateaued(curve: Sequence[Tuple[int, float]], gain: float = PLATEAU_GAIN) -> Optional[bool]:
    """Whether a learning curve ``[(step, validation score)]`` has flattened: the best score of its last fifth
    (at least one point) exceeds the best before it by less than ``gain``. ``None`` for fewer than 5 points.

    Example:
        >>> plateaued([(1, .2), (2, .5), (3, .6), (4, .605), (5, .604)])
        True
        >>> plateaued([(1, .2), (2, .3), (3, .4), (4, .5), (5, .6)])
        False
    """
    values = [float(v) for _, v in curve if v is not None and not math.isnan(float(v))]
    if len(values) < 5:
        return None
    k = max(1, len(values) // 5)
    return max(values[-k:]) - max(values[:-k]) < gain


def curve_key(task: str) -> str:
    """The logged validation score a task's curve follows: ``val_acc`` (classify) or ``val_dice`` (segment)."""
    return "val_acc" if task == "classify" else "val_dice"


def learning_curve(metrics_csv: Union[None, str, Path, Iterable[Union[str, Path]]],
                   key: str = "val_dice") -> List[Tuple[int, float]]:
    """``[(global step, value)]`` of ``key`` from one Lightning ``metrics.csv`` (one point per validation), or from
    several (a resumed run's versions, in order)."""
    if metrics_csv is None:
        return []
    paths = [metrics_csv] if isinstance(metrics_csv, (str, Path)) else list(metrics_csv)
    out = []
    for path in paths:
        if not Path(path).is_file():
            continue
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get(key):
                    out.append((int(float(row.get("step") or 0)) + 1, float(row[key])))
    return out


def run_csvs(out_dir: Union[str, Path]) -> List[Path]:
    """A run folder's ``logs/version_<n>/metrics.csv`` files in version order (a resumed run adds a version)."""
    return sorted(Path(out_dir).glob("logs/version_*/metrics.csv"),
                  key=lambda p: int(p.parent.name.split("_")[-1]) if p.parent.name.split("_")[-1].isdigit() else -1)


def run_curve(out_dir: Union[str, Path], key: str = "val_dice") -> List[Tuple[int, float]]:
    """The whole validation curve of the run in ``out_dir``: every version of its log (a resumed run continues the
    curve of the run it resumed); a step logged twice keeps its last value."""
    points = dict(learning_curve(run_csvs(out_dir), key))
    return sorted(points.items())


def plateau_stop_callback(key: str, prior: Sequence[Tuple[int, float]] = ()):
    """A Lightning callback that stops training after the first validation at which the curve (``prior``: the points
    of the run this one resumes, then one point of ``key`` per validation) has reached its plateau
    (:func:`plateaued`); the Trainer's ``min_epochs`` holds it off until then. Built in a function so that importing
    this module does not import Lightning."""
    import pytorch_lightning as pl

    class PlateauStop(pl.Callback):
        def __init__(self):
            self.curve = list(prior)

        def on_train_start(self, trainer, pl_module):  # a resumed run whose curve is already flat trains no further
            if plateaued(self.curve) and trainer.current_epoch >= (trainer.min_epochs or 0):
                trainer.should_stop = True

        def on_validation_end(self, trainer, pl_module):
            if trainer.sanity_checking or key not in trainer.callback_metrics:
                return
            step = int(trainer.global_step)  # a run resumed from an earlier epoch logs some steps again
            self.curve = [pt for pt in self.curve if pt[0] != step] + [(step, float(trainer.callback_metrics[key]))]
            if plateaued(self.curve) and trainer.current_epoch + 1 >= (trainer.min_epochs or 0):
                trainer.should_stop = True
                if trainer.is_global_zero:
                    print(f"plateau reached at epoch {trainer.current_epoch + 1}: the last fifth of the {key} curve "
                          f"adds < {PLATEAU_GAIN} over its best before; stopping", flush=True)

    return PlateauStop()
