"""``fit``: train a model described by a :class:`TrainConfig` with PyTorch Lightning; checkpoint loading.

The run itself lives here (:func:`fit`, :class:`FitResult`, :func:`load_checkpoint`); what it is made of is
re-exported from its modules: the model (:mod:`.build`), the output folder (:mod:`.run_folder`) and the Lightning
trainer and loaders (:mod:`.trainer`)."""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from ..models import checkpoint_spec, get_role, load_model, spec_of
from .build import (WIDE_TENSOR_CHANNELS, build_model, canonicalize_from_config, check_model_args,  # noqa: F401
                    model_class_name, model_request, warn_if_wide)
from .config import TrainConfig
from .data import DataInfo, build_datasets, resolve_data_settings
from .modules import ClassificationModule, SegmentationModule
from .plateau import curve_key, run_curve
from .run_folder import (ASIDE_PREFIX, check_output_folder, created_output_folder, existing_run,  # noqa: F401
                         existing_run_message, is_rank_zero, set_run_aside)
from .trainer import (_loader, _umask, atomic_checkpoint_io, default_precision, epoch_line_callback,  # noqa: F401
                      epoch_setter_callback, interactive, make_trainer, seed_worker)

__all__ = ["FitResult", "build_model", "check_model_args", "model_class_name", "model_request", "spec_of",
           "warn_if_wide", "canonicalize_from_config", "fit", "make_trainer", "load_checkpoint", "default_precision",
           "atomic_checkpoint_io", "check_output_folder", "created_output_folder", "existing_run",
           "existing_run_message", "set_run_aside", "is_rank_zero", "seed_worker"]


@dataclass
class FitResult:
    """What :func:`fit` produced: the trained ``model`` (eval mode, best weights loaded when a best checkpoint
    exists), the Lightning ``module`` and ``trainer``, data ``info``, paths, final ``metrics`` and seconds.
    ``skipped_files`` maps each input file skipped as unusable to the reason (also warned about); ``curve`` is the
    validation curve ``[(global step, val_dice or val_acc)]`` of the whole run (a resumed run's earlier epochs too)."""

    model: nn.Module
    module: Any
    trainer: Any
    info: DataInfo
    out_dir: Path
    best_checkpoint: Optional[Path]
    last_checkpoint: Optional[Path]
    metrics_csv: Optional[Path]
    metrics: Dict[str, float]
    seconds: float
    global_step: int
    skipped_files: Dict[str, str] = field(default_factory=dict)
    curve: List[Tuple[int, float]] = field(default_factory=list)


def fit(cfg: TrainConfig, model: Optional[nn.Module] = None, train_data=None, val_data=None,
        info: Optional[DataInfo] = None) -> FitResult:
    """Train ``model`` (default: :func:`build_model` from ``cfg``) on ``cfg``'s data (or the given datasets).

    Args:
        cfg: the configuration; ``cfg.out_dir`` receives ``checkpoints/`` (``best-*.ckpt``, ``last.ckpt``),
            ``logs/version_<n>/metrics.csv`` (one row per logged step/epoch; a resumed run adds a version and keeps
            the earlier log) and ``logs/version_<n>/hparams.yaml``. A folder that already holds a run (and is not
            being resumed) is started afresh, with a one-line warning unless ``cfg.overwrite`` (``equivox train``
            refuses such a folder without ``--overwrite``): that run's ``checkpoints/*.ckpt`` and ``logs/version_*``
            are set aside when training starts (after the data and model are ready), deleted when it ends, and put
            back when it fails before saving a checkpoint; so ``last.ckpt`` is always the newest run's.
            Checkpoints hold the config with what the data decided (:func:`~equivox.training.resolve_data_settings`:
            absolute data paths, the intensity rule, the group) and ``data_info`` (class names, channels, spacing),
            and are written with the user's umask.
            A run that fails before saving a checkpoint leaves nothing behind: what it wrote is removed, and the
            output folder too when the run created it; one that fails later keeps its checkpoints (to resume from)
            and says so in a warning.
        model: any ``nn.Module`` with the task's shapes (classify: ``(B, C, D, H, W) -> (B, K)``; segment:
            ``-> (B, K, D, H, W)``); its checkpoints load back with :func:`load_checkpoint` (so ``equivox
            evaluate``, ``predict`` and ``check-equivariance`` take them): an equivox network built from a spec or
            directly records its constructor arguments (:func:`spec_of`); any other model (MONAI's, a user's, a
            wrapper such as a canonicalized plain model) is stored with its pickled architecture
            (``model_spec["cls"] == "pickled"``; its class must be importable where the checkpoint is loaded).
        train_data, val_data, info: datasets of ``{"image", "label"}`` dicts or ``(image, label)`` tuples and their
            :class:`DataInfo`; default :func:`equivox.training.build_datasets`.

    Training is seeded (``seed_everything(cfg.seed)``, seeded shuffling); ``cfg.resume`` continues from a
    checkpoint (epoch and global step continue; train for more ``epochs`` than the checkpoint had).
    Returns a :class:`FitResult`.
    """
    import pytorch_lightning as pl

    t0 = time.time()
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.resume is not None and not Path(cfg.resume).is_file():
        raise FileNotFoundError(f"checkpoint to resume from not found: {cfg.resume}")
    with created_output_folder(cfg.out_dir) as out_dir:  # before loading data; what a failed run wrote is removed
        return _fit(cfg, out_dir, model, train_data, val_data, info, t0)


