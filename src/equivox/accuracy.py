"""The accuracy (classification) suite: :func:`run_suite` is :func:`equivox.benchmark.run_classification`.

Everything lives in :mod:`equivox.benchmark` (one competitor registry, data path, record schema and report for both
suites); this module keeps the suite's names for ``benchmarks/accuracy.py`` and older scripts.
"""
from .benchmark import (COMPETITORS, RECORD_KEYS, ClassificationData, Competitor, PooledInput, format_records,
                        load_classification_data, nested_fractions, plot_records, save_records, so3_content_lost,
                        summarize_records)
from .benchmark import run_classification as run_suite

__all__ = ["COMPETITORS", "RECORD_KEYS", "ClassificationData", "Competitor", "PooledInput", "format_records",
           "load_classification_data", "nested_fractions", "plot_records", "run_suite", "save_records",
           "so3_content_lost", "summarize_records"]
