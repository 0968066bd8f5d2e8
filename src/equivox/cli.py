"""Command line interface: ``equivox train | canonicalize | evaluate | predict | demo | check-equivariance | data``.

Every command has ``--help``. ``train`` and ``demo`` read a YAML file via ``--config`` whose keys are
:class:`equivox.training.TrainConfig` fields (flags given on the command line win over the file; a ``model:``
section and repeated ``--model-arg key=value`` give any constructor argument of the network). Bad arguments
and missing data end with exit code 2 and one line ``equivox: error: ...`` naming the problem (``--debug`` shows
the traceback instead).
"""
from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["main", "build_parser", "train_config_from_args", "CLIError", "parse_model_args"]


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


def _say(msg: str = "") -> None:
    from .benchmark.progress import say

    say(msg)


def _quiet_libraries() -> None:
    """Hide Lightning banners and third-party deprecation chatter (progress bars and results stay)."""
    from .benchmark.progress import quiet_lightning

    quiet_lightning()
    logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)  # a DICOM plugin notice
    for mod in ("pytorch_lightning", "lightning_fabric", "torchmetrics", "monai", "escnn", "torch"):
        warnings.filterwarnings("ignore", module=mod)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as one line ``equivox: <Category>: <message>`` (no source line)."""
    return f"equivox: {category.__name__}: {' '.join(str(message).split())}\n"


# ============================================================================================ arguments
def _names(text: str) -> List[str]:
    vals = [v.strip() for v in str(text).split(",")]
    if not all(vals):
        raise argparse.ArgumentTypeError(f"expected comma-separated non-empty names, got {text!r}")
    return vals


def _ints(text: str) -> List[int]:
    try:
        vals = [int(v) for v in str(text).replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    return vals


def _bool(text: str) -> bool:
    if str(text).lower() in ("1", "true", "yes", "on"):
        return True
    if str(text).lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _floats3(text: str):
    try:
        vals = tuple(float(v) for v in str(text).replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 1 or 3 comma-separated numbers (mm), got {text!r}") from None
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3 or min(vals) <= 0:
        raise argparse.ArgumentTypeError(f"expected 1 or 3 positive comma-separated numbers (mm), got {text!r}")
    return vals


def parse_model_args(pairs: Sequence[str]) -> Dict[str, Any]:
    """``["head=oriented", "class_swaps=[[1, 2]]"]`` -> ``{"head": "oriented", "class_swaps": [[1, 2]]}`` (values
    parsed as YAML). Raises ``ValueError`` for an item without ``=``."""
    import yaml

    out: Dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = str(pair).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--model-arg expects key=value (value as YAML, e.g. head=oriented or "
                             f"\"class_swaps=[[1, 2]]\"), got {pair!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError(f"--model-arg {pair!r}: the value is not valid YAML") from None
    return out


def _devices(text: str):
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"devices must be an integer or 'auto', got {text!r}") from None


# TrainConfig fields exposed as flags: (flag, field, type, help)
_TRAIN_FLAGS = [
    ("--task", "task", str, "classify or segment"),
    ("--dataset", "dataset", str, "a registered dataset name (see 'equivox data list'), a .npz file, a mesh "
                                  "folder or a Decathlon folder"),
    ("--image-dir", "image_dir", str, "segmentation: folder of image NIfTI files (with --label-dir; implies --task "
                                      "segment)"),
    ("--label-dir", "label_dir", str, "segmentation: folder of label NIfTI files, same names as the images"),
    ("--num-classes", "num_classes", int, "number of classes (segmentation: including background)"),
    ("--class-names", "class_names", _names,
     "segmentation folder pair: class names, background first, comma-separated (e.g. background,liver,tumour)"),
    ("--input-size", "input_size", int, "classification: reduce grids to this cube side"),
    ("--max-train", "max_train", int, "subsample the training split to this many items"),
    ("--max-val", "max_val", int, "subsample the validation split"),
    ("--patch-size", "patch_size", int, "segmentation training patch side"),
    ("--patches-per-epoch", "patches_per_epoch", int, "segmentation: random patches per epoch"),
    ("--val-crop", "val_crop", int, "segmentation: validate on a centre crop of this side"),
    ("--downsample", "downsample", int, "bundled segmentation volumes: shrink by this integer factor"),
    ("--intensity", "intensity", str, "NIfTI intensity normalisation: auto (default: ct when the training images "
                                      "span HU, i.e. min < -500 and max > 500, else mri), ct (HU window "
                                      "-1000..1000 -> [0, 1]), mri (per-volume z-score) or none (as stored)"),
    ("--spacing", "spacing", _floats3, "NIfTI: resample to this voxel spacing in mm, D,H,W or one value "
                                       "(default: keep the stored voxels, spacing read from the headers)"),
    ("--resize", "resize", str, "classification: how grids reach --input-size: auto (pool, zero-padding first "
                                "when the side does not divide, e.g. 28 -> 32 -> 16), pool, pad or crop"),
    ("--augment", "augment", str, "none, grid (random exact grid rotations) or so3 (random resampled rotations)"),
    ("--arch", "arch", str, "equivariant, baseline (trivial group, matched parameters), monai_unet, or a "
                            "registered model name (e.g. EquivariantMonaiUNet)"),
    ("--group", "group", str, "symmetry group (octa, full_octa, ico, so3, ..., trivial), with field options in "
                              "parentheses (e.g. 'so3_irreps(irreps=4x0e+2x1o+1x2e, filter_lmax=3)'), or auto: the "
                              "largest group exact for the voxel spacing"),
    ("--channels", "channels", _ints, "hidden fields per level, e.g. 2,4"),
    ("--strides", "strides", _ints, "downsampling factors between levels, e.g. 2"),
    ("--convs-per-level", "convs_per_level", int, "convolutions per level"),
    ("--canonicalize", "canonicalize", str, "put the model behind an exactly equivariant canonicalizer over this "
                                            "group's grid rotations (e.g. octa; none: off), trained with it"),
    ("--canonical-mode", "canonical_mode", str, "canonicalizer mode: hard (one forward), frame or soft (averaged)"),
    ("--canonical-margin", "canonical_margin", float, "frame mode: average the poses scoring within this of the top"),
    ("--canonical-temperature", "canonical_temperature", float, "soft mode: softmax temperature of the pose weights"),
    ("--canonical-pose", "canonical_pose", _bool, "true: principal-axes pose before the canonicalizer (cubic "
                                                  "classification inputs: invariant to any rotation up to "
                                                  "resampling)"),
    ("--prior-weight", "prior_weight", float, "weight of the canonicalizer's prior toward the identity"),
    ("--canonical-sample", "canonical_sample", _bool, "true (default): train on poses drawn from the "
                                                      "canonicalizer's softmax; false: its top pose"),
    ("--canonicalizer-channels", "canonicalizer_channels", _ints, "canonicalizer fields per level, e.g. 2,4"),
    ("--canonicalizer-input-size", "canonicalizer_input_size", int, "side of the pooled copy the canonicalizer "
                                                                    "sees"),
    ("--epochs", "epochs", int, "training epochs"),
    ("--max-steps", "max_steps", int, "stop after this many optimiser steps (-1: no limit)"),
    ("--batch-size", "batch_size", int, "batch size"),
    ("--lr", "lr", float, "AdamW learning rate"),
    ("--weight-decay", "weight_decay", float, "AdamW weight decay"),
    ("--seed", "seed", int, "random seed (weights, data order, augmentation)"),
    ("--num-workers", "num_workers", int, "DataLoader worker processes"),
    ("--devices", "devices", _devices, "devices per node (int or auto); >1 uses DDP"),
    ("--num-nodes", "num_nodes", int, "number of nodes (multi-node DDP, e.g. under torchrun/SLURM)"),
    ("--strategy", "strategy", str, "Lightning strategy (auto -> ddp when several devices)"),
    ("--accelerator", "accelerator", str, "auto, cpu or gpu"),
    ("--precision", "precision", str, "Lightning precision (default: 16-mixed with CUDA, else 32-true)"),
    ("--resume", "resume", str, "checkpoint to resume from (continues epochs and global step)"),
]


_OVERWRITE_HELP = ("start afresh when the output folder already holds a run: remove its checkpoints/*.ckpt and "
                   "logs/version_* first (YAML overwrite: true; default: off, such a folder is refused)")


def _add_train_flags(p: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    for flag, dest, typ, help_ in _TRAIN_FLAGS:
        if dest not in skip:
            p.add_argument(flag, dest=dest, type=typ, default=None, help=help_)
    if "model" not in skip:
        p.add_argument("--model-arg", dest="model_args", action="append", default=None, metavar="KEY=VALUE",
                       help="any constructor argument of the network, value as YAML (repeatable), e.g. "
                            "--model-arg head=oriented --model-arg 'class_swaps=[[1, 2]]'; merged over the YAML "
                            "model: section; unknown keys are errors")
    if "strict" not in skip:
        p.add_argument("--strict", dest="strict", action="store_const", const=True, default=None,
                       help="fail on the first unusable file of a mesh folder instead of skipping it with a warning")


_CHECKPOINT_HELP = ("checkpoint from 'equivox train' or 'equivox canonicalize' (its .ckpt files or canonicalized.pt; "
                    "the demo's and benchmark's run checkpoints too)")


def build_parser() -> argparse.ArgumentParser:
    """The ``equivox`` argument parser (sub-commands: train, evaluate, demo, check-equivariance, data)."""
    parser = argparse.ArgumentParser(prog="equivox", description="Rotation-equivariant 3D CNNs: train, evaluate "
                                     "under rotations, check equivariance, manage bundled data.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("train", help="train a model (equivariant or baseline) on bundled or own data",
                       description="Train with PyTorch Lightning: checkpoints (best + last.ckpt), CSV metrics.")
    p.add_argument("--config", help="YAML file of TrainConfig keys (flags override it)")
    p.add_argument("--out", dest="out_dir", default=None, help="output folder (default outputs/train); a folder "
                   "that already holds a run is refused unless --overwrite or --resume")
    p.add_argument("--overwrite", dest="overwrite", action="store_const", const=True, default=None,
                   help=_OVERWRITE_HELP)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_train_flags(p)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint under rotations (table, JSON, CSV, plots)",
                       description="Score a checkpoint written by 'equivox train' upright, under the grid rotations "
                                   "and under random SO(3) rotations.")
    p.add_argument("checkpoint", help=_CHECKPOINT_HELP)
    p.add_argument("--dataset", default=None, help="dataset (default: the one the checkpoint was trained on)")
    p.add_argument("--image-dir", dest="image_dir", default=None,
                   help="segmentation: score every image of this folder (with --label-dir; same names), prepared "
                        "as in training (spacing, intensity from the checkpoint)")
    p.add_argument("--label-dir", dest="label_dir", default=None, help="segmentation: the label folder for --image-dir")
    p.add_argument("--crop", type=int, default=None,
                   help="segmentation with --image-dir: score a centre crop of this side (to bound memory); default: "
                        "whole volumes (padded to the model's size multiple, one direct forward per rotation)")
    p.add_argument("--split", default=None, choices=["train", "val", "test"],
                   help="split to score (default: test for classification; segmentation scores val only)")
    p.add_argument("--rotations", default="standard", choices=["standard", "identity", "grid", "so3"],
                   help="rotation set (standard = identity + grid + n random SO(3))")
    p.add_argument("--group", default=None, help="group whose grid elements are used (default: the model's, or octa)")
    p.add_argument("--n-random", type=int, default=8, help="number of random SO(3) rotations")
    p.add_argument("--max-items", type=int, default=None, help="score at most this many items")
    p.add_argument("--batch-size", type=int, default=32, help="evaluation batch size")
    p.add_argument("--seed", type=int, default=0, help="seed of the random rotations / subsampling")
    p.add_argument("--out", default="outputs/evaluate", help="output folder")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")

    p = sub.add_parser("predict", help="predict masks (segmentation) or classes (classification) for new scans",
                       description="Apply a checkpoint from 'equivox train' to new data with the training run's "
                                   "preprocessing (orientation, spacing, intensity rule). Segmentation: "
                                   "sliding-window inference, one NIfTI mask <name>_seg.nii.gz per image with the "
                                   "input's affine and voxel grid (--probabilities: <name>_prob.nii.gz). "
                                   "Classification: predictions.csv with the class and every class probability.")
    p.add_argument("checkpoint", help=_CHECKPOINT_HELP)
    p.add_argument("files", nargs="*", help="input files (images / volumes)")
    p.add_argument("--image-dir", dest="image_dir", default=None, help="folder of input images")
    p.add_argument("--out", required=True, help="output folder (inputs are never replaced)")
    p.add_argument("--probabilities", action="store_true", help="segmentation: also write class probabilities")
    p.add_argument("--intensity", default=None, choices=["auto", "ct", "mri", "none"],
                   help="override the checkpoint's intensity rule (default: the training run's)")
    p.add_argument("--overlap", type=float, default=0.25, help="sliding-window overlap (segmentation)")
    p.add_argument("--batch-size", type=int, default=2, help="windows (segmentation) / volumes per batch")

    p = sub.add_parser("demo", help="the main demo: equivariant model vs plain CNNs under rotations",
                       description="Train an octa-equivariant model, a parameter-matched plain CNN, the plain CNN "
                                   "with rotation augmentation and the plain CNN behind an exactly equivariant "
                                   "canonicalizer on bundled real data (upright), evaluate all four "
                                   "upright / under the 24 cube rotations / under random SO(3) rotations, print the "
                                   "comparison and save plots, JSON and CSV.")
    p.add_argument("--task", dest="demo_task", default="classify", choices=["classify", "segment"],
                   help="classify: furniture shapes (9 classes; --dataset lidc for LIDC nodules); segment: metal in "
                        "KiCad parts (--dataset chest_ct for chest CT organs, upright scans) (default: classify)")
    p.add_argument("--dataset", default=None, choices=["furniture", "lidc", "kicad_part_segments", "chest_ct"],
                   help="bundled dataset (default: furniture for classify, kicad_part_segments for segment)")
    p.add_argument("--quick", action="store_true", help="a seconds-long version (tiny data and models)")
    p.add_argument("--out", default=None, help="output folder (default outputs/demo-classify or demo-segment)")
    p.add_argument("--config", help="YAML file of settings overriding the demo's preset")
    p.add_argument("--n-random", type=int, default=None, help="random SO(3) rotations to evaluate")
    p.add_argument("--max-test", type=int, default=None, help="classification: test items to score")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_train_flags(p, skip=("task", "dataset", "image_dir", "label_dir", "arch", "resume", "num_classes", "model"))

    p = sub.add_parser("canonicalize", help="fit a canonicalizer for a trained model, leaving its weights untouched",
                       description="Put a trained model (equivox checkpoint, MONAI bundle folder, a .pt of "
                                   "torch.save(model)) behind an exactly equivariant canonicalizer and fit only the "
                                   "canonicalizer on upright training data: the result is exactly invariant "
                                   "(classify) or equivariant (segment) under the group's grid rotations. Prints the "
                                   "preprocessing, upright and worst-rotation scores on the validation data before "
                                   "and after, and the identity rate; writes canonicalized.pt and checkpoints, which "
                                   "evaluate, predict and check-equivariance take. Data flags as 'equivox train' (an "
                                   "equivox checkpoint brings its own).")
    p.add_argument("model", help="trained model: .ckpt from 'equivox train', a MONAI bundle folder, or a .pt file "
                                 "(torch.save(model))")
    p.add_argument("--config", help="YAML file of TrainConfig keys (flags override it)")
    p.add_argument("--out", dest="out_dir", default=None, help="output folder (default outputs/canonicalize); a "
                   "folder that already holds a run is refused unless --overwrite")
    p.add_argument("--overwrite", dest="overwrite", action="store_const", const=True, default=None,
                   help=_OVERWRITE_HELP + "; canonicalized.pt too")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_train_flags(p, skip=("arch", "resume", "group", "channels", "strides", "convs_per_level", "model"))

    p = sub.add_parser("check-equivariance", help="measure a model's equivariance error per group element",
                       description="Build a model (or load a checkpoint), feed a random cube and its rotations, print "
                                   "the per-element relative error table and save a bar plot.")
    p.add_argument("--checkpoint", default=None, help="checkpoint from 'equivox train' or 'equivox canonicalize' "
                   "(.ckpt or canonicalized.pt), or any model file 'equivox canonicalize' reads (else a fresh model)")
    p.add_argument("--model", default="unet", choices=["unet", "classifier"], help="fresh model kind")
    p.add_argument("--group", default="octa", help="group of the fresh model, field options allowed (e.g. "
                                                    "'so3_irreps(filter_lmax=3)')")
    p.add_argument("--elements", default=None, help="group whose grid elements are checked (default: the model's)")
    p.add_argument("--channels", type=_ints, default=[2, 2], help="hidden fields per level of the fresh model")
    p.add_argument("--strides", type=_ints, default=[2], help="strides of the fresh model")
    p.add_argument("--size", type=int, default=16, help="side of the random input cube")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the input")
    p.add_argument("--out", default="outputs/check-equivariance", help="output folder for the plot and JSON")

    p = sub.add_parser("data", help="registered datasets: list, info, build",
                       description="List the registered datasets (bundled ones with sizes; licences), show one, or "
                                   "rebuild a bundled one with its data_scripts/build_*.py script (repository "
                                   "checkout only).")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True
    dsub.add_parser("list", help="list registered datasets",
                    description="List the registered datasets with task, size, availability and licence.")
    q = dsub.add_parser("info", help="details of one dataset", description="Details and provenance of one dataset.")
    q.add_argument("name", help="dataset name or alias (see 'equivox data list')")
    q = dsub.add_parser("build", help="rebuild a dataset with its data_scripts/build_*.py",
                        description="Run data_scripts/build_<name>.py (needs a repository checkout and the source "
                                    "package named in the dataset's provenance).")
    q.add_argument("name", help="dataset name (see 'equivox data list')")
    q.add_argument("script_args", nargs=argparse.REMAINDER, help="arguments passed to the script")

    p = sub.add_parser("nnunet", help="nnU-Net v2: derive an equivariant configuration in nnU-Net plans",
                       description="nnU-Net v2 integration (needs pip install equivox[nnunet]); see docs/nnunet.md.")
    nsub = p.add_subparsers(dest="nnunet_command", metavar="ACTION")
    nsub.required = True
    q = nsub.add_parser("plans", help="add <configuration>_equivox to a dataset's nnUNetPlans.json",
                        description="Add an equivariant configuration that inherits from a planned one (same "
                                    "preprocessed data) to $nnUNet_preprocessed/DatasetXXX_*/nnUNetPlans.json; then "
                                    "run nnUNetv2_train N <configuration>_equivox FOLD unchanged.")
    q.add_argument("--dataset-id", dest="dataset_id", default=None, help="dataset id (e.g. 4) or DatasetXXX_Name")
    q.add_argument("--configuration", default="3d_fullres", help="planned 3D configuration to derive from")
    q.add_argument("--group", default=None, help="group (default: from the plan: --cube-group if isotropic, an "
                                                  "axial group if anisotropic)")
    q.add_argument("--cube-group", dest="cube_group", default="octa", help="group for isotropic plans (octa, "
                                                                           "full_octa, ...)")
    q.add_argument("--keep", default="width", choices=["width", "params"],
                   help="features -> fields: keep nnU-Net's tensor width (default) or its parameter count")
    q.add_argument("--name", default=None, help="name of the new configuration (default <configuration>_equivox)")
    q.add_argument("--plans", default="nnUNetPlans", help="plans identifier (file stem)")
    q.add_argument("--plans-file", dest="plans_file", default=None, help="edit this plans JSON file directly")
    q.add_argument("--preprocessed", default=None, help="nnU-Net preprocessed folder (default $nnUNet_preprocessed)")
    q.add_argument("--keep-patch", dest="keep_patch", action="store_true",
                   help="keep a planned patch the group does not map onto itself")
    q.add_argument("--dry-run", dest="dry_run", action="store_true", help="check and print, write nothing")
    return parser


# ============================================================================================ train
def train_config_from_args(args: argparse.Namespace, base: Optional[Dict[str, Any]] = None):
    """:class:`~equivox.training.TrainConfig` from defaults < ``base`` < YAML ``--config`` < command-line flags.
    ``--image-dir`` / ``--label-dir`` (an image/label folder pair) imply ``--task segment`` when no task is given."""
    from .training import TrainConfig, load_yaml_config

    d: Dict[str, Any] = dict(base or {})
    if getattr(args, "config", None):
        d.update(load_yaml_config(args.config))
    for _, dest, _, _ in _TRAIN_FLAGS:
        v = getattr(args, dest, None)
        if v is not None:
            d[dest] = v
    if "task" not in d and (d.get("image_dir") is not None or d.get("label_dir") is not None):
        d["task"] = "segment"  # an image/label folder pair is segmentation data: the task is implied
    if getattr(args, "model_args", None):
        model = dict(d.get("model") or {})
        model.update(parse_model_args(args.model_args))
        d["model"] = model
    if getattr(args, "strict", None):
        d["strict"] = True
    if getattr(args, "overwrite", None):
        d["overwrite"] = True
    if getattr(args, "out_dir", None) is not None:
        d["out_dir"] = args.out_dir
    if getattr(args, "no_progress", False):
        d["progress"] = False
    return TrainConfig.from_dict(d)


def _cmd_train(args) -> int:
    from .baselines import count_parameters
    from .training import fit
    from .training.data import resolve_data_settings
    from .training.fit import (check_model_args, created_output_folder, existing_run, existing_run_message,
                               is_rank_zero)

    cfg = train_config_from_args(args)
    cfg.validate_dataset()  # unknown dataset name or wrong task: fail before anything is written
    check_model_args(cfg)
    found = existing_run(cfg.out_dir) if cfg.resume is None and not cfg.overwrite and is_rank_zero() else []
    if found:  # a re-run would mix two runs (or silently score the old one): refuse, touching nothing
        raise CLIError(existing_run_message(cfg.out_dir, found))
    try:
        with created_output_folder(cfg.out_dir):  # a failed run leaves no empty folder behind
            cfg, notes = resolve_data_settings(cfg)
            model = f"{cfg.arch} group={cfg.group} channels={list(cfg.channels)}" + (
                f" model={cfg.model}" if cfg.model else "")
            _say(f"equivox train: task={cfg.task} data={cfg.image_dir or cfg.dataset} {model} epochs={cfg.epochs} "
                 f"-> {cfg.out_dir}" + (f"\n  data: {'; '.join(notes)}" if notes else ""))
            res = fit(cfg)
    except OSError as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise CLIError(str(err)) from None
    _say(f"trained {type(res.model).__name__} ({count_parameters(res.model)} parameters) in {res.seconds:.1f} s, "
         f"{res.global_step} steps")
    _say("final metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(res.metrics.items())))
    _say(f"best checkpoint: {res.best_checkpoint}\nlast checkpoint: {res.last_checkpoint}\nmetrics: {res.metrics_csv}")
    return 0


# ============================================================================================ canonicalize
def _val_items(val) -> list:
    return [val[i] for i in range(len(val))]


def _rotation_report(model, items, cfg, num_classes: int, rots, name: str, progress: bool):
    """``model``'s scores on the validation ``items`` under ``rots``, its equivariance error measured too."""
    from .evaluation import evaluate_classification, evaluate_segmentation

    if cfg.task == "classify":
        return evaluate_classification(model, items, rots, batch_size=max(cfg.batch_size, 32), num_classes=num_classes,
                                       progress=progress, name=name, check_equivariance=True)
    return evaluate_segmentation(model, items, rots, num_classes=num_classes, progress=progress, name=name,
                                 check_equivariance=True)


