"""The Lightning machinery of a run: the ``Trainer`` for a :class:`TrainConfig` (:func:`make_trainer`: logger,
best / last checkpoints written atomically, plateau stop, progress bars or a line per epoch, precision, DDP), its
callbacks, and the seeded data loaders (:func:`seed_worker`)."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .config import TrainConfig
from .plateau import curve_key, plateau_stop_callback, run_curve

__all__ = ["default_precision", "atomic_checkpoint_io", "seed_worker", "epoch_setter_callback", "interactive",
           "epoch_line_callback", "make_trainer"]


def default_precision() -> str:
    """``"16-mixed"`` when CUDA is available, else ``"32-true"``."""
    return "16-mixed" if torch.cuda.is_available() else "32-true"


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
