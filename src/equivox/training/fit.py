"""``fit``: train a model described by a :class:`TrainConfig` with PyTorch Lightning; checkpoint loading."""
from __future__ import annotations

import contextlib
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from ..baselines import count_parameters
from ..models import CanonicalizedRole, ModelRequest, checkpoint_spec, get_role, load_model, spec_of
from .config import TrainConfig
from .data import DataInfo, build_datasets, resolve_data_settings
from .plateau import curve_key, plateau_stop_callback, run_curve
from .modules import ClassificationModule, SegmentationModule

__all__ = ["FitResult", "build_model", "check_model_args", "model_class_name", "model_request", "spec_of",
           "warn_if_wide", "canonicalize_from_config", "fit", "make_trainer", "load_checkpoint", "default_precision",
           "atomic_checkpoint_io", "check_output_folder", "created_output_folder", "existing_run",
           "existing_run_message", "set_run_aside", "is_rank_zero", "seed_worker"]


def default_precision() -> str:
    """``"16-mixed"`` when CUDA is available, else ``"32-true"``."""
    return "16-mixed" if torch.cuda.is_available() else "32-true"


def model_class_name(cfg: TrainConfig) -> str:
    """The registered class whose constructor ``cfg.model`` goes to: the equivox network of the task
    (:func:`equivox.models.network_class`) for the built-in roles (before any baseline matching), the model itself
    for a registered model's name, ``cfg.arch`` for a user role."""
    return get_role(cfg.arch).reference_class(cfg.task) or cfg.arch


