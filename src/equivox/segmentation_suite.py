"""The segmentation suite: :func:`run_segmentation_suite` is :func:`equivox.benchmark.run_segmentation`.

Everything lives in :mod:`equivox.benchmark` (one competitor registry, data path, record schema and report for both
suites); this module keeps the suite's names for ``benchmarks/segmentation.py`` and older scripts.
"""
from .benchmark import COMPETITORS, learning_curve, plot_learning_curves
from .benchmark import run_segmentation as run_segmentation_suite

__all__ = ["COMPETITORS", "learning_curve", "plot_learning_curves", "run_segmentation_suite"]
