"""``equivox evaluate``: score a trained model upright, under grid rotations and under random SO(3) rotations.

Which data (:func:`equivox.evaluation.trained.evaluation_data`) and which rotations on anisotropic voxels
(:func:`equivox.evaluation.rotations.rotations_for_spacing`) the library decides; this module reads the options,
checks those that do not go together and prints."""
from __future__ import annotations

from pathlib import Path

from ._common import MODEL_HELP, CLIError, load_trained, say
from ._parsing import renamed, spelled

NAME = "evaluate"


def add_parser(sub):
    p = sub.add_parser(NAME, help="evaluate a checkpoint under rotations (table, JSON, CSV, plots)",
                       description="Score a checkpoint written by 'equivox train' upright, under the grid rotations "
                                   "and under random SO(3) rotations.")
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--dataset", default=None, help="dataset (default: the one the checkpoint was trained on)")
    p.add_argument("--image-dir", dest="image_dir", default=None,
                   help="segmentation: score every image of this folder (with --label-dir; same names), prepared "
                        "as in training (spacing, intensity from the checkpoint)")
    p.add_argument("--label-dir", dest="label_dir", default=None, help="segmentation: the label folder for --image-dir")
    p.add_argument("--val-crop", dest="val_crop", type=int, default=None,
                   help="segmentation with --image-dir: score a centre crop of this side (to bound memory), as "
                        "training's --val-crop; default: whole volumes (padded to the model's size multiple, one "
                        "direct forward per rotation)")
    renamed(p, "--crop", "--val-crop", "val_crop", type=int)
    p.add_argument("--split", default=None, choices=["train", "val", "test"],
                   help="split to score (default: test for classification; segmentation scores val only)")
    p.add_argument("--rotations", default="standard", choices=["standard", "identity", "grid", "so3"],
                   help="rotation set (standard = identity + grid + n random SO(3))")
    p.add_argument("--elements", default=None, help="group whose grid elements are scored (default: the model's "
                                                    "group, or octa)")
    renamed(p, "--group", "--elements", "elements")
    p.add_argument("--n-random", type=int, default=8, help="number of random SO(3) rotations")
    p.add_argument("--max-items", type=int, default=None, help="score at most this many items (default: all)")
    p.add_argument("--batch-size", type=int, default=32, help="evaluation batch size")
    p.add_argument("--seed", type=int, default=0, help="seed of the random rotations / subsampling")
    p.add_argument("--out", default="outputs/evaluate", help="output folder")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def _check_options(args) -> None:
    """The options that do not go together, named as given (before the model is read)."""
    if args.val_crop is not None and not args.image_dir:
        raise CLIError(f"{spelled(args, 'val_crop', '--val-crop')} is for scoring a labelled folder (--image-dir / "
                       "--label-dir); the training data is scored as the run validated it (its val_crop)")
    if (args.image_dir is None) != (args.label_dir is None):
        raise CLIError("give both --image-dir and --label-dir (a labelled folder pair to score)")


def _check_options_for(args, task: str) -> None:
    """The options that do not go with the checkpoint's task."""
    if task == "segment" and args.split not in (None, "val"):
        raise CLIError(f"--split {args.split}: segmentation checkpoints are scored on the validation split only (the "
                       "training split is random patches of the same files); use --split val, or --image-dir / "
                       "--label-dir to score other labelled data")
    if task == "classify" and args.image_dir:
        raise CLIError("--image-dir/--label-dir are for segmentation checkpoints; give a classification dataset with "
                       "--dataset (a .npz file or a mesh folder)")


def run(args) -> int:
    from ..evaluation import (compare_reports, evaluate_classification, evaluate_segmentation, plot_rotation_scores,
                              rotation_set)
    from ..evaluation.rotations import rotations_for_spacing
    from ..evaluation.trained import evaluation_data, model_label, scored_spacing

    _check_options(args)
    model, hp = load_trained(args.model)
    _check_options_for(args, (hp.get("config") or {}).get("task"))
    own = getattr(model, "group", None)
    group = args.elements or (own if own not in (None, "trivial") else None) or "octa"
    kind, grid_group, note = rotations_for_spacing(args.rotations, group, scored_spacing(hp))
    rots = rotation_set(kind, group=grid_group, n_random=args.n_random, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = model_label(hp, model)
    data = evaluation_data(hp, dataset=args.dataset, image_dir=args.image_dir, label_dir=args.label_dir,
                           val_crop=args.val_crop, split=args.split, max_items=args.max_items, seed=args.seed)
    say(f"equivox evaluate: {name} from {args.model} on {data.where} ({data.description}), {len(rots)} rotations")
    for line in data.notes + ([note] if note else []):
        say(f"  {line}")
    progress = not args.no_progress
    if data.task == "classify":
        rep = evaluate_classification(model, data.inputs, rots, batch_size=args.batch_size,
                                      num_classes=data.num_classes, progress=progress, name=name,
                                      check_equivariance=True)
    else:
        rep = evaluate_segmentation(model, data.inputs, rots, num_classes=data.num_classes, progress=progress,
                                    name=name, check_equivariance=True, class_names=data.class_names,
                                    spacing=data.spacing)
    say(rep.table())
    say(compare_reports([rep]))
    files = [rep.to_json(out / "report.json"), rep.to_csv(out / "report.csv"),
             plot_rotation_scores([rep], out / "rotation_scores.png")]
    say("saved:\n" + "\n".join(f"  {f}" for f in files))
    return 0
