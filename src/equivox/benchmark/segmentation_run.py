"""The segmentation run of the harness (:func:`run_segmentation`): every competitor trained with
:func:`equivox.training.fit` on random patches of the dataset's training volumes (the ``equivox train`` datasets,
same seeds and steps for every competitor), scored on its test volumes upright, under the grid-exact rotations and
under Haar-random SO(3) rotations, image and label rotated together (mean foreground Dice; per-class Dice and the
validation learning curve are kept too); one record per (dataset, competitor, seed).
"""
from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from ..training.plateau import plateaued
from .competitors import BuildContext, build_network, check_order
from .data import load_segmentation_data, rotated_mesh_labels
from .progress import quiet_lightning, say
from .records import make_record
from .run_common import (DEFAULT_COMPETITORS, SO3_PROTOCOLS, _dataset_files, _evaluate_with_meshes, _fit_head,
                         _pose_rates, _scores_line, _wrap_canonicalizer)

__all__ = ["run_segmentation", "WHOLE_VOLUME_MULTIPLE"]

#: whole test volumes are trimmed to multiples of this, so every U-Net row takes them (MONAI's UNet row has one
#: stride-2 level more than the reference; three levels fit)
WHOLE_VOLUME_MULTIPLE = 8


def _check_label_mesh_protocol(data, test_index, downsample: int, test_crop) -> None:
    """The mesh protocol of a segmentation run needs whole, stored-resolution test volumes, and its rule must
    rebuild the stored labels: test item 0 labelled upright from its mesh must equal its stored label map."""
    from ..data import DataError

    if downsample != 1 or test_crop is not None:
        raise ValueError("so3_protocol='mesh' scores whole test volumes at the stored resolution: use downsample=1 "
                         f"and test_crop=None (got downsample={downsample}, test_crop={test_crop})")
    first = [test_index[0]] if test_index else [0]
    size = int(data.volumes[0]["label"].shape[-1])
    upright = rotated_mesh_labels(data.name, {"up": np.eye(3)}, size, first, verbose=False)["up"][0]
    stored = data.volumes[0]["label"].long()
    if upright.shape != stored.shape or not torch.equal(upright, stored):
        raise DataError(f"dataset {data.name!r}: test mesh {first[0]} labelled upright differs from its stored label "
                        "map; the mesh options must be those the stored labels were built with")