def _upright_and_worst(rep, group: str) -> str:
    """``accuracy upright 0.812, worst of the 24 octa rotations 0.406 (grid:[h,-d,w])``."""
    summary = rep.summary()
    grid = [r for r in rep.rows if r["kind"] == "grid" and r.get(rep.metric) is not None]
    up = summary["upright"]
    text = f"{rep.metric} upright {'-' if up is None else f'{up:.3f}'}"
    if grid:
        worst = min(grid, key=lambda r: r[rep.metric])
        text += f", worst of the {len(grid)} {group} rotations {worst[rep.metric]:.3f} ({worst['rotation']})"
    return text


def _identity_count(model, items) -> tuple:
    """``(k, n)``: how many of the ``n`` upright validation items the canonicalizer maps to the identity."""
    import torch

    k = n = 0
    with torch.no_grad():
        for item in items:
            x = item["image"] if isinstance(item, dict) else item[0]
            x = (x.as_tensor() if hasattr(x, "as_tensor") else torch.as_tensor(x))[None].float()
            k += int((model.choices(x) == model.identity_index).sum())
            n += len(x)
    return k, n


def _preprocessing(cfg, notes: List[str], info, from_checkpoint: bool) -> str:
    """The data preparation a canonicalize run applied, as one phrase."""
    parts = list(notes)
    if cfg.task == "classify":
        if not any(n.startswith("input ") for n in notes):
            parts.append(f"grids to {cfg.input_size}^3 (resize {cfg.resize})" if cfg.input_size else "grids as stored")
        scale = (info.extra or {}).get("intensity_scale")
        if scale not in (None, 1, 1.0):
            parts.append(f"intensities x{scale:g}")
    else:
        if cfg.downsample > 1:
            parts.append(f"volumes shrunk x{cfg.downsample}")
        parts.append(f"validation on centre {cfg.val_crop}^3 crops" if cfg.val_crop else "validation on whole volumes")
    if info.spatial_size:
        parts.append("model input " + "x".join(str(int(v)) for v in info.spatial_size))
    return "; ".join(parts) + (" (the settings stored with the model)" if from_checkpoint else "")


