"""Run competitors: train each on upright data with :func:`equivox.training.fit`, score it upright, under every
grid-exact rotation of ``octa`` and under Haar-random SO(3) rotations, and return one record
(:mod:`equivox.benchmark.records`) per (dataset, competitor, train fraction, seed).

The runs are modules of their own, re-exported here: :mod:`.classification_run`, :mod:`.segmentation_run` and
what they share, :mod:`.run_common`.

Their protocols are described where they live: classification (rotation-safe pooling, ``placement``, the mesh
protocol) in :mod:`.classification_run`, segmentation (random training patches, image and label rotated together)
in :mod:`.segmentation_run`.
"""
from __future__ import annotations

from ..training.plateau import PLATEAU_GAIN, learning_curve, plateaued
from .classification_run import PooledInput, _check_mesh_protocol, _geometry, run_classification  # noqa: F401
from .run_common import (DEFAULT_COMPETITORS, SO3_PROTOCOLS, _dataset_files, _evaluate_with_meshes,  # noqa: F401
                         _fit_head, _pose_rates, _scores_line, _wrap_canonicalizer, so3_content_lost)
from .segmentation_run import WHOLE_VOLUME_MULTIPLE, _check_label_mesh_protocol, run_segmentation  # noqa: F401

__all__ = ["run_classification", "run_segmentation", "PooledInput", "so3_content_lost", "learning_curve", "plateaued",
           "PLATEAU_GAIN",
           "DEFAULT_COMPETITORS", "SO3_PROTOCOLS"]