def check_model_args(cfg: TrainConfig) -> None:
    """Check ``cfg.model`` against the constructor of the class :func:`build_model` builds: an unknown key raises
    ``ValueError`` naming it and the valid ones (nothing is dropped silently); a role whose network takes no
    constructor arguments (``monai_unet``: matched to the equivariant one) refuses any."""
    import inspect

    from ..nets.registry import get_model

    if not cfg.model:
        return
    role = get_role(cfg.arch)
    if not role.takes_options:
        raise ValueError(f"model arguments are for the built network's constructor; arch {cfg.arch!r} is "
                         f"{role.description}, got model: {cfg.model}")
    name = role.reference_class(cfg.task)
    if name is None:  # a user role: its builder gets the arguments as request.options
        return
    params = inspect.signature(get_model(name)).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(cfg.model) - set(params))
    if unknown:
        valid = [k for k, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        raise ValueError(f"unknown model argument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for {name}; "
                         f"valid: {', '.join(valid)}")


def model_request(cfg: TrainConfig, in_channels: int, num_classes: int, group: Optional[str] = None) -> ModelRequest:
    """The :class:`~equivox.models.ModelRequest` of ``cfg``: its task, ``group`` (default ``cfg.model["group"]``
    or ``cfg.group``, which must not be ``"auto"`` here), its sizes (``channels``, ``strides``, ``kernel_size``,
    ``convs_per_level``, and ``hidden_features`` for classification), ``cfg.model`` as options and ``cfg.seed``."""
    sizes: Dict[str, Any] = dict(channels=list(cfg.channels), strides=list(cfg.strides), kernel_size=cfg.kernel_size,
                                 convs_per_level=cfg.convs_per_level)
    if cfg.task == "classify":
        sizes["hidden_features"] = list(cfg.hidden_features)
    return ModelRequest(cfg.task, int(in_channels), int(num_classes),
                        group if group is not None else cfg.model.get("group", cfg.group), sizes,
                        {k: v for k, v in cfg.model.items() if k != "group"}, seed=cfg.seed)


def build_model(cfg: TrainConfig, in_channels: int, num_classes: int) -> nn.Module:
    """The network for ``cfg``, built by the model role ``cfg.arch`` names (:mod:`equivox.models.roles`):
    ``"equivariant"``: ``InvariantClassifier`` (classify: ``(B, C, D, H, W) -> (B, K)``) / ``EquivariantUNet``
    (segment: ``-> (B, K, D, H, W)``) of ``cfg.group``; ``"baseline"``: the trivial-group network with parameters
    matched to that equivariant one (:func:`equivox.baselines.matched_baseline`); ``"plain_compute"``: the
    trivial-group network at its tensor widths; ``"monai_unet"`` / ``"monai"``: a matched MONAI ``UNet`` (segment) /
    ``ResNet`` (classify); the name of a registered model (:mod:`equivox.nets.registry`): that model, given the
    arguments of ``cfg`` its constructor accepts (``spatial_dims``, ``in_channels``, ``out_channels``, ``channels``,
    ``strides``, ``group``, ``kernel_size``, ``convs_per_level``, ``hidden_features``). ``cfg.model`` adds (or
    overrides) any other constructor argument (``head``, ``class_swaps``, ``norm``, ...; unknown keys raise
    ``ValueError``, see :func:`check_model_args`). Seeded by ``cfg.seed``. The model carries its spec
    (:func:`equivox.models.spec_of`) so checkpoints can rebuild it; with ``cfg.canonicalize`` it is put behind the
    canonicalizer :func:`canonicalize_from_config` describes.

    Voxel spacing: ``cfg.group="auto"`` picks the largest group exact for ``cfg.spacing``
    (:func:`equivox.groups.auto_group`, printed with the reason; ``spacing`` required); any other group is checked
    against ``cfg.spacing`` when it is set (:func:`equivox.groups.check_spacing` warns, naming the exact groups)."""
    from ..groups import auto_group, check_spacing

    check_model_args(cfg)
    group = cfg.model.get("group", cfg.group)
    if group == "auto":
        if cfg.spacing is None:
            raise ValueError("group='auto' needs spacing (mm along D, H, W) to choose a group exact for the voxels")
        group, why = auto_group(cfg.spacing)
        print(f"group='auto' -> {group!r}: {why}", flush=True)
    else:
        check_spacing(group, cfg.spacing)
    model = get_role(cfg.arch).build(model_request(cfg, in_channels, num_classes, group))
    if cfg.canonicalize:
        model = canonicalize_from_config(model, cfg, in_channels)
    return model


#: above this many tensor channels at one level a network is reported as unusually wide
WIDE_TENSOR_CHANNELS = 1024


def warn_if_wide(model: nn.Module) -> None:
    """Warn (one line) when an equivox network's tensors are far wider than its ``channels`` argument suggests:
    ``channels`` counts *fields*, each ``field_size`` tensor channels wide (24 for ``octa``), so MONAI channel
    counts such as ``(16, 32, 64, 128, 256)`` copied into an equivox network build 6,144-channel tensors."""
    widths = getattr(model, "tensor_channels", None)
    fields = getattr(model, "channels", None)
    if not widths or not fields or max(widths) < WIDE_TENSOR_CHANNELS:
        return
    factor = max(widths) // max(fields)
    warnings.warn(f"{type(model).__name__}: channels={tuple(fields)} are fields of {factor} tensor channels each "
                  f"(group {getattr(model, 'group', '?')}): tensors up to {max(widths)} channels wide, "
                  f"{count_parameters(model):,} parameters; for a plain CNN's widths divide its channel "
                  f"counts by {factor}", UserWarning, stacklevel=3)


def canonicalize_from_config(model: nn.Module, cfg: TrainConfig, in_channels: int,
                             freeze_model: bool = False) -> nn.Module:
    """``model`` behind the canonicalizer ``cfg`` describes (``canonicalize`` and the ``canonical_*``,
    ``prior_weight`` and ``canonicalizer_*`` keys), seeded by ``cfg.seed + 1`` (the ``canonicalized`` role's
    :meth:`~equivox.models.CanonicalizedRole.wrap`, as the benchmark harness wraps its rows)."""
    ch = tuple(cfg.canonicalizer_channels)
    return CanonicalizedRole.wrap(model, cfg.task, cfg.canonicalize or "octa", cfg.seed, mode=cfg.canonical_mode,
                                  in_channels=in_channels, channels=ch, strides=(2,) * (len(ch) - 1),
                                  input_size=cfg.canonicalizer_input_size, freeze_model=freeze_model,
                                  prior_weight=cfg.prior_weight, sample_in_training=cfg.canonical_sample,
                                  margin=cfg.canonical_margin, temperature=cfg.canonical_temperature,
                                  canonical_pose=cfg.canonical_pose)


def check_output_folder(path) -> Path:
    """Create ``path`` (and parents) and prove it takes a file, before any work is done.

    Raises:
        NotADirectoryError / OSError: one line naming the folder and the cause (not a folder, read-only, full
        disk, no permission).
    """
    import tempfile

    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".equivox-write-test-") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        cls = NotADirectoryError if isinstance(err, NotADirectoryError) else OSError
        raise cls(f"output folder {out} is not writable ({err.strerror or type(err).__name__}); choose another "
                  f"with --out / out_dir") from None
    return out