def _set_earlier_run_aside(cfg: TrainConfig, out_dir: Path) -> Optional[Path]:
    """An earlier run in ``out_dir`` (not when resuming) moved aside (:func:`set_run_aside`), with a warning unless
    ``cfg.overwrite``; ``None`` when there is none."""
    found = existing_run(out_dir) if cfg.resume is None and is_rank_zero() else []
    if not found:
        return None
    if not cfg.overwrite:
        names = ", ".join(str(q.relative_to(out_dir)) for q in found[:3]) + (", ..." if len(found) > 3 else "")
        warnings.warn(f"output folder {out_dir} holds an earlier run ({names}): this run replaces it, so that "
                      "last.ckpt is this run's (overwrite=True does this without a warning; use another out_dir to "
                      "keep it)", UserWarning, stacklevel=4)
    return set_run_aside(out_dir, found)


def _item_shape(data) -> Optional[List[int]]:
    """The spatial shape of the first item of a dataset of ``{"image", ...}`` dicts or ``(image, label)`` pairs
    (``None`` when it cannot be read without side effects: not indexable, empty)."""
    try:
        item = data[0]
        x = item["image"] if isinstance(item, dict) else item[0]
        return [int(v) for v in tuple(x.shape)[1:]]
    except (TypeError, IndexError, KeyError, AttributeError):
        return None


