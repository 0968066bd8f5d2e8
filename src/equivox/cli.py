"""Command line interface: ``equivox train | canonicalize | evaluate | predict | demo | check-equivariance | data |
nnunet``.

Every command has ``--help``, which shows every option's default and choices. One dialect across the commands: the
trained model is the positional ``model`` (evaluate, predict, canonicalize, check-equivariance), the rotations scored
or checked are ``--elements``, a centre crop is ``--val-crop``, an item limit ``--max-items``, the output folder
``--out``; the older spellings (``--checkpoint``, evaluate's ``--group``, ``--crop``, ``--max-test``) still work,
hidden, with a one-line note. Options are matched exactly (no abbreviations): a misspelt one ends with exit code 2 and
``unknown option --epoch; did you mean --epochs?``. ``train`` and ``demo`` read a YAML file via ``--config`` whose keys
are :class:`equivox.training.TrainConfig` fields (flags given on the command line win over the file; a ``model:``
section and repeated ``--model-arg key=value`` give any constructor argument of the network). Bad arguments and
missing data end with exit code 2 and one line ``equivox: error: ...`` naming the problem (``--debug`` shows the
traceback instead).
"""
from __future__ import annotations

import argparse
import ast
import difflib
import functools
import json
import logging
import math
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
def _shown(value: Any) -> str:
    """A default as the command line spells it: ``[2, 4]`` -> ``2,4``, ``True`` -> ``on``, ``None`` -> ``none``."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(_shown(v) for v in value)
    return str(value)


class _HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to every option whose help does not state its default already: the argparse default,
    or for the :class:`~equivox.training.TrainConfig` flags (argparse default ``None``, so that a YAML ``--config``
    can set them) the command's real default (:func:`_default_text`). On/off options read as flags (``--x,
    --no-x``)."""

    def _get_help_string(self, action):
        help_ = action.help or ""
        text = _default_text(action)
        if text is None or "default" in help_.lower():
            return help_
        return f"{help_} (default: {text.replace('%', '%%')})"

    def _format_action_invocation(self, action):
        forms = getattr(action, "flag_forms", None)
        return ", ".join(forms) if forms else super()._format_action_invocation(action)

    def _format_args(self, action, default_metavar):
        return "" if getattr(action, "flag_forms", None) else super()._format_args(action, default_metavar)

    def _format_usage(self, usage, actions, groups, prefix):
        return super()._format_usage(usage, actions, groups, prefix).replace(" ]", "]")


def _default_text(action) -> Optional[str]:
    """What ``--help`` shows as ``action``'s default, ``None`` for nothing."""
    if action.default is argparse.SUPPRESS or action.help is argparse.SUPPRESS:
        return None
    text = getattr(action, "default_text", None)
    if text is not None:
        return text
    field = getattr(action, "config_field", None)
    if field is not None:
        return _config_default_text(field, getattr(action, "defaults_for", "train"))
    if action.nargs == 0:  # a flag (store_true / store_const)
        return "on" if action.default is True else "off"
    return None if action.default is None else _shown(action.default)


