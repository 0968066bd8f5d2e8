"""``equivox predict``: apply a trained model to new scans with its training run's preprocessing."""
from __future__ import annotations

from pathlib import Path

from ._common import MODEL_HELP, CLIError, load_trained, say

NAME = "predict"


def add_parser(sub):
    p = sub.add_parser(NAME, help="predict masks (segmentation) or classes (classification) for new scans",
                       description="Apply a checkpoint from 'equivox train' to new data with the training run's "
                                   "preprocessing (orientation, spacing, intensity rule). Segmentation: "
                                   "sliding-window inference, one NIfTI mask <name>_seg.nii.gz per image with the "
                                   "input's affine and voxel grid (--probabilities: <name>_prob.nii.gz). "
                                   "Classification: predictions.csv with the class and every class probability.")
    p.add_argument("model", help=MODEL_HELP)
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
    return p


def run(args) -> int:
    from ..evaluation.trained import as_trained, model_label
    from ..prediction import input_files, predict_classification, predict_segmentation

    model, hp = load_trained(args.model)
    hp, size_note = as_trained(hp)
    if size_note:
        say(f"  {size_note}")
    cfg = dict(hp.get("config") or {})
    task = cfg.get("task", "segment")
    paths = input_files(args.image_dir, args.files, task)
    name = model_label(hp, model)
    if task == "segment":
        rule = args.intensity or cfg.get("intensity") or "none"
        say(f"equivox predict: {name} from {args.model} on {len(paths)} image(s); preprocessing as trained: RAS, "
            f"spacing {cfg.get('spacing') or 'as stored'}, intensity {rule}; sliding window "
            f"{cfg.get('patch_size')}^3 -> {args.out}")
        try:  # every input is checked before the first mask is written; each mask is written atomically
            predict_segmentation(model, hp, paths, args.out, probabilities=args.probabilities,
                                 intensity=args.intensity, sw_batch_size=args.batch_size, overlap=args.overlap,
                                 say=say, plots=not args.no_plots, model_name=name)
        except OSError as err:
            if isinstance(err, FileNotFoundError):
                raise
            raise CLIError(str(err)) from None
        say(f"wrote {len(paths)} mask(s) to {args.out}")
        return 0
    say(f"equivox predict: {name} from {args.model} on {len(paths)} file(s) -> {args.out}")
    path, rows = predict_classification(model, hp, paths, Path(args.out) / "predictions.csv",
                                        batch_size=max(args.batch_size, 1))
    for row in rows[:10]:
        say(f"  {row['input']}: {row['predicted']}")
    if len(rows) > 10:
        say(f"  ... {len(rows) - 10} more")
    say(f"wrote {path}")
    return 0