def _cmd_canonicalize(args) -> int:
    import torch

    from .evaluation import rotation_set
    from .training import build_datasets, fit_canonicalizer, load_model
    from .training.data import resolve_data_settings
    from .training.fit import created_output_folder, existing_run, existing_run_message, is_rank_zero

    model, hp = load_model(args.model)
    if isinstance(model, torch.jit.ScriptModule) or any(isinstance(m, torch.jit.ScriptModule) for m in model.modules()):
        raise CLIError(f"{args.model} is a TorchScript model: a canonicalized model around it cannot be saved "
                       "(TorchScript modules do not pickle); give the model saved with torch.save(model) or its MONAI "
                       "bundle folder (in Python, equivox.training.fit_canonicalizer takes it)")
    base = {k: v for k, v in dict((hp or {}).get("config") or {}).items() if k not in ("resume", "overwrite")}
    base.update(out_dir="outputs/canonicalize", epochs=10)
    base["canonicalize"] = base.get("canonicalize") or "octa"
    cfg = train_config_from_args(args, base)
    if not cfg.canonicalize:
        raise CLIError("--canonicalize none: give the group to canonicalize over (e.g. octa)")
    cfg.validate_dataset()
    out = Path(cfg.out_dir)
    saved = out / "canonicalized.pt"
    found = (existing_run(out) + ([saved] if saved.is_file() else [])) if is_rank_zero() else []
    if found and not cfg.overwrite:  # nothing is touched
        raise CLIError(existing_run_message(out, found, resume=False))
    name = type(model).__name__
    try:
        with created_output_folder(out):  # a failed run leaves nothing behind
            cfg, notes = resolve_data_settings(cfg)
            train, val, info = build_datasets(cfg)
            where = cfg.image_dir or cfg.dataset
            _say(f"equivox canonicalize: {args.model} ({name}, frozen) behind a canonicalizer over {cfg.canonicalize} "
                 f"({cfg.canonical_mode} mode), fitted on {where} ({cfg.task}, {len(train)} training / {len(val)} "
                 f"validation items) for {cfg.epochs} epoch{'s' if cfg.epochs > 1 else ''} -> {out}")
            _say(f"  preprocessing: {_preprocessing(cfg, notes, info, hp is not None)}")
            rots = rotation_set("grid", group=cfg.canonicalize)
            items = _val_items(val)
            progress = not args.no_progress
            before = _rotation_report(model, items, cfg, info.num_classes, rots, name, progress)
            _say(f"  {name} as given, on the validation data: {_upright_and_worst(before, cfg.canonicalize)}")
            err = before.equivariance_error
            if err is not None and err < 1e-4:
                kind = "invariant" if cfg.task == "classify" else "equivariant"
                _say(f"  note: {name} is already {kind} under the {len(rots)} {cfg.canonicalize} rotations (relative "
                     f"error {err:.1e}): a canonicalizer cannot improve its worst-rotation score; fitting one anyway")
            res = fit_canonicalizer(model, cfg, train, val, info)
            after = _rotation_report(res.model, items, cfg, info.num_classes, rots, "canonicalized " + name,
                                     progress)
            k, n = _identity_count(res.model, items)
            res.model.equivox_hparams = dict(res.module.hparams)  # evaluate / predict read the data settings
            if is_rank_zero():
                torch.save(res.model, saved)
    except OSError as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise CLIError(str(err)) from None
    _say(f"fitted in {res.seconds:.1f} s; model weights unchanged")
    _say(f"  canonicalized, on the validation data: {_upright_and_worst(after, cfg.canonicalize)}")
    _say(f"  upright validation items mapped to the identity: {k}/{n} (chance 1/{res.model.n_elements})")
    _say(f"canonicalized model: {saved} (equivox evaluate / predict / check-equivariance; in Python "
         f"torch.load(path, weights_only=False))")
    _say(f"checkpoints: {res.best_checkpoint}\n  {res.last_checkpoint}")
    return 0


