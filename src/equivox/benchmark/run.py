"""Run competitors: train each on upright data with :func:`equivox.training.fit`, score it upright, under every
grid-exact rotation of ``octa`` and under Haar-random SO(3) rotations, and return one record
(:mod:`equivox.benchmark.records`) per (dataset, competitor, train fraction, seed).

The runs are modules of their own, re-exported here: :mod:`.classification_run`, :mod:`.segmentation_run` and
what they share, :mod:`.run_common`.

Classification (:func:`run_classification`), rotation-safe protocol: data stay at their stored resolution (e.g.
32^3); a model that works at a lower ``input_size`` sees the volume through :class:`PooledInput` (average pooling by
an integer factor), so random rotations (and ``augment="so3"`` during training) resample the full-resolution grid
*before* any pooling. ``placement="sphere"`` zero-pads the stored grid by ``3/2`` first, so the bounding sphere of a
centred object fits in the box and no rotation cuts anything off (content lost per rotation is reported either
way). Grid rotations commute with the pooling and padding, so they stay exact. ``so3_protocol="mesh"`` (datasets
that offer their meshes, e.g. ``kicad_parts``) scores the random rotations on test items re-voxelized from the
rotated mesh (:func:`~equivox.benchmark.data.rotated_mesh_grids`: no resampling blur, nothing cut off) instead of
resampled grids; the upright and grid rows are the same under both protocols.

Segmentation (:func:`run_segmentation`): training on random patches of the dataset's training volumes (the
``equivox train`` datasets, same seeds and steps for every competitor), scored on its test volumes, image and
label rotated together (mean foreground Dice; per-class Dice and the validation learning curve are kept too).
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

