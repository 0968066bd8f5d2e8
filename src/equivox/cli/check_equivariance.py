"""``equivox check-equivariance``: a model's relative equivariance error per group element."""
from __future__ import annotations

import json
from pathlib import Path

from ._common import CLIError, load_trained, say
from ._parsing import Renamed, parse_ints

NAME = "check-equivariance"


def add_parser(sub):
    p = sub.add_parser(NAME, help="measure a model's equivariance error per group element",
                       description="Load a model (or build a fresh one), feed a random cube and its rotations, print "
                                   "the per-element relative error table and save a bar plot.")
    p.add_argument("model", nargs="?", default=None,
                   help="trained model: a checkpoint from 'equivox train' or 'equivox canonicalize' (.ckpt or "
                        "canonicalized.pt), or any model file 'equivox canonicalize' reads (default: a fresh model "
                        "built from --task, --group, --channels, --strides)")
    p.add_argument("--checkpoint", dest="checkpoint_alias", action=Renamed, default=None,
                   new="give the model as the positional argument: equivox check-equivariance MODEL")
    p.add_argument("--task", default="segment", choices=["segment", "classify"],
                   help="fresh model: segment (EquivariantUNet) or classify (InvariantClassifier)")
    p.add_argument("--model", dest="task", action=Renamed, choices=["unet", "classifier"],
                   new="use --task segment (unet) or --task classify (classifier)",
                   convert=lambda v: "segment" if v == "unet" else "classify")
    p.add_argument("--group", default="octa", help="group of the fresh model, field options allowed (e.g. "
                                                    "'so3_irreps(filter_lmax=3)')")
    p.add_argument("--elements", default=None, help="group whose grid elements are checked (default: the model's "
                                                    "group, or octa)")
    p.add_argument("--channels", type=parse_ints, default=[2, 2], help="hidden fields per level of the fresh model")
    p.add_argument("--strides", type=parse_ints, default=[2], help="strides of the fresh model")
    p.add_argument("--size", type=int, default=16, help="side of the random input cube")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the input")
    p.add_argument("--out", default="outputs/check-equivariance", help="output folder for the plot and JSON")
    return p


def run(args) -> int:
    import torch

    from ..baselines import build_from_spec
    from ..evaluation import plot_equivariance_errors
    from ..evaluation.trained import model_label
    from ..testing import equivariance_errors, format_error_table

    if args.model is not None and args.checkpoint_alias is not None:
        raise CLIError("give the model once: as the positional argument (--checkpoint is its deprecated spelling)")
    path = args.model if args.model is not None else args.checkpoint_alias
    if path is not None:
        model, hp = load_trained(path, need_settings=False)
        label = model_label(hp, model)
    else:
        from ..groups import group_name_error

        error = group_name_error(args.group, "--group")
        if error:
            raise CLIError(error)
        torch.manual_seed(args.seed)
        from ..models import network_class

        kind = "unet" if args.task == "segment" else "classifier"
        cls = network_class(args.task)
        say(f"building {cls}(group={args.group}, channels={args.channels}, strides={args.strides}) "
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
    say(format_error_table(errs, title=f"{label}: relative equivariance error per element of {elements}"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot = plot_equivariance_errors({label: errs}, out / "equivariance_errors.png",
                                    title=f"{label}: elements of {elements}")
    js = out / "equivariance_errors.json"
    js.write_text(json.dumps({"model": label, "elements": elements, "input_size": args.size,
                              "errors": [e.__dict__ for e in errs]}, indent=2))
    say(f"saved:\n  {plot}\n  {js}")
    return 0