def _fit(cfg, out_dir, model, train_data, val_data, info, t0) -> FitResult:
    if train_data is None or val_data is None or info is None:
        cfg, _ = resolve_data_settings(cfg)
        train_data, val_data, info = build_datasets(cfg)
    skipped = dict(info.extra.get("skipped_files", {})) if isinstance(info.extra, dict) else {}
    if skipped:
        warnings.warn(f"{len(skipped)} unusable input file(s) were skipped (each named in a warning above); "
                      "set strict to fail instead", UserWarning, stacklevel=2)
    if model is None:
        model = build_model(cfg, info.in_channels, info.num_classes)
    warn_if_wide(model)
    try:  # its spec, or (no registered name rebuilds it) its pickled architecture
        spec, skeleton = checkpoint_spec(model)
    except Exception as err:  # noqa: BLE001  (whatever pickling raises: weights-only checkpoints)
        spec, skeleton = None, None
        warnings.warn(f"{type(model).__name__} cannot be pickled ({type(err).__name__}: {err}); its checkpoints "
                      "hold the weights only (load them into the model with load_state_dict)".splitlines()[0],
                      UserWarning, stacklevel=3)
    data_info = {"class_names": list(info.class_names), "in_channels": int(info.in_channels),
                 **{k: v for k, v in (info.extra or {}).items() if k != "skipped_files"}}
    if cfg.task == "classify" and "input_shape" not in data_info:
        data_info["input_shape"] = _item_shape(val_data)  # what the model takes (the benchmark pools inside it)
    if cfg.task == "classify":
        module = ClassificationModule(model, info.num_classes, cfg.lr, cfg.weight_decay, spec, cfg.to_dict(),
                                      data_info=data_info, compile=cfg.compile)
        monitor, mode, val_bs = "val_loss", "min", max(cfg.batch_size, 32)
    else:
        inferer = None
        if cfg.val_crop is None:
            from monai.inferers import SlidingWindowInferer

            inferer = SlidingWindowInferer(roi_size=(cfg.patch_size,) * 3, sw_batch_size=2, overlap=0.25)
        module = SegmentationModule(model, info.num_classes, cfg.lr, cfg.weight_decay, spec, cfg.to_dict(), inferer,
                                    data_info=data_info, compile=cfg.compile)
        monitor, mode, val_bs = "val_loss", "min", 1
    module._skeleton = skeleton
    aside = _set_earlier_run_aside(cfg, out_dir)  # only now: a bad dataset or model leaves it untouched
    trainer, ckpt = make_trainer(cfg, out_dir, monitor, mode)
    trainer.fit(module, _loader(train_data, cfg, True, cfg.batch_size), _loader(val_data, cfg, False, val_bs),
                ckpt_path=cfg.resume)
    if aside is not None:  # replaced: the earlier run goes (on a failure created_output_folder puts it back)
        import shutil

        shutil.rmtree(aside, ignore_errors=True)
    best = Path(ckpt.best_model_path) if ckpt.best_model_path else None
    last = out_dir / "checkpoints" / "last.ckpt"
    if best is not None and best.is_file():
        state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.as_tensor(v).numel() == 1}
    csv = Path(trainer.logger.log_dir) / "metrics.csv"
    if cfg.plots and is_rank_zero():
        _learning_curve(cfg, out_dir, model)
    model = module.model.cpu().eval()
    return FitResult(model, module, trainer, info, out_dir, best, last if last is not None and last.is_file() else None,
                     csv if csv.is_file() else None, metrics, time.time() - t0, int(trainer.global_step), skipped,
                     run_curve(out_dir, curve_key(cfg.task)))


def _learning_curve(cfg: TrainConfig, out_dir: Path, model: nn.Module) -> Optional[Path]:
    """``learning_curve.png`` in ``out_dir`` from the run's ``logs/version_*/metrics.csv`` (all versions: a resumed
    run's earlier epochs too); a plot that cannot be drawn is a warning, not a failed run."""
    from ..evaluation.plots import plot_learning_curve

    csvs = sorted((out_dir / "logs").glob("version_*/metrics.csv"),
                  key=lambda q: int(q.parent.name.split("_")[-1]) if q.parent.name.split("_")[-1].isdigit() else -1)
    data = cfg.dataset if cfg.image_dir is None else cfg.image_dir
    role = get_role(cfg.arch)
    kind = f" ({cfg.group})" if role.name == "equivariant" else "" if role.reference_class(cfg.task) == cfg.arch \
        else f" ({cfg.arch})"
    title = f"{'/'.join(Path(str(data)).parts[-2:]) if cfg.image_dir else Path(str(data)).name or data} " \
            f"({cfg.task}): {type(model).__name__}{kind}"
    if cfg.canonicalize:
        title += f" behind a {cfg.canonicalize} canonicalizer"
    try:
        return plot_learning_curve(csvs, out_dir / "learning_curve.png", title=title)
    except Exception as err:  # noqa: BLE001  (the checkpoints are written; the plot is an extra)
        warnings.warn(f"learning_curve.png not written ({type(err).__name__}: {err})".splitlines()[0], UserWarning,
                      stacklevel=3)
        return None


def load_checkpoint(path, map_location: str = "cpu"):
    """Rebuild the model stored in a checkpoint written by :func:`fit` (any model: see its ``model`` argument), or
    load a model saved with its training settings (``canonicalized.pt`` from ``equivox canonicalize``: a pickled
    model carrying ``equivox_hparams``): :func:`equivox.models.load_model` with ``require_settings=True``.

    Returns ``(model (eval mode), hparams dict)``; ``hparams["config"]`` is the training config as a dict,
    ``hparams["num_classes"]`` the number of classes. Raises ``FileNotFoundError`` / ``ValueError`` naming the file.
    """
    return load_model(path, map_location, require_settings=True)
