"""The benchmark harness: one competitor registry, one data path, one record schema and one report for the
accuracy (classification) and segmentation suites, ``equivox demo`` and ``benchmarks/*.py``.

* :mod:`.competitors`: :class:`Competitor`, :data:`COMPETITORS`, :func:`register_competitor` (users' own rows),
  :func:`build_network`;
* :mod:`.data`: :func:`load_classification_data` / :func:`load_segmentation_data` (the ``equivox train`` loaders and
  intensity rules), :func:`nested_fractions`, :func:`rotated_mesh_grids` (the mesh-level SO(3) protocol);
* :mod:`.run`: :func:`run_classification`, :func:`run_segmentation`;
* :mod:`.records`: :data:`RECORD_KEYS` (scores with ``upright_ci``, ``worst_grid_ci``, ``mean_so3_ci`` and
  ``per_item``);
* :mod:`.report`: :func:`format_records` (every score with its 95 % interval), :func:`compare` (paired
  difference, interval, verdict), :func:`save_records`, :func:`plot_records`, :func:`data_efficiency`;
* :mod:`.progress`: :func:`say`, :func:`quiet_lightning`;
* :mod:`.irreps_competitors` (not imported here; import it to add the rows): the ``so3_irreps`` classifier and the
  MELBA-layout irreps U-Net rows.
"""
from .competitors import (ARCHS, CANONICALIZER, COMPETITORS, TRAIN_OPTIONS, BuildContext, Competitor,
                          build_network, competitor_names, get_competitor, register_competitor,
                          unregister_competitor)
from .data import (DATA_EFFICIENCY_FRACTIONS, ClassificationData, SegmentationData, left_right_pairs,
                   load_classification_data, load_segmentation_data, nested_fractions, rotated_mesh_grids,
                   rotated_mesh_labels)
from .progress import quiet_lightning, say
from .records import RECORD_KEYS, SCORE_KEYS, make_record, split_worst
from .report import (MIN_VERDICT_ITEMS, TOO_FEW, compare, data_efficiency, format_records, format_verdicts,
                     machine_info,
                     plot_learning_curves, plot_records, save_records, summarize_records)
from .run import (DEFAULT_COMPETITORS, PLATEAU_GAIN, SO3_PROTOCOLS, PooledInput, learning_curve, plateaued,
                  run_classification, run_segmentation, so3_content_lost)

__all__ = ["ARCHS", "CANONICALIZER", "COMPETITORS", "TRAIN_OPTIONS", "BuildContext", "Competitor", "build_network",
           "competitor_names", "get_competitor", "register_competitor", "unregister_competitor",
           "DATA_EFFICIENCY_FRACTIONS", "ClassificationData", "SegmentationData", "left_right_pairs",
           "load_classification_data",
           "load_segmentation_data", "nested_fractions", "rotated_mesh_grids", "rotated_mesh_labels", "quiet_lightning",
           "say",
           "RECORD_KEYS", "SCORE_KEYS", "split_worst", "MIN_VERDICT_ITEMS", "TOO_FEW", "PLATEAU_GAIN", "plateaued",
           "make_record", "compare", "data_efficiency", "format_records", "format_verdicts", "machine_info",
           "plot_learning_curves", "plot_records", "save_records", "summarize_records", "DEFAULT_COMPETITORS",
           "PooledInput", "learning_curve", "run_classification", "run_segmentation", "so3_content_lost",
           "SO3_PROTOCOLS"]
