"""``equivox canonicalize``: fit a canonicalizer for a trained model, leaving its weights untouched. Its data and
canonicalizer options are :class:`~equivox.config.TrainConfig`'s fields (generated); an equivox checkpoint brings
its own settings, which are then the defaults."""
from __future__ import annotations

from pathlib import Path
from typing import List

from ..config import Option
from ._common import CLIError, say, user_input
from .config_options import add_config_options, option_default_text, train_config_from_args
from .train import CONFIG_HELP, check_patch_size

NAME = "canonicalize"
#: settings canonicalize fixes over the checkpoint's (and TrainConfig's)
FIXED = {"epochs": 10, "out_dir": "outputs/canonicalize"}
#: settings that are never taken from the checkpoint (this run's own)
NOT_INHERITED = ("resume", "overwrite", "progress", "plots")
#: defaults where the checkpoint has none
FALLBACK = {"canonicalize": "octa"}


def _default_text(o: Option) -> str:
    if o.name in FIXED:
        return option_default_text(o, FIXED[o.name], use_default=False)
    text = option_default_text(o, FALLBACK[o.name], use_default=False) if o.name in FALLBACK else \
        option_default_text(o)
    return text if o.name in NOT_INHERITED else f"the checkpoint's, else {text}"


def add_parser(sub):
    p = sub.add_parser(NAME, help="fit a canonicalizer for a trained model, leaving its weights untouched",
                       description="Put a trained model (equivox checkpoint, MONAI bundle folder, a .pt of "
                                   "torch.save(model)) behind an exactly equivariant canonicalizer and fit only the "
                                   "canonicalizer on upright training data: the result is exactly invariant "
                                   "(classify) or equivariant (segment) under the group's grid rotations. Prints the "
                                   "preprocessing, upright and worst-rotation scores on the validation data before "
                                   "and after, and the identity rate; writes canonicalized.pt and checkpoints, which "
                                   "evaluate, predict and check-equivariance take. Data options as 'equivox train' "
                                   "(an equivox checkpoint brings its own: its settings are the defaults).")
    p.add_argument("model", help="trained model: .ckpt from 'equivox train', a MONAI bundle folder, or a .pt file "
                                 "(torch.save(model))")
    p.add_argument("--config", help=CONFIG_HELP)
    add_config_options(p, skip=("network", "resume"), default_text=_default_text)
    return p


def _rotation_report(model, items, cfg, num_classes: int, rots, name: str, progress: bool):
    """``model``'s scores on the validation ``items`` under ``rots``, its equivariance error measured too."""
    from ..evaluation import evaluate_classification, evaluate_segmentation

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


def run(args) -> int:
    import torch

    from ..evaluation import rotation_set
    from ..training import build_datasets, fit_canonicalizer, load_model
    from ..training.data import resolve_data_settings
    from ..training.fit import created_output_folder, existing_run, existing_run_message, is_rank_zero

    with user_input():  # an unreadable model file
        model, hp = load_model(args.model)
    if isinstance(model, torch.jit.ScriptModule) or any(isinstance(m, torch.jit.ScriptModule) for m in model.modules()):
        raise CLIError(f"{args.model} is a TorchScript model: a canonicalized model around it cannot be saved "
                       "(TorchScript modules do not pickle); give the model saved with torch.save(model) or its MONAI "
                       "bundle folder (in Python, equivox.training.fit_canonicalizer takes it)")
    base = {k: v for k, v in dict((hp or {}).get("config") or {}).items() if k not in NOT_INHERITED}
    base.update(FIXED)
    for k, v in FALLBACK.items():
        base[k] = base.get(k) or v
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
            check_patch_size(cfg, getattr(model, "size_multiple", None))
            train, val, info = build_datasets(cfg)
            where = cfg.image_dir or cfg.dataset
            say(f"equivox canonicalize: {args.model} ({name}, frozen) behind a canonicalizer over {cfg.canonicalize} "
                f"({cfg.canonical_mode} mode), fitted on {where} ({cfg.task}, {len(train)} training / {len(val)} "
                f"validation items) for {cfg.epochs} epoch{'s' if cfg.epochs > 1 else ''} -> {out}")
            say(f"  preprocessing: {_preprocessing(cfg, notes, info, hp is not None)}")
            rots = rotation_set("grid", group=cfg.canonicalize)
            items = [val[i] for i in range(len(val))]
            progress = cfg.progress
            before = _rotation_report(model, items, cfg, info.num_classes, rots, name, progress)
            say(f"  {name} as given, on the validation data: {_upright_and_worst(before, cfg.canonicalize)}")
            err = before.equivariance_error
            if err is not None and err < 1e-4:
                kind = "invariant" if cfg.task == "classify" else "equivariant"
                say(f"  note: {name} is already {kind} under the {len(rots)} {cfg.canonicalize} rotations (relative "
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
    say(f"fitted in {res.seconds:.1f} s; model weights unchanged")
    say(f"  canonicalized, on the validation data: {_upright_and_worst(after, cfg.canonicalize)}")
    say(f"  upright validation items mapped to the identity: {k}/{n} (chance 1/{res.model.n_elements})")
    say(f"canonicalized model: {saved} (equivox evaluate / predict / check-equivariance; in Python "
        f"torch.load(path, weights_only=False))")
    say(f"checkpoints: {res.best_checkpoint}\n  {res.last_checkpoint}")
    return 0
