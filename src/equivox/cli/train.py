"""``equivox train``: train a model with PyTorch Lightning; its options are :class:`~equivox.config.TrainConfig`'s
fields (generated, :mod:`.config_options`)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional

from ..config import ARCH_CHOICES
from ._common import CLIError, say, user_input
from ._parsing import shown
from .config_options import add_config_options, train_config_from_args

NAME = "train"
CONFIG_HELP = "YAML file of TrainConfig keys, flat or by section (data:, network:, canonicalizer:, trainer:); " \
              "options given on the command line override it"


def add_parser(sub):
    p = sub.add_parser(NAME, help="train a model (equivariant or baseline) on bundled or own data",
                       description="Train with PyTorch Lightning: checkpoints (best + last.ckpt), CSV metrics. "
                                   "Defaults below are TrainConfig's; a --config YAML file overrides them and options "
                                   "override the file.")
    p.add_argument("--config", help=CONFIG_HELP)
    add_config_options(p)
    return p


# ============================================================================================ patch size
#: networks whose spatial sizes must be multiples of prod(strides) (their ``size_multiple``): every built-in model
#: role, and the registered equivox U-Nets by name
_STRIDED_ARCHS = (*ARCH_CHOICES, "EquivariantUNet", "EquivariantMonaiUNet")


def config_size_multiple(cfg) -> Optional[int]:
    """The size multiple of the network ``cfg`` builds (the product of its strides), ``None`` when unknown (a model
    registered from user code)."""
    if cfg.arch not in _STRIDED_ARCHS:
        return None
    strides = (cfg.model or {}).get("strides", cfg.strides) or ()
    try:
        return int(math.prod(int(v) for v in strides))
    except (TypeError, ValueError):
        return None


def _ras_sides(path: str, spacing) -> Optional[List[int]]:
    """Spatial sides of a NIfTI image along the RAS axes, after resampling to ``spacing`` (mm) when given; ``None``
    for other formats."""
    from ..data.medical import is_nifti

    if not is_nifti(path):
        return None
    import nibabel as nib

    img = nib.load(str(path))
    ornt = nib.orientations.io_orientation(img.affine)
    shape, zooms = [0, 0, 0], [1.0, 1.0, 1.0]
    for i in range(3):
        shape[int(ornt[i, 0])], zooms[int(ornt[i, 0])] = int(img.shape[i]), float(img.header.get_zooms()[i])
    if spacing:
        return [max(1, int(round(n * z / float(s)))) for n, z, s in zip(shape, zooms, spacing)]
    return shape


def _training_volume_sides(cfg) -> List[tuple]:
    """``[(shortest side, name)]`` of the training volumes of segmentation config ``cfg`` as training sees them
    (downsampled / resampled): a registered dataset's volumes, or the headers of its own files."""
    from ..data import registered_volumes, split_items
    from ..training.data import dataset_spec, segmentation_file_items

    spec = dataset_spec(cfg)
    if spec is not None:
        vols, _ = registered_volumes(spec, "train", cfg.downsample)
        return [(min(int(n) for n in img.shape[1:]), f"{spec.name} volume {i}") for i, (img, _) in enumerate(vols)]
    items, _, _ = segmentation_file_items(cfg)
    train_items, _ = split_items(items, cfg.seed, cfg.max_train, cfg.max_val)
    out = []
    for it in train_items:
        sides = _ras_sides(it["image"], cfg.spacing)
        if sides is not None:
            out.append((min(sides), Path(it["image"]).name))
    return out


def check_patch_size(cfg, size_multiple: Optional[int]) -> None:
    """Segmentation: ``--patch-size`` must be a multiple of the model's size multiple and not larger than every
    training volume (it would be all padding): one line naming the option, before any training work."""
    if cfg.task != "segment":
        return
    p, m = int(cfg.patch_size), int(size_multiple or 1)
    if m > 1 and p % m:
        lower, upper = p - p % m, p - p % m + m
        raise CLIError(f"--patch-size {p} is not a multiple of the model's size multiple {m} (the product of its "
                       f"strides): use --patch-size {upper}" + (f" or {lower}" if lower else ""))
    sides = _training_volume_sides(cfg)
    if sides and p > max(s for s, _ in sides):
        side, name = max(sides)
        fit = side - side % m
        from ..training.data import dataset_spec

        registered = dataset_spec(cfg) is not None
        how = (f" after downsampling x{cfg.downsample}" if registered and cfg.downsample > 1 else
               f" after resampling to {shown(cfg.spacing)} mm" if cfg.spacing and not registered else "")
        raise CLIError(f"--patch-size {p} is larger than every training volume (the largest, {name}, is {side} voxels "
                       f"along its shortest axis{how}): patches would be mostly padding; use --patch-size "
                       f"{fit if fit else m} or less" + (f" (a multiple of {m})" if m > 1 else ""))


# ============================================================================================ run
def run(args) -> int:
    from ..baselines import count_parameters
    from ..training import fit
    from ..training.data import resolve_data_settings
    from ..training.fit import (check_model_args, created_output_folder, existing_run, existing_run_message,
                                is_rank_zero)

    cfg = train_config_from_args(args)
    cfg.validate_dataset()  # unknown dataset name or wrong task: fail before anything is written
    with user_input():  # the model: section / --model-arg against the network's constructor
        check_model_args(cfg)
    found = existing_run(cfg.out_dir) if cfg.resume is None and not cfg.overwrite and is_rank_zero() else []
    if found:  # a re-run would mix two runs (or silently score the old one): refuse, touching nothing
        raise CLIError(existing_run_message(cfg.out_dir, found))
    try:
        with created_output_folder(cfg.out_dir):  # a failed run leaves no empty folder behind
            cfg, notes = resolve_data_settings(cfg)
            check_patch_size(cfg, config_size_multiple(cfg))
            model = f"{cfg.arch} group={cfg.group} channels={list(cfg.channels)}" + (
                f" model={cfg.model}" if cfg.model else "")
            say(f"equivox train: task={cfg.task} data={cfg.image_dir or cfg.dataset} {model} epochs={cfg.epochs} "
                f"-> {cfg.out_dir}" + (f"\n  data: {'; '.join(notes)}" if notes else ""))
            res = fit(cfg)
    except OSError as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise CLIError(str(err)) from None
    say(f"trained {type(res.model).__name__} ({count_parameters(res.model)} parameters) in {res.seconds:.1f} s, "
        f"{res.global_step} steps")
    say("final metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(res.metrics.items())))
    say(f"best checkpoint: {res.best_checkpoint}\nlast checkpoint: {res.last_checkpoint}\nmetrics: {res.metrics_csv}")
    return 0