# ============================================================================================ evaluate
def _save_report(report, out: Path, stem: str) -> List[Path]:
    return [report.to_json(out / f"{stem}.json"), report.to_csv(out / f"{stem}.csv")]


def _load_trained(path, need_settings: bool = True):
    """``(model, hparams)`` from anything equivox writes: a checkpoint (``.ckpt``) of ``train``, ``canonicalize``,
    the demo or the benchmark, or ``canonicalized.pt``; with ``need_settings=False`` also any model
    :func:`equivox.training.load_model` reads (hparams ``None``)."""
    from .training import load_model

    if not Path(path).exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    model, hp = load_model(path)
    if hp is None and need_settings:
        raise CLIError(f"{path} holds a model without equivox training settings (task, data, classes); give a "
                       "checkpoint from 'equivox train' or 'equivox canonicalize' (its .ckpt files or "
                       "canonicalized.pt)")
    return model, hp


def _as_trained(hp: Dict[str, Any]):
    """``(hparams, note or None)``: a classification checkpoint whose model was trained on inputs of another size
    than its config's ``input_size`` (the benchmark and demo feed the stored grids and pool inside the model; their
    configs name the pooled size) gets the size it was trained on, so evaluate and predict feed what it takes."""
    cfg = dict(hp.get("config") or {})
    shape = (hp.get("data_info") or {}).get("input_shape")
    if cfg.get("task") != "classify" or not shape or len(set(shape)) != 1 or cfg.get("input_size") is None \
            or cfg.get("input_size") == shape[0]:
        return hp, None
    note = (f"the model was trained on {shape[0]}^3 inputs (its config's input_size is {cfg['input_size']}): grids "
            f"are prepared at {shape[0]}^3")
    return {**hp, "config": {**cfg, "input_size": int(shape[0])}}, note


