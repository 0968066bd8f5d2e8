"""Figure of the part-segmentation data (``kicad_part_segments``): a few test parts of different families, each as
three label projections (along d, h, w: the most metal-like class on each ray; background white, body grey, metal
orange), so that a reader sees what "find the metal" means and that the labels sit where the pins are.

    python benchmarks/part_segments_figure.py --out benchmarks/results/part_segmentation/parts_slices.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from equivox.data import load_kicad_part_segments

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/part_segmentation/parts_slices.png"))
    p.add_argument("--parts", type=int, default=6, help="parts shown (one per family, families evenly spaced)")
    a = p.parse_args(argv)
    d = load_kicad_part_segments("test")
    fams = np.unique(d["part_class"])
    shown = fams[np.linspace(0, len(fams) - 1, a.parts).astype(int)]
    picks = [int(np.flatnonzero(d["part_class"] == f)[0]) for f in shown]
    cmap = ListedColormap(["white", "0.6", "tab:orange"])
    fig, axes = plt.subplots(len(picks), 3, figsize=(6.6, 2.1 * len(picks)), squeeze=False)
    views = (("along w (top view)", 2), ("along h (side view)", 1), ("along d (front view)", 0))
    for row, i in enumerate(picks):
        lab = d["labels"][i]
        for col, (title, axis) in enumerate(views):
            ax = axes[row, col]
            ax.imshow(lab.max(axis=axis).T, cmap=cmap, vmin=0, vmax=2, origin="lower", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=9)
            if col == 0:
                ax.set_ylabel(f"{d['class_names'][d['part_class'][i]]}\n{Path(str(d['model_path'][i])).stem[:28]}",
                              fontsize=7)
    fig.legend(handles=[Patch(color="0.6", label="body (epoxy, plastic, ceramic, ...)"),
                        Patch(color="tab:orange", label="metal (PIN-*, MET-* materials)")],
               loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle("kicad_part_segments: test parts at 16^3, label projections (metal over body)", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=110)
    print("wrote", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
