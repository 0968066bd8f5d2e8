"""``equivox demo``: the main demo (:func:`equivox.demo.run_demo`). Its training options are
:class:`~equivox.config.TrainConfig`'s fields (generated); ``--help`` lists the ones the demo's presets use
(:data:`equivox.demo.DEMO_PRESETS`) with the presets' values as defaults, and accepts the others hidden (the demo
says it does not use them)."""
from __future__ import annotations

from typing import Any, Dict, Optional, Set

from ..config import Option
from ._parsing import renamed, shown
from .config_options import add_config_options, given_settings, option_default_text

NAME = "demo"
#: TrainConfig fields the demo has its own options for (--task, --dataset, --out, --no-progress), or that its four
#: roles fix
SKIPPED = ("task", "dataset", "image_dir", "label_dir", "arch", "resume", "num_classes", "model", "strict", "out_dir",
           "overwrite", "progress", "plots", "extra")


def demo_settings() -> Set[str]:
    """The TrainConfig settings the demo's presets use: only these training options are listed by ``demo --help``
    (the others are accepted, and the demo says it does not use them)."""
    from ..demo import DEMO_PRESETS

    return {k for preset in DEMO_PRESETS for k in preset.uses}


def _default_text(o: Option) -> Optional[str]:
    """The presets' values of ``o`` (``classify 25, segment 8, ...; with --quick 1``)."""
    from ..demo import DEMO_PRESETS

    full = [(p.label, p.settings()[o.name]) for p in DEMO_PRESETS if o.name in p.uses]
    quick = [(p.label, p.settings(quick=True)[o.name]) for p in DEMO_PRESETS if o.name in p.uses]
    if not full:
        return None

    def join(pairs):
        texts = [option_default_text(o, v, use_default=False) for _, v in pairs]
        if len(set(texts)) == 1:
            return texts[0]
        return ", ".join(f"{n} {t}" for (n, _), t in zip(pairs, texts))
    text, quick_text = join(full), join(quick)
    return text if quick_text == text else f"{text}; with --quick {quick_text}"


def _max_items_text() -> str:
    """The demo's test-item limits: classify in :func:`equivox.demo.run_demo`, segment in its presets."""
    from ..demo import DEMO_PRESETS

    parts = ["classify all, 16 with --quick"]
    for p in DEMO_PRESETS:
        if "max_test" in p.test:
            full, quick = (shown(p.settings(q)["max_test"]).replace("none", "all") for q in (False, True))
            parts.append(f"{p.label} {full}" + (f", {quick} with --quick" if quick != full else ""))
    return "; ".join(parts)


def add_parser(sub):
    p = sub.add_parser(NAME, help="the main demo: equivariant model vs plain CNNs under rotations",
                       description="Train an octa-equivariant model, a parameter-matched plain CNN, the plain CNN "
                                   "with rotation augmentation and the plain CNN behind an exactly equivariant "
                                   "canonicalizer on bundled real data (upright), evaluate all four "
                                   "upright / under the 24 cube rotations / under random SO(3) rotations, print the "
                                   "comparison and save plots, JSON and CSV. The training options below override the "
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
                   help=f"test items to score (default: {_max_items_text()})")
    renamed(p, "--max-test", "--max-items", "max_items", type=int)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_config_options(p, skip=SKIPPED, only=demo_settings(), default_text=_default_text)
    return p


def run(args) -> int:
    from ..demo import run_demo

    overrides: Dict[str, Any] = dict(given_settings(args), dataset=args.dataset)
    if args.demo_task == "segment":  # the segmentation presets' test-volume limit (classify: run_demo's max_test)
        overrides["max_test"] = args.max_items
    run_demo(task=args.demo_task, quick=args.quick, out=args.out, config=args.config, n_random=args.n_random,
             max_test=args.max_items, progress=not args.no_progress, overrides=overrides)
    return 0