def model_label(hp: Dict[str, Any], model) -> str:
    """A model's name for tables and legends: its class and group (e.g. ``EquivariantUNet (octa)``), not the
    checkpoint file's stem."""
    from .training.modules import PICKLED_MODEL

    spec = (hp or {}).get("model_spec") or {}
    cls = spec.get("cls") or type(model).__name__
    if cls == PICKLED_MODEL:
        cls = type(model).__name__
    group = getattr(model, "group", None) or (spec.get("kwargs") or {}).get("group")
    return f"{cls} ({group})" if group else str(cls)


def _rotations_for_spacing(args, group: str, spacing) -> tuple:
    """``(rotation set kind, grid group, note or None)``: on anisotropic voxels random SO(3) rotations of the voxel
    array are not physical rotations, and only the groups exact for the spacing are: refuse or restrict."""
    from .groups import auto_group, exact_groups_for_spacing, parse_group_name

    if spacing is None or len(set(round(float(v), 4) for v in spacing)) == 1:
        return args.rotations, group, None
    sp = "x".join(f"{float(v):g}" for v in spacing)
    if args.rotations == "so3":
        raise CLIError(f"--rotations so3: the voxels are anisotropic ({sp} mm), so random rotations of the voxel array "
                       "are not rotations of the scan; use --rotations grid (the rotations exact for this spacing) "
                       "or train on resampled data (--spacing)")
    exact = exact_groups_for_spacing(spacing)
    grid_group = group if parse_group_name(group)[0] in exact else auto_group(spacing)[0]
    kind = "grid" if args.rotations == "standard" else args.rotations
    note = (f"anisotropic voxels ({sp} mm): only rotations exact for this spacing are physical; scoring "
            f"{'the identity and ' if kind == 'standard' else ''}the {grid_group} grid rotations"
            + (", no random SO(3) rotations" if args.rotations == "standard" else ""))
    return kind, grid_group, note