def is_rank_zero() -> bool:
    """Whether this process owns the output folder: not a DDP worker that Lightning or torchrun started (``RANK``,
    ``LOCAL_RANK``, ``NODE_RANK``, ``SLURM_PROCID`` non-zero). Only it refuses, replaces or cleans up a folder."""
    return all(int(os.environ.get(v, "0") or 0) == 0 for v in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def existing_run(out_dir) -> List[Path]:
    """The files and folders of an earlier run in ``out_dir``: ``checkpoints/*.ckpt`` and ``logs/version_*``
    (empty when there is none)."""
    out = Path(out_dir)
    found: List[Path] = []
    if (out / "checkpoints").is_dir():
        found += sorted(p for p in (out / "checkpoints").iterdir() if p.suffix == ".ckpt")
    if (out / "logs").is_dir():
        found += sorted(p for p in (out / "logs").iterdir() if p.is_dir() and p.name.startswith("version_"))
    return found


def existing_run_message(out_dir, found: List[Path], resume: bool = True) -> str:
    """One line: ``out_dir`` holds a run (naming a few of its files) and the options (``--overwrite``, ``--resume``
    when the folder has a ``last.ckpt`` and ``resume`` is offered, another ``--out``)."""
    out = Path(out_dir)
    names = ", ".join(str(p.relative_to(out)) for p in found[:3]) + (", ..." if len(found) > 3 else "")
    last = out / "checkpoints" / "last.ckpt"
    cont = f", --resume {last} to continue it" if resume and last.is_file() else ""
    return f"output folder {out} already holds a run ({names}); give --overwrite to replace it{cont}, or another --out"


#: prefix of the hidden folder an earlier run waits in while a new run replaces it (see :func:`set_run_aside`)
ASIDE_PREFIX = ".equivox-earlier-run-"


def set_run_aside(out_dir, found: List[Path]) -> Path:
    """Move an earlier run's files (:func:`existing_run`) into a new hidden folder ``out_dir/.equivox-earlier-run-*``
    (renames on the same disk): the new run writes fresh ``last.ckpt`` and ``logs/version_0``. Delete the folder when
    the new run has saved a checkpoint; :func:`created_output_folder` moves the files back when it fails before."""
    import tempfile

    out = Path(out_dir)
    aside = Path(tempfile.mkdtemp(prefix=ASIDE_PREFIX, dir=out))
    for q in found:
        target = aside / q.relative_to(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(q, target)
    return aside


def _restore_aside(out: Path, aside: Path) -> None:
    """Move the files :func:`set_run_aside` put in ``aside`` back to their places in ``out``; remove ``aside``."""
    import shutil

    for sub in sorted(aside.iterdir()):
        for q in sorted(sub.iterdir()):
            (out / sub.name).mkdir(exist_ok=True)
            target = out / sub.name / q.name
            if target.is_dir():  # the failed run's own files of that name (its logs/version_0)
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            os.replace(q, target)
    shutil.rmtree(aside, ignore_errors=True)


_CHECKPOINT_IO = None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_checkpoint_io():
    """A Lightning ``TorchCheckpointIO`` whose ``save_checkpoint`` writes a temporary file in the checkpoint's own
    folder, flushes it to disk and renames it over the target (:func:`equivox.cache.atomic_write`): a kill or a
    full disk during a save leaves the previous checkpoint intact and loadable. (Lightning's default writes
    through a temporary file in the system temp folder and ``shutil.move`` s it, which is a non-atomic copy when
    that folder is on another disk.)"""
    global _CHECKPOINT_IO
    if _CHECKPOINT_IO is None:
        from pytorch_lightning.plugins.io import TorchCheckpointIO

        from ..cache import atomic_write

        class AtomicCheckpointIO(TorchCheckpointIO):
            def save_checkpoint(self, checkpoint, path, storage_options=None):
                if storage_options is not None:
                    raise TypeError("AtomicCheckpointIO.save_checkpoint does not take storage_options")
                atomic_write(path, lambda f: torch.save(checkpoint, f))
                os.chmod(path, 0o666 & ~_umask())  # mkstemp makes 0600 files: give the user's usual mode

        _CHECKPOINT_IO = AtomicCheckpointIO
    return _CHECKPOINT_IO()


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: Lightning's per-worker seeding of ``random`` / numpy / torch, then MONAI's
    ``set_rnd`` on the worker's dataset, so every random transform (rotation augmentation, random crops) draws its
    own stream in each worker instead of a copy of the main process's (reproducible: the seeds follow the loader's
    seeded generator)."""
    from lightning_fabric.utilities.seed import pl_worker_init_function
    from monai.data.utils import set_rnd

    pl_worker_init_function(worker_id)
    info = torch.utils.data.get_worker_info()
    if info is not None:
        set_rnd(info.dataset, seed=info.seed % (2**32 - 1))


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


def epoch_setter_callback():
    """A Lightning callback that calls ``dataset.set_epoch(epoch)`` on training datasets that have it (fresh random
    patches per epoch). Built in a function so that importing this module does not import Lightning."""
    import pytorch_lightning as pl

    class EpochSetter(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            ds = getattr(trainer.train_dataloader, "dataset", None)
            if hasattr(ds, "set_epoch"):
                ds.set_epoch(trainer.current_epoch)

    return EpochSetter()


def interactive() -> bool:
    """Whether progress bars have a terminal to draw in (stderr is a TTY); piped output and log files get one line
    per epoch instead (:func:`epoch_line_callback`)."""
    import sys

    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def epoch_line_callback():
    """A Lightning callback that prints one line per epoch (train loss, validation scores, seconds) to stdout: the
    progress of a run without progress bars (``progress=False``, logs, piped output)."""
    import time

    import pytorch_lightning as pl

    class EpochLines(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            self.t0 = time.time()

        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.sanity_checking or not trainer.is_global_zero:
                return
            m = trainer.callback_metrics
            keys = [k for k in ("train_loss_epoch", "val_loss", "val_acc", "val_dice", "val_auroc") if k in m]
            parts = [f"{k.replace('_epoch', '')} {float(m[k]):.4f}" for k in keys]
            print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: " + ", ".join(parts)
                  + f", {time.time() - getattr(self, 't0', time.time()):.1f} s", flush=True)

    return EpochLines()


def make_trainer(cfg: TrainConfig, out_dir: Path, monitor: str, mode: str):
    """The Lightning ``Trainer`` for ``cfg``: CSVLogger (``out_dir/logs/version_<n>/metrics.csv``), ModelCheckpoint
    (best by ``monitor`` + ``last.ckpt`` in ``out_dir/checkpoints``, written atomically by
    :func:`atomic_checkpoint_io`), progress bar (or, with ``progress=False`` or when stderr is not a terminal, a
    line per epoch), precision, and ``devices`` / ``num_nodes`` / ``strategy`` passed
    through (``"ddp"`` when more than one process)."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint, TQDMProgressBar
    from pytorch_lightning.loggers import CSVLogger

    strategy = cfg.strategy
    multi = (isinstance(cfg.devices, int) and cfg.devices > 1) or cfg.num_nodes > 1 or (
        isinstance(cfg.devices, (list, tuple)) and len(cfg.devices) > 1)
    if strategy == "auto" and multi:
        strategy = "ddp"
    # no versioned names (last-v1.ckpt): last.ckpt is always the newest run's (fit removes an earlier run first)
    ckpt = ModelCheckpoint(dirpath=out_dir / "checkpoints", filename="best-{epoch:02d}-{step}", monitor=monitor,
                           mode=mode, save_top_k=1, enable_version_counter=False)
    # last.ckpt by a checkpoint of its own after every epoch: Lightning >= 2.5's save_last rewrites it only at a new
    # best, so a resumed run would restart from the best epoch, not the last
    last = ModelCheckpoint(dirpath=out_dir / "checkpoints", filename="last", monitor=None, save_top_k=1,
                           enable_version_counter=False)
    callbacks = [ckpt, last, epoch_setter_callback()]
    max_epochs, min_epochs = cfg.epochs, None
    if cfg.until_plateau:  # epochs is the minimum; a resumed run's curve so far counts
        max_epochs, min_epochs = cfg.max_epochs or 3 * cfg.epochs, cfg.epochs
        prior = run_curve(out_dir, curve_key(cfg.task)) if cfg.resume is not None else []
        callbacks.append(plateau_stop_callback(curve_key(cfg.task), prior))
    bars = cfg.progress and interactive()  # bars in a terminal; in logs and pipes a line per epoch instead
    callbacks.append(TQDMProgressBar(refresh_rate=1) if bars else epoch_line_callback())
    return pl.Trainer(
        max_epochs=max_epochs, min_epochs=min_epochs, max_steps=cfg.max_steps, accelerator=cfg.accelerator, devices=cfg.devices,
        num_nodes=cfg.num_nodes, strategy=strategy, precision=cfg.precision or default_precision(),
        logger=CSVLogger(str(out_dir), name="logs"), callbacks=callbacks,
        enable_progress_bar=bars, enable_model_summary=bool(cfg.extra.get("model_summary", cfg.progress)),
        default_root_dir=str(out_dir),
        log_every_n_steps=1, num_sanity_val_steps=0, deterministic=cfg.deterministic,
        plugins=[atomic_checkpoint_io()],
    ), ckpt


def _loader(ds, cfg: TrainConfig, shuffle: bool, batch_size: int):
    from torch.utils.data import DataLoader

    g = torch.Generator().manual_seed(cfg.seed)
    from monai.data import list_data_collate

    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=cfg.num_workers, generator=g,
                      collate_fn=list_data_collate, persistent_workers=cfg.num_workers > 0,
                      worker_init_fn=seed_worker if cfg.num_workers > 0 else None)


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
                                      data_info=data_info)
        monitor, mode, val_bs = "val_loss", "min", max(cfg.batch_size, 32)
    else:
        inferer = None
        if cfg.val_crop is None:
            from monai.inferers import SlidingWindowInferer

            inferer = SlidingWindowInferer(roi_size=(cfg.patch_size,) * 3, sw_batch_size=2, overlap=0.25)
        module = SegmentationModule(model, info.num_classes, cfg.lr, cfg.weight_decay, spec, cfg.to_dict(), inferer,
                                    data_info=data_info)
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