def run_segmentation(dataset: str = "chest_ct", competitors: Sequence[str] = DEFAULT_COMPETITORS,
                     seeds: Sequence[int] = (0,), *, downsample: int = 2, patch_size: int = 24, val_crop: int = 48,
                     test_crop: Union[int, str, None] = "val_crop", channels: Sequence[int] = (2, 4),
                     strides: Sequence[int] = (2,), convs_per_level: int = 2,
                     epochs: int = 20, patches_per_epoch: int = 32, batch_size: int = 16, lr: float = 3e-3,
                     n_random: int = 4, rotation_group: str = "octa", so3_protocol: str = "grid",
                     until_plateau: bool = False, max_epochs: Optional[int] = None, resume: bool = False,
                     max_test: Optional[int] = None, out: Optional[Path] = None,
                     progress: bool = False, verbose: bool = True, keep_models: bool = False) -> Dict:
    """Train and score every segmentation competitor for every seed.

    Args:
        dataset: a registered segmentation dataset (``"chest_ct"``, ``"brain_atlas"``, ...), downsampled by
            ``downsample``.
        competitors: registered names; the ``octa`` ``EquivariantUNet(channels, strides)`` with the default head
            is the reference the plain rows are matched to.
        seeds: one run per seed and competitor (same seed: same initial patches and rotations for all).
        patch_size, val_crop, epochs, patches_per_epoch, batch_size, lr: training (:class:`TrainConfig`; steps =
            ``epochs * patches_per_epoch / batch_size``), best checkpoint by validation loss; a competitor's
            ``train`` options override them (``val_crop``: centre crop of the validation volumes).
        until_plateau, max_epochs: ``epochs`` becomes the minimum and every run trains on until its validation Dice
            curve has reached its plateau (:func:`~equivox.training.plateaued`), at most ``max_epochs`` (default
            ``3 * epochs``): the same rule for every competitor.
        resume: a run whose folder under ``out`` already holds ``checkpoints/last.ckpt`` continues from it (with
            ``until_plateau``: an earlier run brought to its plateau) instead of starting over; rows on a frozen
            model (whose checkpoint also holds that model) always start afresh.
        test_crop: centre crop (cube side) of every scored test volume (default ``"val_crop"``: the validation
            crop); ``None``: whole test volumes, each axis
            centre-trimmed to a multiple of :data:`WHOLE_VOLUME_MULTIPLE` (held-out tiles are scored whole).
        n_random: random SO(3) rotations of the test volumes (seeded by the run's seed).
        so3_protocol: ``"grid"`` resamples image (trilinear) and label (nearest); ``"mesh"`` (datasets offering
            meshes, e.g. ``kicad_part_segments``) labels each test item again from its rotated mesh
            (:func:`~equivox.benchmark.data.rotated_mesh_labels`; needs whole test volumes, ``test_crop=None``).
        max_test: score this many test volumes, evenly spaced over the stored order (stratified for a store
            sorted by family); default all.
        rotation_group: the grid-exact elements scored (``"octa"``: the 24 rotations; ``"full_octa"``: the 48
            rotations and reflections, under which the dataset's left/right labels are swapped for every model).
        out: folder for run outputs; default a temporary folder. keep_models: return ``result["models"]``.

    Returns:
        dict with ``records`` (:data:`~equivox.benchmark.RECORD_KEYS` plus ``upright_dice_<class>``, ``curve`` =
        ``[(step, val Dice)]``, ``head``, ``identity_rate``), ``reports``, ``config``, ``caption``,
        ``models[(name, seed)]`` (``keep_models``), ``volume`` (the first scored volume) and ``class_names``.
    """
    from ..baselines import build_from_spec, count_parameters
    from ..evaluation import evaluate_segmentation, rotation_set
    from ..training import TrainConfig, fit

    quiet_lightning()
    comps = check_order(list(competitors), "segment")
    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="equivox-segmentation-"))
    if test_crop == "val_crop":
        test_crop = val_crop
    if so3_protocol not in SO3_PROTOCOLS:
        raise ValueError(f"so3_protocol must be one of {SO3_PROTOCOLS}, got {so3_protocol!r}")
    data = load_segmentation_data(dataset, downsample, test_crop,
                                  multiple=max(WHOLE_VOLUME_MULTIPLE, math.prod(strides)))
    test_index = None
    if max_test is not None and max_test < len(data.volumes):
        test_index = sorted({int(round(v)) for v in np.linspace(0, len(data.volumes) - 1, max_test)})
        data.volumes = [data.volumes[i] for i in test_index]
    if so3_protocol == "mesh":
        _check_label_mesh_protocol(data, test_index, downsample, test_crop)
    k, c_in = len(data.class_names), data.in_channels
    base_kwargs = dict(spatial_dims=3, in_channels=c_in, out_channels=k, channels=list(channels),
                       strides=list(strides), convs_per_level=convs_per_level)
    reference = build_from_spec({"cls": "EquivariantUNet", "kwargs": {**base_kwargs, "group": "octa"}})
    records, reports, models = [], [], {}
    n_runs, run = len(comps) * len(seeds), 0
    perm = list(range(k))  # what a reflection does to the labels: a property of the data, the same for all
    for left, right in data.class_swaps:
        perm[left], perm[right] = right, left
    for seed in seeds:
        rots = rotation_set("standard", group=rotation_group, n_random=n_random, seed=seed)
        mesh_vols = None
        if so3_protocol == "mesh":
            labels = rotated_mesh_labels(data.name, {r.name: r.matrix_array for r in rots if r.kind == "so3"},
                                         int(data.volumes[0]["label"].shape[-1]), test_index, verbose)
            mesh_vols = {n: [{"image": (lab > 0).float(), "label": lab} for lab in g] for n, g in labels.items()}
        trained: Dict[str, Tuple[nn.Module, float]] = {}
        for comp in comps:
            run += 1
            if comp.tta_of:
                raise ValueError(f"{comp.name!r}: test-time augmentation rows are classification only")
            if comp.frozen_of:
                model = trained[comp.frozen_of][0]
            else:
                model = build_network(comp, BuildContext("segment", c_in, k, "octa", reference, base_kwargs, seed,
                                                         class_swaps=data.class_swaps))
            if comp.canonicalize:
                model = _wrap_canonicalizer(model, comp, "segment", seed)
            opts = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "until_plateau": until_plateau,
                    "max_epochs": max_epochs, **comp.train}
            run_dir = out / f"{dataset}-{comp.name}-s{seed}".replace(" ", "_")
            last = run_dir / "checkpoints" / "last.ckpt"
            # a frozen row's checkpoint holds its frozen model too, which may have trained on: it starts afresh
            if resume and last.is_file() and not comp.frozen_of:
                opts["resume"] = str(last)
            cfg = TrainConfig(task="segment", dataset=dataset, downsample=downsample, patch_size=patch_size,
                              val_crop=val_crop, patches_per_epoch=patches_per_epoch, seed=seed,
                              augment=comp.augment, progress=progress, channels=tuple(channels),
                              strides=tuple(strides), **opts,
                              out_dir=str(run_dir), extra={"model_summary": False})
            if comp.fits:
                say(f"[{run}/{n_runs}] {comp.name}, seed {seed}: training {count_parameters(model)} parameters",
                    verbose)
                res = fit(cfg, model=model)
                model, steps, curve = res.model, res.global_step, res.curve
                seconds = res.seconds + (trained[comp.frozen_of][1] if comp.frozen_of else 0.0)
            else:  # a confidence canonicalizer: nothing to fit (calibrated: its head), the frozen model's cost
                (_, seconds, curve), steps = trained[comp.frozen_of], 0
                val_images = []
                if comp.scorer == "calibrated":
                    from ..training import build_datasets, resolve_data_settings

                    val_images = [item["image"] for item in build_datasets(resolve_data_settings(cfg)[0])[1]]
                seconds += _fit_head(model, comp, val_images, seed, f"[{run}/{n_runs}] {comp.name}, seed {seed}",
                                     verbose)
            trained[comp.name] = (model, seconds, curve)
            t = time.time()
            rep = _evaluate_with_meshes(evaluate_segmentation, model, data.volumes, rots, mesh_vols,
                                        num_classes=k, progress=progress, name=comp.name,
                                        class_names=data.class_names, check_equivariance=True,
                                        class_permutation=perm)
            upright = rep.rows[0]
            identity, equivalent = _pose_rates(model, [v["image"][None] for v in data.volumes])
            rec = make_record(dataset=data.name, task="segment", comp=comp, report=rep, seed=seed,
                              train_fraction=1.0, n_train=patches_per_epoch, params=count_parameters(model),
                              train_seconds=seconds, train_steps=steps, eval_seconds=time.time() - t,
                              head=comp.head, identity_rate=identity, equivalent_rate=equivalent, curve=curve,
                              plateau=plateaued(curve),
                              **{f"upright_{key}": v for key, v in upright.items() if key.startswith("dice_")})
            say(_scores_line(rec) + f", {steps} steps", verbose)
            records.append(rec)
            reports.append(rep)
            if keep_models:
                models[(comp.name, seed)] = model
    config = dict(task="segment", dataset=dataset, competitors=list(competitors), seeds=list(seeds),
                  downsample=downsample, patch_size=patch_size, val_crop=val_crop, test_crop=test_crop,
                  channels=list(channels), strides=list(strides), convs_per_level=convs_per_level, epochs=epochs,
                  until_plateau=until_plateau, max_epochs=max_epochs, resume=resume,
                  patches_per_epoch=patches_per_epoch, batch_size=batch_size, lr=lr, n_random=n_random,
                  rotation_group=rotation_group, so3_protocol=so3_protocol, max_test=max_test,
                  class_swaps=[list(p) for p in data.class_swaps],
                  n_test=len(data.volumes), dataset_files=_dataset_files(data.name), threads=torch.get_num_threads())
    caption = (f"{data.caption}, at {downsample}x the stored spacing: trained on random {patch_size}^3 patches of "
               f"the training volumes; Dice = mean over {k - 1} foreground classes")
    return {"records": records, "reports": reports, "config": config, "caption": caption, "models": models,
            "volume": data.volumes[0], "class_names": data.class_names}