@functools.lru_cache(maxsize=None)
def _source_literals(relpath: str) -> Dict[str, Any]:
    """The literal assignments of a module of this package (``NAME = ...`` and ``Class.field: type = ...``; ``dict(
    k=...)`` calls too), read from its source without importing it: ``equivox.training`` and ``equivox.demo`` import
    torch, and ``--help`` stays instant. ``{}`` when the source cannot be read."""
    def literal(node):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
            return {kw.arg: literal(kw.value) for kw in node.keywords}
        return ast.literal_eval(node)

    try:
        tree = ast.parse((Path(__file__).resolve().parent / relpath).read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return {}
    out: Dict[str, Any] = {}
    bodies = [("", tree.body)] + [(f"{n.name}.", n.body) for n in tree.body if isinstance(n, ast.ClassDef)]
    for prefix, body in bodies:
        for node in body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                name, value = node.targets[0].id, node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                name, value = node.target.id, node.value
            else:
                continue
            try:
                out[prefix + name] = literal(value)
            except (ValueError, TypeError, SyntaxError):
                pass
    return out


def config_defaults() -> Dict[str, Any]:
    """:class:`~equivox.training.TrainConfig`'s literal field defaults (what ``train --help`` shows)."""
    lits = _source_literals("training/config.py")
    return {k.split(".", 1)[1]: v for k, v in lits.items() if k.startswith("TrainConfig.")}


#: the demo's presets: (what --help calls them, the variable in equivox/demo.py)
_DEMO_PRESETS = (("classify", "_DEMO_CLASSIFY"), ("segment", "_DEMO_SEGMENT"),
                 ("segment on the chest CT", "_DEMO_SEGMENT_CHEST"))


def demo_settings() -> set:
    """The settings the demo's presets take (``equivox/demo.py``: ``_DEMO_CLASSIFY``, ``_DEMO_SEGMENT``,
    ``_DEMO_SEGMENT_CHEST``): only these training flags are listed by ``demo --help`` (others are ignored by the
    demo, which says so when one is given)."""
    lits = _source_literals("demo.py")
    return {k for _, var in _DEMO_PRESETS for mode in ("full", "quick") for k in (lits.get(var) or {}).get(mode, {})}


def _demo_max_items_text() -> str:
    """The demo's test-item limits: classify in :func:`equivox.demo.run_demo`, segment in its presets."""
    parts = ["classify all, 16 with --quick"]
    lits = _source_literals("demo.py")
    for name, var in _DEMO_PRESETS[1:]:
        preset = lits.get(var) or {}
        if "max_test" in preset.get("full", {}):
            full, quick = (_shown(preset[m]["max_test"]).replace("none", "all") for m in ("full", "quick"))
            parts.append(f"{name} {full}" + (f", {quick} with --quick" if quick != full else ""))
    return "; ".join(parts)


#: what a None default of a TrainConfig flag means
_NONE_DEFAULTS = {"num_classes": "from the dataset", "max_train": "all", "max_val": "all", "class_names": "0,1,..."}
#: the defaults `canonicalize` puts over TrainConfig's (before an equivox checkpoint's own settings)
_CANONICALIZE_DEFAULTS = {"epochs": 10, "canonicalize": "octa"}


def _config_default_text(field: str, context: str) -> Optional[str]:
    if context == "demo":
        lits = _source_literals("demo.py")
        full, quick = [], []
        for name, var in _DEMO_PRESETS:
            preset = lits.get(var) or {}
            if field in preset.get("full", {}):
                full.append((name, preset["full"][field]))
                quick.append((name, preset["quick"][field]))
        if not full:
            return None

        def join(pairs):
            if len({_shown(v) for _, v in pairs}) == 1:
                return _shown(pairs[0][1])
            return ", ".join(f"{n} {_shown(v)}" for n, v in pairs)
        text, quick_text = join(full), join(quick)
        return text if quick_text == text else f"{text}; with --quick {quick_text}"
    defaults = config_defaults()
    if field not in defaults:
        return None
    value = _CANONICALIZE_DEFAULTS.get(field, defaults[field]) if context == "canonicalize" else defaults[field]
    text = _NONE_DEFAULTS.get(field, "none") if value is None else _shown(value)
    if context == "canonicalize" and field != "epochs":
        return f"the checkpoint's, else {text}"
    return text


class _Renamed(argparse.Action):
    """A hidden old spelling of an option: stores into the new option's ``dest`` (through ``convert``) and prints
    one line saying what to write instead."""

    def __init__(self, option_strings, dest, new: str = "", convert=None, **kwargs):
        kwargs.setdefault("default", argparse.SUPPRESS)
        kwargs["help"] = argparse.SUPPRESS
        super().__init__(option_strings, dest, **kwargs)
        self.new, self.convert = new, convert

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"equivox: note: {option_string} is deprecated; {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, self.convert(values) if self.convert else values)
        setattr(namespace, f"_spelled_{self.dest}", option_string)


def _renamed(p: argparse.ArgumentParser, old: str, new: str, dest: str, **kwargs) -> None:
    """Add ``old`` as a hidden alias of the option ``new`` (same ``dest``)."""
    p.add_argument(old, dest=dest, action=_Renamed, new=f"use {new} (same meaning)", **kwargs)


def _spelled(args, dest: str, flag: str) -> str:
    """The spelling the user gave for option ``dest`` (an old alias or ``flag``), for messages."""
    return getattr(args, f"_spelled_{dest}", flag)


class _Parser(argparse.ArgumentParser):
    """argparse with exact option names (no abbreviations), the defaults shown in ``--help``, and unknown options
    answered with the closest known name: ``unknown option --epoch; did you mean --epochs?`` (exit code 2)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        ns, extras = super().parse_known_args(args, namespace)
        unknown = [a for a in extras if a.startswith("--") and len(a) > 2]
        if unknown:
            self.error(self.unknown_option_message(unknown[0]))
        return ns, extras

    def error(self, message: str):
        """One line (not the whole usage, which buries the problem for ``train``'s 50 options), exit code 2."""
        hint = "" if "--help" in message else f" (see '{self.prog} --help')"
        self.exit(2, f"{self.prog}: error: {message}{hint}\n")

    def unknown_option_message(self, arg: str) -> str:
        name = arg.split("=", 1)[0]
        known = [s for a in self._actions if a.help is not argparse.SUPPRESS for s in a.option_strings
                 if s.startswith("--")]
        for a in self._actions:  # a --flag / --no-flag pair: both spellings are known names
            if a.help is not argparse.SUPPRESS:
                known += list(getattr(a, "flag_forms", ()) or ())
        close = difflib.get_close_matches(name, sorted(set(known)), n=1, cutoff=0.6)
        if close:
            return f"unknown option {name}; did you mean {close[0]}?"
        return f"unknown option {name} (see '{self.prog} --help')"


def _add_flag(p: argparse.ArgumentParser, flag: str, dest: str, help_: str, **attrs) -> argparse.Action:
    """An on/off option: ``--x`` (on) and ``--no-x`` (off); ``--x true|false`` (the older form) still works.
    Default ``None`` (unset: the YAML file or the config's default decides)."""
    action = p.add_argument(flag, dest=dest, nargs="?", const=True, type=_bool, default=None, help=help_)
    action.flag_forms = (flag, "--no-" + flag[2:])
    for k, v in attrs.items():
        setattr(action, k, v)
    p.add_argument("--no-" + flag[2:], dest=dest, action="store_const", const=False, default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)
    return action


def _all_parsers(parser: argparse.ArgumentParser, prefix: Sequence[str] = ()):
    """``[(command words, parser)]`` for ``parser`` and every sub-command parser below it."""
    out = [(list(prefix), parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _all_parsers(sub, list(prefix) + [name])
    return out


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


# TrainConfig fields exposed as flags: (flag, field, type, help); --help adds each one's default (TrainConfig's, or
# the command's: _config_default_text)
_TRAIN_FLAGS = [
    ("--task", "task", str, "classify or segment"),
    ("--dataset", "dataset", str, "a registered dataset name (see 'equivox data list'), a .npz file, a mesh "
                                  "folder or a Decathlon folder"),
    ("--image-dir", "image_dir", str, "segmentation: folder of image NIfTI files (with --label-dir; implies --task "
                                      "segment)"),
    ("--label-dir", "label_dir", str, "segmentation: folder of label NIfTI files, same names as the images"),
    ("--num-classes", "num_classes", int, "number of classes (segmentation: including background; required with "
                                          "--image-dir)"),
    ("--class-names", "class_names", _names,
     "segmentation folder pair: class names, background first, comma-separated (e.g. background,liver,tumour)"),
    ("--input-size", "input_size", int, "classification: reduce grids to this cube side"),
    ("--max-train", "max_train", int, "subsample the training split to this many items"),
    ("--max-val", "max_val", int, "subsample the validation split"),
    ("--patch-size", "patch_size", int, "segmentation training patch side (and sliding-window side): a multiple of "
                                        "the product of --strides, at most the volumes' side"),
    ("--patches-per-epoch", "patches_per_epoch", int, "segmentation: random patches per epoch"),
    ("--val-crop", "val_crop", int, "segmentation: validate on a centre crop of this side"),
    ("--downsample", "downsample", int, "bundled segmentation volumes: shrink by this integer factor"),
    ("--intensity", "intensity", str, "NIfTI intensity normalisation: auto (ct when the training images span HU, "
                                      "i.e. min < -500 and max > 500, else mri), ct (HU window -1000..1000 -> "
                                      "[0, 1]), mri (per-volume z-score) or none (as stored)"),
    ("--spacing", "spacing", _floats3, "NIfTI: resample to this voxel spacing in mm, D,H,W or one value "
                                       "(default: keep the stored voxels, spacing read from the headers)"),
    ("--resize", "resize", str, "classification: how grids reach --input-size: auto (pool, zero-padding first "
                                "when the side does not divide, e.g. 28 -> 32 -> 16), pool, pad or crop"),
    ("--augment", "augment", str, "none, grid (random exact grid rotations) or so3 (random resampled rotations)"),
    ("--arch", "arch", str, "equivariant, baseline (trivial group, matched parameters), monai_unet, or a "
                            "registered model name (e.g. EquivariantMonaiUNet, EquivariantUNet, InvariantClassifier)"),
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
    ("--canonical-pose", "canonical_pose", _bool, "principal-axes pose before the canonicalizer (cubic "
                                                  "classification inputs: invariant to any rotation up to "
                                                  "resampling)"),
    ("--prior-weight", "prior_weight", float, "weight of the canonicalizer's prior toward the identity"),
    ("--canonical-sample", "canonical_sample", _bool, "train on poses drawn from the canonicalizer's softmax "
                                                      "(--no-canonical-sample: its top pose)"),
    ("--canonicalizer-channels", "canonicalizer_channels", _ints, "canonicalizer fields per level, e.g. 2,4"),
    ("--canonicalizer-input-size", "canonicalizer_input_size", int, "side of the pooled copy the canonicalizer "
                                                                    "sees"),
    ("--epochs", "epochs", int, "training epochs (with --until-plateau: the minimum)"),
    ("--until-plateau", "until_plateau", _bool, "after --epochs, train on until the validation curve has reached "
                                                "its plateau (its last fifth adds < 0.01 over its best before)"),
    ("--max-epochs", "max_epochs", int, "at most this many epochs with --until-plateau (default: 3 x --epochs)"),
    ("--max-steps", "max_steps", int, "stop after this many optimiser steps (-1: no limit)"),
    ("--batch-size", "batch_size", int, "batch size"),
    ("--lr", "lr", float, "AdamW learning rate"),
    ("--weight-decay", "weight_decay", float, "AdamW weight decay"),
    ("--seed", "seed", int, "random seed (weights, data order, augmentation)"),
    ("--num-workers", "num_workers", int, "DataLoader worker processes"),
    ("--devices", "devices", _devices, "devices per node (int or auto); >1 uses DDP"),
    ("--num-nodes", "num_nodes", int, "number of nodes (multi-node DDP, e.g. under torchrun/SLURM)"),
    ("--strategy", "strategy", str, "Lightning strategy (auto -> ddp when several devices)"),
    ("--accelerator", "accelerator", str, "auto, cpu or gpu (any Lightning accelerator name)"),
    ("--precision", "precision", str, "Lightning precision (default: 16-mixed with CUDA, else 32-true)"),
    ("--resume", "resume", str, "checkpoint to resume from (continues epochs and global step)"),
]
#: the closed sets of values, shown as the option's metavar (checked by TrainConfig, whose messages name the field)
_TRAIN_METAVARS = {"task": "{classify,segment}", "intensity": "{auto,ct,mri,none}", "augment": "{none,grid,so3}",
                   "resize": "{auto,pool,pad,crop}", "canonical_mode": "{hard,frame,soft}",
                   "arch": "{equivariant,baseline,monai_unet,MODEL}", "accelerator": "{auto,cpu,gpu}",
                   "devices": "{N,auto}"}


_OVERWRITE_HELP = ("start afresh when the output folder already holds a run: remove its checkpoints/*.ckpt and "
                   "logs/version_* first (YAML overwrite: true; default: off, such a folder is refused)")


def _add_train_flags(p: argparse.ArgumentParser, skip: Sequence[str] = (), defaults_for: str = "train",
                     only: Optional[set] = None) -> None:
    """The TrainConfig flags minus ``skip``; with ``only``, the others are accepted but hidden (the demo: they are
    reported as not used)."""
    for flag, dest, typ, help_ in _TRAIN_FLAGS:
        if dest in skip:
            continue
        shown = only is None or dest in only
        if typ is _bool:
            action = _add_flag(p, flag, dest, help_ if shown else argparse.SUPPRESS)
        else:
            action = p.add_argument(flag, dest=dest, type=typ, default=None, metavar=_TRAIN_METAVARS.get(dest),
                                    help=help_ if shown else argparse.SUPPRESS)
        action.config_field, action.defaults_for = dest, defaults_for
    if "model" not in skip:
        p.add_argument("--model-arg", dest="model_args", action="append", default=None, metavar="KEY=VALUE",
                       help="any constructor argument of the network, value as YAML (repeatable), e.g. "
                            "--model-arg head=oriented --model-arg 'class_swaps=[[1, 2]]'; merged over the YAML "
                            "model: section; unknown keys are errors (default: none)")
    if "strict" not in skip:
        p.add_argument("--strict", dest="strict", action="store_const", const=True, default=None,
                       help="fail on the first unusable file of a mesh folder instead of skipping it with a warning")


_MODEL_HELP = ("trained model: a checkpoint from 'equivox train' or 'equivox canonicalize' (its .ckpt files or "
               "canonicalized.pt; the demo's and benchmark's run checkpoints too)")


def build_parser() -> argparse.ArgumentParser:
    """The ``equivox`` argument parser (sub-commands: train, evaluate, predict, demo, canonicalize,
    check-equivariance, data, nnunet)."""
    parser = _Parser(prog="equivox", description="Rotation-equivariant 3D CNNs: train, evaluate under rotations, "
                                                 "check equivariance, manage bundled data.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("train", help="train a model (equivariant or baseline) on bundled or own data",
                       description="Train with PyTorch Lightning: checkpoints (best + last.ckpt), CSV metrics. "
                                   "Defaults below are TrainConfig's; a --config YAML file overrides them and flags "
                                   "override the file.")
    p.add_argument("--config", help="YAML file of TrainConfig keys (flags override it)")
    p.add_argument("--out", dest="out_dir", default=None, help="output folder (default: outputs/train); a folder "
                   "that already holds a run is refused unless --overwrite or --resume")
    p.add_argument("--overwrite", dest="overwrite", action="store_const", const=True, default=None,
                   help=_OVERWRITE_HELP)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--no-plots", action="store_true", help="do not write learning_curve.png (training loss and "
                   "validation score per epoch) into the output folder (YAML plots: false)")
    _add_train_flags(p)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint under rotations (table, JSON, CSV, plots)",
                       description="Score a checkpoint written by 'equivox train' upright, under the grid rotations "
                                   "and under random SO(3) rotations.")
    p.add_argument("model", help=_MODEL_HELP)
    p.add_argument("--dataset", default=None, help="dataset (default: the one the checkpoint was trained on)")
    p.add_argument("--image-dir", dest="image_dir", default=None,
                   help="segmentation: score every image of this folder (with --label-dir; same names), prepared "
                        "as in training (spacing, intensity from the checkpoint)")
    p.add_argument("--label-dir", dest="label_dir", default=None, help="segmentation: the label folder for --image-dir")
    p.add_argument("--val-crop", dest="val_crop", type=int, default=None,
                   help="segmentation with --image-dir: score a centre crop of this side (to bound memory), as "
                        "training's --val-crop; default: whole volumes (padded to the model's size multiple, one "
                        "direct forward per rotation)")
    _renamed(p, "--crop", "--val-crop", "val_crop", type=int)
    p.add_argument("--split", default=None, choices=["train", "val", "test"],
                   help="split to score (default: test for classification; segmentation scores val only)")
    p.add_argument("--rotations", default="standard", choices=["standard", "identity", "grid", "so3"],
                   help="rotation set (standard = identity + grid + n random SO(3))")
    p.add_argument("--elements", default=None, help="group whose grid elements are scored (default: the model's "
                                                    "group, or octa)")
    _renamed(p, "--group", "--elements", "elements")
    p.add_argument("--n-random", type=int, default=8, help="number of random SO(3) rotations")
    p.add_argument("--max-items", type=int, default=None, help="score at most this many items (default: all)")
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
    p.add_argument("model", help=_MODEL_HELP)
    p.add_argument("files", nargs="*", help="input files (images / volumes)")
    p.add_argument("--image-dir", dest="image_dir", default=None, help="folder of input images")
    p.add_argument("--out", required=True, help="output folder (inputs are never replaced; required)")
    p.add_argument("--probabilities", action="store_true", help="segmentation: also write class probabilities")
    p.add_argument("--intensity", default=None, choices=["auto", "ct", "mri", "none"],
                   help="override the checkpoint's intensity rule (default: the training run's)")
    p.add_argument("--overlap", type=float, default=0.25, help="sliding-window overlap (segmentation)")
    p.add_argument("--batch-size", type=int, default=2, help="windows (segmentation) / volumes per batch")
    p.add_argument("--no-plots", action="store_true", help="segmentation: do not write <name>_seg_overlay.png (three "
                   "middle slices with the mask over the image) per image")

    p = sub.add_parser("demo", help="the main demo: equivariant model vs plain CNNs under rotations",
                       description="Train an octa-equivariant model, a parameter-matched plain CNN, the plain CNN "
                                   "with rotation augmentation and the plain CNN behind an exactly equivariant "
                                   "canonicalizer on bundled real data (upright), evaluate all four "
                                   "upright / under the 24 cube rotations / under random SO(3) rotations, print the "
                                   "comparison and save plots, JSON and CSV. The training flags below override the "
                                   "demo's preset (classify, segment, or segment with --dataset chest_ct; the "
                                   "four models fix the group and the augmentation).")
    p.add_argument("--task", dest="demo_task", default="classify", choices=["classify", "segment"],
                   help="classify: furniture shapes (9 classes; --dataset lidc for LIDC nodules); segment: metal in "
                        "KiCad parts (--dataset chest_ct for chest CT organs, upright scans)")
    p.add_argument("--dataset", default=None, choices=["furniture", "lidc", "kicad_part_segments", "chest_ct"],
                   help="bundled dataset (default: furniture for classify, kicad_part_segments for segment)")
    p.add_argument("--quick", action="store_true", help="a seconds-long version (tiny data and models)")
    p.add_argument("--out", default=None, help="output folder (default: outputs/demo-classify or demo-segment)")
    p.add_argument("--config", help="YAML file of settings overriding the demo's preset")
    p.add_argument("--n-random", type=int, default=None, help="random SO(3) rotations to evaluate (default: 2 with "
                                                             "--quick, else 8 classify / 4 segment)")
    p.add_argument("--max-items", dest="max_items", type=int, default=None,
                   help=f"test items to score (default: {_demo_max_items_text()})")
    _renamed(p, "--max-test", "--max-items", "max_items", type=int)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    used = demo_settings()
    _add_train_flags(p, skip=("task", "dataset", "image_dir", "label_dir", "arch", "resume", "num_classes", "model",
                              "strict"), defaults_for="demo", only=used or None)

    p = sub.add_parser("canonicalize", help="fit a canonicalizer for a trained model, leaving its weights untouched",
                       description="Put a trained model (equivox checkpoint, MONAI bundle folder, a .pt of "
                                   "torch.save(model)) behind an exactly equivariant canonicalizer and fit only the "
                                   "canonicalizer on upright training data: the result is exactly invariant "
                                   "(classify) or equivariant (segment) under the group's grid rotations. Prints the "
                                   "preprocessing, upright and worst-rotation scores on the validation data before "
                                   "and after, and the identity rate; writes canonicalized.pt and checkpoints, which "
                                   "evaluate, predict and check-equivariance take. Data flags as 'equivox train' (an "
                                   "equivox checkpoint brings its own: its settings are the defaults).")
    p.add_argument("model", help="trained model: .ckpt from 'equivox train', a MONAI bundle folder, or a .pt file "
                                 "(torch.save(model))")
    p.add_argument("--config", help="YAML file of TrainConfig keys (flags override it)")
    p.add_argument("--out", dest="out_dir", default=None, help="output folder (default: outputs/canonicalize); a "
                   "folder that already holds a run is refused unless --overwrite")
    p.add_argument("--overwrite", dest="overwrite", action="store_const", const=True, default=None,
                   help=_OVERWRITE_HELP + "; canonicalized.pt too")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_train_flags(p, skip=("arch", "resume", "group", "channels", "strides", "convs_per_level", "model"),
                     defaults_for="canonicalize")

    p = sub.add_parser("check-equivariance", help="measure a model's equivariance error per group element",
                       description="Load a model (or build a fresh one), feed a random cube and its rotations, print "
                                   "the per-element relative error table and save a bar plot.")
    p.add_argument("model", nargs="?", default=None,
                   help="trained model: a checkpoint from 'equivox train' or 'equivox canonicalize' (.ckpt or "
                        "canonicalized.pt), or any model file 'equivox canonicalize' reads (default: a fresh model "
                        "built from --task, --group, --channels, --strides)")
    p.add_argument("--checkpoint", dest="checkpoint_alias", action=_Renamed, default=None,
                   new="give the model as the positional argument: equivox check-equivariance MODEL")
    p.add_argument("--task", default="segment", choices=["segment", "classify"],
                   help="fresh model: segment (EquivariantUNet) or classify (InvariantClassifier)")
    p.add_argument("--model", dest="task", action=_Renamed, choices=["unet", "classifier"],
                   new="use --task segment (unet) or --task classify (classifier)",
                   convert=lambda v: "segment" if v == "unet" else "classify")
    p.add_argument("--group", default="octa", help="group of the fresh model, field options allowed (e.g. "
                                                    "'so3_irreps(filter_lmax=3)')")
    p.add_argument("--elements", default=None, help="group whose grid elements are checked (default: the model's "
                                                    "group, or octa)")
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
    if getattr(args, "no_plots", False):
        d["plots"] = False
    return TrainConfig.from_dict(d)


#: equivox networks whose spatial sizes must be multiples of prod(strides) (their ``size_multiple``)
_STRIDED_ARCHS = ("equivariant", "baseline", "monai_unet", "EquivariantUNet", "EquivariantMonaiUNet")


def _config_size_multiple(cfg) -> Optional[int]:
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
    from .data.medical import is_nifti

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
    from .training.data import _registered_volumes, _split_items, segmentation_file_items

    spec = cfg.validate_dataset()
    if spec is not None:
        vols, _ = _registered_volumes(spec, "train", cfg.downsample)
        return [(min(int(n) for n in img.shape[1:]), f"{spec.name} volume {i}") for i, (img, _) in enumerate(vols)]
    items, _, _ = segmentation_file_items(cfg)
    train_items, _ = _split_items(cfg, items)
    out = []
    for it in train_items:
        sides = _ras_sides(it["image"], cfg.spacing)
        if sides is not None:
            out.append((min(sides), Path(it["image"]).name))
    return out


def _check_patch_size(cfg, size_multiple: Optional[int]) -> None:
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
        registered = cfg.validate_dataset() is not None
        how = (f" after downsampling x{cfg.downsample}" if registered and cfg.downsample > 1 else
               f" after resampling to {_shown(cfg.spacing)} mm" if cfg.spacing and not registered else "")
        raise CLIError(f"--patch-size {p} is larger than every training volume (the largest, {name}, is {side} voxels "
                       f"along its shortest axis{how}): patches would be mostly padding; use --patch-size "
                       f"{fit if fit else m} or less" + (f" (a multiple of {m})" if m > 1 else ""))


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
            _check_patch_size(cfg, _config_size_multiple(cfg))
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
            _check_patch_size(cfg, getattr(model, "size_multiple", None))
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

    if args.val_crop is not None and not args.image_dir:
        raise CLIError(f"{_spelled(args, 'val_crop', '--val-crop')} is for scoring a labelled folder (--image-dir / "
                       "--label-dir); the training data is scored as the run validated it (its val_crop)")
    model, hp = _load_trained(args.model)
    hp, size_note = _as_trained(hp)
    cfg_d = dict(hp.get("config") or {})
    data_info = dict(hp.get("data_info") or {})
    if (args.image_dir is None) != (args.label_dir is None):
        raise CLIError("give both --image-dir and --label-dir (a labelled folder pair to score)")
    if args.dataset is not None:
        cfg_d.update(dataset=args.dataset, image_dir=None, label_dir=None)
    cfg = TrainConfig.from_dict({**cfg_d, "resume": None, "overwrite": False})
    own = getattr(model, "group", None)
    group = args.elements or (own if own not in (None, "trivial") else None) or "octa"
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
        cfg.val_crop = args.val_crop
        ds = segmentation_eval_dataset(cfg, items, hp["num_classes"])
        where = f"{Path(args.image_dir).resolve()} + {Path(args.label_dir).resolve()}"
        seg_items = [ds[i] for i in range(min(len(ds), args.max_items or len(ds)))]
        items_desc = f"{len(seg_items)} volumes, " + (f"centre {args.val_crop}^3 crops" if args.val_crop else "whole")
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
    _say(f"equivox evaluate: {name} from {args.model} on {where} ({items_desc}), {len(rots)} rotations")
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

    model, hp = _load_trained(args.model)
    hp, size_note = _as_trained(hp)
    if size_note:
        _say(f"  {size_note}")
    cfg = dict(hp.get("config") or {})
    task = cfg.get("task", "segment")
    paths = input_files(args.image_dir, args.files, task)
    name = model_label(hp, model)
    if task == "segment":
        rule = args.intensity or cfg.get("intensity") or "none"
        _say(f"equivox predict: {name} from {args.model} on {len(paths)} image(s); preprocessing as trained: RAS, "
             f"spacing {cfg.get('spacing') or 'as stored'}, intensity {rule}; sliding window "
             f"{cfg.get('patch_size')}^3 -> {args.out}")
        try:  # every input is checked before the first mask is written; each mask is written atomically
            predict_segmentation(model, hp, paths, args.out, probabilities=args.probabilities,
                                 intensity=args.intensity, sw_batch_size=args.batch_size, overlap=args.overlap,
                                 say=_say, plots=not args.no_plots, model_name=name)
        except OSError as err:
            if isinstance(err, FileNotFoundError):
                raise
            raise CLIError(str(err)) from None
        _say(f"wrote {len(paths)} mask(s) to {args.out}")
        return 0
    _say(f"equivox predict: {name} from {args.model} on {len(paths)} file(s) -> {args.out}")
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

    if args.model is not None and args.checkpoint_alias is not None:
        raise CLIError("give the model once: as the positional argument (--checkpoint is its deprecated spelling)")
    path = args.model if args.model is not None else args.checkpoint_alias
    if path is not None:
        model, hp = _load_trained(path, need_settings=False)
        label = model_label(hp, model)
    else:
        from .groups import group_name_error

        error = group_name_error(args.group, "--group")
        if error:
            raise CLIError(error)
        torch.manual_seed(args.seed)
        kind = "unet" if args.task == "segment" else "classifier"
        cls = "EquivariantUNet" if kind == "unet" else "InvariantClassifier"
        _say(f"building {cls}(group={args.group}, channels={args.channels}, strides={args.strides}) "
             "(a group's kernel bases ship with equivox or are built once and cached)")
        model = build_from_spec({"cls": cls, "kwargs": dict(spatial_dims=3, in_channels=1, out_channels=3,
                                                             channels=args.channels, strides=args.strides,
                                                             group=args.group)})
        label = f"{kind}-{args.group}"
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
    if args.demo_task == "segment":  # the segmentation presets' test-volume limit (classify: run_demo's max_test)
        overrides["max_test"] = args.max_items
    run_demo(task=args.demo_task, quick=args.quick, out=args.out, config=args.config, n_random=args.n_random,
             max_test=args.max_items, progress=not args.no_progress, overrides=overrides)
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