def _tree(folder: Path) -> Dict[Path, Any]:
    """Every path under ``folder`` -> ``None`` (a folder) or ``(mtime_ns, size)`` (a file)."""
    out: Dict[Path, Any] = {}
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            out[Path(root) / d] = None
        for f in files:
            with contextlib.suppress(OSError):
                st = os.stat(Path(root) / f)
                out[Path(root) / f] = (st.st_mtime_ns, st.st_size)
    return out


@contextlib.contextmanager
def created_output_folder(path):
    """:func:`check_output_folder`, and on an error inside the block everything the block wrote into the folder is
    removed again (new files and folders; earlier files are never touched; an earlier run a replacing run had set
    aside, :func:`set_run_aside`, is put back), then the folder and its parents when the block created them: a
    failed run leaves nothing behind. Unless it saved a checkpoint (``checkpoints/*.ckpt`` new or rewritten): then
    the run's files stay (resume from them) and a warning names the newest checkpoint."""
    out = Path(path).absolute()
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    before = _tree(out) if out.is_dir() else {}
    folder = check_output_folder(out)
    try:
        yield folder
    except BaseException as err:
        import shutil

        if not is_rank_zero():  # a DDP worker: the folder is rank 0's to clean up
            raise

        after = _tree(out) if out.is_dir() else {}
        asides = [q for q in after if q.parent == out and q.name.startswith(ASIDE_PREFIX) and q not in before]
        after = {q: st for q, st in after.items() if not any(a in q.parents or a == q for a in asides)}
        saved = [q for q, st in after.items() if st is not None and q.suffix == ".ckpt"
                 and q.parent.name == "checkpoints" and before.get(q) != st]
        if saved:
            for a in asides:  # the failed run did replace the earlier one
                shutil.rmtree(a, ignore_errors=True)
            if not getattr(err, "_equivox_kept", False):
                newest = max(saved, key=lambda q: after[q][0])
                warnings.warn(f"the run failed after saving {newest}: kept its files in {out} (continue with --resume "
                              f"{newest} / resume=..., or remove the folder)", UserWarning, stacklevel=3)
                with contextlib.suppress(Exception):
                    err._equivox_kept = True
            raise
        for q in sorted((q for q in after if q not in before), key=lambda q: -len(q.parts)):
            with contextlib.suppress(OSError):
                q.rmdir() if after[q] is None else q.unlink()  # folders: only when left empty
        for a in asides:  # the earlier run a replacing run had set aside goes back in place
            _restore_aside(out, a)
        if existing != out:
            with contextlib.suppress(OSError):
                out.rmdir()
            parent = out.parent
            while parent != existing and parent.exists():
                try:
                    os.rmdir(parent)
                except OSError:
                    break
                parent = parent.parent
        raise


def load_checkpoint(path, map_location: str = "cpu"):
    """Rebuild the model stored in a checkpoint written by :func:`fit` (any model: see its ``model`` argument), or
    load a model saved with its training settings (``canonicalized.pt`` from ``equivox canonicalize``: a pickled
    model carrying ``equivox_hparams``): :func:`equivox.models.load_model` with ``require_settings=True``.

    Returns ``(model (eval mode), hparams dict)``; ``hparams["config"]`` is the training config as a dict,
    ``hparams["num_classes"]`` the number of classes. Raises ``FileNotFoundError`` / ``ValueError`` naming the file.
    """
    return load_model(path, map_location, require_settings=True)