def _cmd_evaluate(args) -> int:
    import torch

    from .data import DataError, folder_pair_items
    from .evaluation import (compare_reports, evaluate_classification, evaluate_segmentation, plot_rotation_scores,
                             rotation_set)
    from .training import TrainConfig, build_datasets, classification_arrays, subsample_indices
    from .training.data import segmentation_eval_dataset

    if args.crop is not None and not args.image_dir:
        raise CLIError("--crop is for scoring a labelled folder (--image-dir / --label-dir); the training data is "
                       "scored as the run validated it (its val_crop)")
    model, hp = _load_trained(args.checkpoint)
    hp, size_note = _as_trained(hp)
    cfg_d = dict(hp.get("config") or {})
    data_info = dict(hp.get("data_info") or {})
    if (args.image_dir is None) != (args.label_dir is None):
        raise CLIError("give both --image-dir and --label-dir (a labelled folder pair to score)")
    if args.dataset is not None:
        cfg_d.update(dataset=args.dataset, image_dir=None, label_dir=None)
    cfg = TrainConfig.from_dict({**cfg_d, "resume": None, "overwrite": False})
    group = args.group or (getattr(model, "group", None) if getattr(model, "group", "trivial") != "trivial" else None) \
        or "octa"
    spacing = cfg.spacing or data_info.get("spacing") if cfg.task == "segment" else None
    kind, grid_group, note = _rotations_for_spacing(args, group, spacing)
    rots = rotation_set(kind, group=grid_group, n_random=args.n_random, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = model_label(hp, model)
    split = args.split or ("test" if cfg.task == "classify" else "val")
    if cfg.task != "classify" and split != "val":
        raise CLIError(f"--split {split}: segmentation checkpoints are scored on the validation split only (the "
                       "training split is random patches of the same files); use --split val, or --image-dir / "
                       "--label-dir to score other labelled data")
    class_names = data_info.get("class_names")
    if cfg.task == "classify":
        if args.image_dir:
            raise CLIError("--image-dir/--label-dir are for segmentation checkpoints; give a classification "
                           "dataset with --dataset (a .npz file or a mesh folder)")
        where = f"{cfg.dataset} [{split}]"
        x, y, names = classification_arrays(cfg, split, data_info.get("intensity_scale"))
        idx = subsample_indices(y, args.max_items, args.seed)
        items_desc = f"{len(idx)} items"
    elif args.image_dir:
        items = folder_pair_items(args.image_dir, args.label_dir)
        if cfg.intensity == "auto":
            from .data.medical import choose_intensity

            intensity, why = choose_intensity([it["image"] for it in items])
            _say(f"intensity auto -> {intensity} ({why})")
            cfg.intensity = intensity
        cfg.val_crop = args.crop
        ds = segmentation_eval_dataset(cfg, items, hp["num_classes"])
        where = f"{Path(args.image_dir).resolve()} + {Path(args.label_dir).resolve()}"
        seg_items = [ds[i] for i in range(min(len(ds), args.max_items or len(ds)))]
        items_desc = f"{len(seg_items)} volumes, " + (f"centre {args.crop}^3 crops" if args.crop else "whole")
    else:
        try:
            _, val, info = build_datasets(cfg)
        except DataError as err:
            raise CLIError(f"{err} (the data this checkpoint was trained on; score other data with --image-dir and "
                           "--label-dir, or --dataset)") from None
        class_names = class_names or info.class_names
        where = f"{cfg.image_dir or cfg.dataset} [{split}]"
        seg_items = [val[i] for i in range(min(len(val), args.max_items or len(val)))]
        items_desc = f"{len(seg_items)} volumes"
    _say(f"equivox evaluate: {name} from {args.checkpoint} on {where} ({items_desc}), {len(rots)} rotations")
    for line in (size_note, note):
        if line:
            _say(f"  {line}")
    if cfg.task == "classify":
        rep = evaluate_classification(model, (x[idx], torch.as_tensor(y[idx])), rots, batch_size=args.batch_size,
                                      num_classes=hp["num_classes"], progress=not args.no_progress, name=name,
                                      check_equivariance=True)
    else:
        if class_names is not None and len(class_names) != hp["num_classes"]:
            class_names = None
        rep = evaluate_segmentation(model, seg_items, rots, num_classes=hp["num_classes"],
                                    progress=not args.no_progress, name=name, check_equivariance=True,
                                    class_names=class_names, spacing=spacing)
    _say(rep.table())
    _say(compare_reports([rep]))
    files = _save_report(rep, out, "report") + [plot_rotation_scores([rep], out / "rotation_scores.png")]
    _say("saved:\n" + "\n".join(f"  {f}" for f in files))
    return 0


# ============================================================================================ predict
def _cmd_predict(args) -> int:
    from .prediction import input_files, predict_classification, predict_segmentation

    model, hp = _load_trained(args.checkpoint)
    hp, size_note = _as_trained(hp)
    if size_note:
        _say(f"  {size_note}")
    cfg = dict(hp.get("config") or {})
    task = cfg.get("task", "segment")
    paths = input_files(args.image_dir, args.files, task)
    name = model_label(hp, model)
    if task == "segment":
        rule = args.intensity or cfg.get("intensity") or "none"
        _say(f"equivox predict: {name} from {args.checkpoint} on {len(paths)} image(s); preprocessing as trained: RAS, "
             f"spacing {cfg.get('spacing') or 'as stored'}, intensity {rule}; sliding window "
             f"{cfg.get('patch_size')}^3 -> {args.out}")
        try:  # every input is checked before the first mask is written; each mask is written atomically
            predict_segmentation(model, hp, paths, args.out, probabilities=args.probabilities,
                                 intensity=args.intensity, sw_batch_size=args.batch_size, overlap=args.overlap,
                                 say=_say)
        except OSError as err:
            if isinstance(err, FileNotFoundError):
                raise
            raise CLIError(str(err)) from None
        _say(f"wrote {len(paths)} mask(s) to {args.out}")
        return 0
    _say(f"equivox predict: {name} from {args.checkpoint} on {len(paths)} file(s) -> {args.out}")
    path, rows = predict_classification(model, hp, paths, Path(args.out) / "predictions.csv",
                                        batch_size=max(args.batch_size, 1))
    for row in rows[:10]:
        _say(f"  {row['input']}: {row['predicted']}")
    if len(rows) > 10:
        _say(f"  ... {len(rows) - 10} more")
    _say(f"wrote {path}")
    return 0


# ============================================================================================ check-equivariance
def _cmd_check(args) -> int:
    import torch

    from .baselines import build_from_spec
    from .evaluation import plot_equivariance_errors
    from .testing import equivariance_errors, format_error_table

    if args.checkpoint:
        model, hp = _load_trained(args.checkpoint, need_settings=False)
        label = model_label(hp, model)
    else:
        from .groups import group_name_error

        error = group_name_error(args.group, "--group")
        if error:
            raise CLIError(error)
        torch.manual_seed(args.seed)
        cls = "EquivariantUNet" if args.model == "unet" else "InvariantClassifier"
        _say(f"building {cls}(group={args.group}, channels={args.channels}, strides={args.strides}) "
             "(a group's kernel bases ship with equivox or are built once and cached)")
        model = build_from_spec({"cls": cls, "kwargs": dict(spatial_dims=3, in_channels=1, out_channels=3,
                                                             channels=args.channels, strides=args.strides,
                                                             group=args.group)})
        label = f"{args.model}-{args.group}"
    mult = int(getattr(model, "size_multiple", 1) or 1)
    if args.size < 1 or args.size % mult:
        raise CLIError(f"--size {args.size} must be a positive multiple of the model's size_multiple ({mult})")
    in_ch = int(getattr(model, "in_channels", 1))
    x = torch.randn(2, in_ch, args.size, args.size, args.size, generator=torch.Generator().manual_seed(args.seed))
    elements = args.elements or (getattr(model, "group", None) if getattr(model, "group", "trivial") != "trivial"
                                 else "octa")
    errs = equivariance_errors(model, x, elements)
    _say(format_error_table(errs, title=f"{label}: relative equivariance error per element of {elements}"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot = plot_equivariance_errors({label: errs}, out / "equivariance_errors.png",
                                    title=f"{label}: elements of {elements}")
    js = out / "equivariance_errors.json"
    js.write_text(json.dumps({"model": label, "elements": elements, "input_size": args.size,
                              "errors": [e.__dict__ for e in errs]}, indent=2))
    _say(f"saved:\n  {plot}\n  {js}")
    return 0


# ============================================================================================ data
def _cmd_data(args) -> int:
    from .data import BUNDLED_DIR, get_dataset, list_datasets

    if args.data_command == "list":
        specs = list_datasets()
        w = max([len("name")] + [len(spec.name) for spec in specs]) + 2
        _say(f"{'name':<{w}}{'file stem':<22}{'task':<16}{'size':>10}  available  licence")
        for spec in specs:
            d = spec.metadata()
            stem = spec.aliases[0] if spec.aliases else "-"
            size = f"{sum(f.get('bytes', 0) for f in d['files'].values()) / 1e6:>8.2f}MB" if d["files"] else \
                f"{'-':>10}"
            _say(f"{spec.name:<{w}}{stem:<22}{d['task']:<16}{size}  {str(d['available']):<9}  {d['licence']}")
        _say(f"(bundled files in {BUNDLED_DIR})")
        return 0
    spec = get_dataset(args.name)
    if args.data_command == "info":
        if not spec.installed:
            raise CLIError(f"dataset {spec.name} is not installed (no {spec.provenance}); rebuild it with "
                           f"'equivox data build {spec.name}'")
        d = spec.metadata()
        _say(f"{spec.name}" + (f" ({', '.join(spec.aliases)})" if spec.aliases else "") + f": {d['description']}")
        for k in ("task", "licence", "source_package", "loader", "available", "citation", "build_script"):
            _say(f"  {k}: {d[k]}")
        for f, meta in d["files"].items():
            _say(f"  file {f}: {meta.get('bytes', 0) / 1e6:.2f} MB sha256 {str(meta.get('sha256', ''))[:16]}...")
        return 0
    # build
    script_name = spec.build_script
    if not script_name:
        raise CLIError(f"dataset {spec.name} has no build script (registered without build_script)")
    repo_root = Path(__file__).resolve().parents[2]
    script = repo_root / script_name
    if not script.is_file():
        raise CLIError(f"build script {script_name} not found next to this installation ({repo_root}); "
                       f"run it from an equivox repository checkout: python {script_name}")
    cmd = [sys.executable, str(script)] + list(args.script_args or [])
    _say("running: " + " ".join(cmd))
    return subprocess.call(cmd, cwd=str(repo_root))


# ============================================================================================ demo
def _cmd_demo(args) -> int:
    from .demo import run_demo

    overrides = {dest: getattr(args, dest, None) for _, dest, _, _ in _TRAIN_FLAGS}
    overrides["dataset"] = args.dataset
    run_demo(task=args.demo_task, quick=args.quick, out=args.out, config=args.config, n_random=args.n_random,
             max_test=args.max_test, progress=not args.no_progress, overrides=overrides)
    return 0


# ============================================================================================ nnunet
def _cmd_nnunet(args) -> int:
    from .nnunet.plans import run_plans_command

    if args.dataset_id is None and args.plans_file is None:
        raise CLIError("give --dataset-id N (or --plans-file FILE)")
    return run_plans_command(args)


# ============================================================================================ main
_COMMANDS = {"train": _cmd_train, "canonicalize": _cmd_canonicalize, "evaluate": _cmd_evaluate,
             "predict": _cmd_predict, "demo": _cmd_demo,
             "check-equivariance": _cmd_check, "data": _cmd_data, "nnunet": _cmd_nnunet}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``equivox`` command. Returns the exit code (0 ok, 2 user error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2, message already printed)
        return int(e.code or 0)
    _quiet_libraries()
    formatwarning, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    from .data import DataError

    try:
        return int(_COMMANDS[args.command](args) or 0)
    except KeyboardInterrupt:
        print("equivox: interrupted", file=sys.stderr)
        return 130
    except (CLIError, DataError, FileNotFoundError, NotADirectoryError, ValueError) as err:
        if args.debug:
            raise
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"equivox: error: {msg}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = formatwarning  # main() called from Python leaves the caller's format as it was


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
