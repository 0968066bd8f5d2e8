"""3D organ segmentation on the bundled chest CT, written as MONAI's 3D segmentation tutorial, with a
rotation-equivariant network. The only change against the tutorial is the network line:

    model = UNet(spatial_dims=3, in_channels=1, out_channels=6, channels=(8, 16, 32), strides=(2, 2), ...)
    model = EquivariantUNet(spatial_dims=3, in_channels=1, out_channels=6, channels=(2, 4, 4), strides=(2, 2),
                            group="octa")

Both models are trained with the same MONAI pipeline (LoadImaged -> Orientationd -> Spacingd ->
ScaleIntensityRanged -> RandCropByPosNegLabeld, DiceCELoss, Adam, DiceMetric, sliding_window_inference) and then
evaluated on rotated copies of the volume with :func:`equivox.evaluation.evaluate_segmentation` (identity, the 24
exact cube rotations, random SO(3) rotations). MONAI's UNet is trained with upright patches only, as in the
tutorial; pass ``--augment`` to add ``equivox.data.RandGridRotatedd`` to both pipelines.

The sample is ONE CT volume: the model is trained on patches of it and evaluated on the whole of it. This shows the
pipeline and the rotation behaviour, not generalisation to new patients.

Usage::

    python examples/monai_segmentation.py                 # a few minutes per model on a laptop CPU
    python examples/monai_segmentation.py --quick         # seconds: tiny run used by the tests
    python examples/monai_segmentation.py --iterations 200 --out outputs/monai_seg

Outputs in ``--out``: ``rotation_report_<model>.json``, ``rotation_dice.png`` (Dice per rotation, both models),
``segmentation_slices.png`` (upright vs. rotated prediction), ``summary.json`` (timings, Dice, settings).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")

import torch  # noqa: E402
from monai.data import CacheDataset, DataLoader, decollate_batch  # noqa: E402
from monai.inferers import sliding_window_inference  # noqa: E402
from monai.losses import DiceCELoss  # noqa: E402
from monai.metrics import DiceMetric  # noqa: E402
from monai.networks.nets import UNet  # noqa: E402
from monai.transforms import (AsDiscrete, Compose, DivisiblePadd, EnsureChannelFirstd, EnsureTyped,  # noqa: E402
                              LoadImaged, Orientationd, RandCropByPosNegLabeld, ScaleIntensityRanged, Spacingd)
from monai.utils import set_determinism  # noqa: E402
from tqdm import tqdm  # noqa: E402

from equivox.data import RandGridRotatedd, bundled_path  # noqa: E402
from equivox.evaluation import (compare_reports, evaluate_segmentation, plot_rotation_scores,  # noqa: E402
                                plot_segmentation_slices, predict_rotated, rotation_set)
from equivox.nets import EquivariantUNet  # noqa: E402

NUM_CLASSES = 6
CLASS_NAMES = ["background", "lungs", "heart", "aorta", "liver", "vertebrae"]
KEYS = ["image", "label"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny run (12 mm voxels, 1 iteration, 3 rotations)")
    p.add_argument("--iterations", type=int, default=60, help="training iterations per model (default 60)")
    p.add_argument("--spacing", type=float, default=6.0, help="voxel size in mm (default 6)")
    p.add_argument("--patch", type=int, default=24, help="training patch / sliding window size (default 24)")
    p.add_argument("--group", default="octa", help="equivox group of the equivariant U-Net (default octa)")
    p.add_argument("--n-random", type=int, default=4, help="random SO(3) rotations in the evaluation (default 4)")
    p.add_argument("--augment", action="store_true", help="rotation augmentation (RandGridRotatedd) for both")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="outputs/monai_segmentation", help="output folder")
    args = p.parse_args(argv)
    if args.quick:
        args.iterations, args.spacing, args.patch, args.n_random = 1, 12.0, 16, 1
    return args


def build_network(kind: str, args) -> torch.nn.Module:
    """The network line of the tutorial: MONAI's UNet, or equivox's EquivariantUNet in its place."""
    if kind == "UNet":
        return UNet(spatial_dims=3, in_channels=1, out_channels=NUM_CLASSES, channels=(8, 16, 32), strides=(2, 2),
                    num_res_units=1, norm="batch")
    return EquivariantUNet(spatial_dims=3, in_channels=1, out_channels=NUM_CLASSES, channels=(2, 4, 4),
                           strides=(2, 2), group=args.group, norm="batch")


def transforms(args, train: bool) -> Compose:
    """The tutorial's dictionary transforms; sizes padded to a multiple of 4 (= prod(strides)) for exactness."""
    t = [
        LoadImaged(KEYS, image_only=True),
        EnsureChannelFirstd(KEYS),
        Orientationd(KEYS, axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
        Spacingd(KEYS, pixdim=(args.spacing,) * 3, mode=("bilinear", "nearest")),
        ScaleIntensityRanged("image", a_min=-1000, a_max=1000, b_min=0.0, b_max=1.0, clip=True),
        DivisiblePadd(KEYS, k=4),
    ]
    if train:
        t.append(RandCropByPosNegLabeld(KEYS, label_key="label", spatial_size=(args.patch,) * 3, pos=1, neg=1,
                                        num_samples=2, image_key="image", image_threshold=0))
        if args.augment:
            t.append(RandGridRotatedd(KEYS, group="octa"))
    t.append(EnsureTyped(KEYS))
    return Compose(t)


def train(model: torch.nn.Module, name: str, args, train_ds, val_ds) -> dict:
    """The tutorial's training loop (DiceCELoss, Adam, sliding-window validation with DiceMetric)."""
    loader = DataLoader(train_ds, batch_size=2, shuffle=True, num_workers=0)
    loss_function = DiceCELoss(to_onehot_y=True, softmax=True)
    optimizer = torch.optim.Adam(model.parameters(), args.lr)
    dice_metric = DiceMetric(include_background=False, reduction="mean")
    post_pred, post_label = AsDiscrete(argmax=True, to_onehot=NUM_CLASSES), AsDiscrete(to_onehot=NUM_CLASSES)
    losses, step, t0 = [], 0, time.perf_counter()
    bar = tqdm(total=args.iterations, desc=f"train {name}", unit="it")
    while step < args.iterations:
        model.train()
        for batch in loader:
            inputs, labels = batch["image"], batch["label"]
            optimizer.zero_grad()
            loss = loss_function(model(inputs), labels)
            loss.backward()
            optimizer.step()
            losses.append(float(loss))
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            if step >= args.iterations:
                break
    bar.close()
    train_s = time.perf_counter() - t0
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        for val in DataLoader(val_ds, batch_size=1):
            out = sliding_window_inference(val["image"], (args.patch,) * 3, 4, model, overlap=0.25)
            preds = [post_pred(i) for i in decollate_batch(out)]
            labels = [post_label(i) for i in decollate_batch(val["label"])]
            dice_metric(y_pred=preds, y=labels)
    val_dice = float(dice_metric.aggregate())
    return {"model": name, "parameters": sum(p.numel() for p in model.parameters()), "iterations": step,
            "train_seconds": round(train_s, 1), "seconds_per_iteration": round(train_s / max(step, 1), 2),
            "sliding_window_dice": round(val_dice, 4), "sliding_window_seconds": round(time.perf_counter() - t0, 2),
            "first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4)}


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    set_determinism(seed=args.seed)
    files = [{"image": str(bundled_path("chest_ct_3mm_image.nii.gz")),
              "label": str(bundled_path("chest_ct_3mm_label.nii.gz"))}]
    train_ds = CacheDataset(files * 4, transforms(args, train=True), cache_rate=1.0, progress=False)
    val_ds = CacheDataset(files, transforms(args, train=False), cache_rate=1.0, progress=False)

    rotations = rotation_set("standard", group="octa", n_random=args.n_random, seed=args.seed)
    if args.quick:  # identity, 1 cube rotation, 1 random rotation
        rotations = rotations[:1] + rotations[3:4] + rotations[-args.n_random:]
    results, reports, models = [], [], {}
    for kind in ("EquivariantUNet", "UNet"):
        torch.manual_seed(args.seed)
        model = build_network(kind, args)
        name = f"{kind}({args.group})" if kind == "EquivariantUNet" else kind
        res = train(model, name, args, train_ds, val_ds)
        report = evaluate_segmentation(model, val_ds, rotations, num_classes=NUM_CLASSES, name=name,
                                       class_names=CLASS_NAMES, check_equivariance=True)
        with torch.no_grad():  # how much the logits vary over the volume (0 for a constant predictor)
            logits = sliding_window_inference(val_ds[0]["image"].as_tensor()[None], (args.patch,) * 3, 4,
                                              model.eval(), overlap=0.25)
        res["logit_spatial_std"] = float(logits.std(dim=(2, 3, 4)).max())
        res["logit_abs_max"] = float(logits.abs().max())
        res["equivariance_error"] = report.equivariance_error
        res["rotation_summary"] = report.summary()
        res["rotation_eval_seconds"] = report.meta.get("seconds")
        report.to_json(out / f"rotation_report_{kind}.json")
        results.append(res)
        reports.append(report)
        models[name] = model
        print(report.table())
    print(compare_reports(reports))
    plot_rotation_scores(reports, out / "rotation_dice.png", title="Dice per rotation of the chest CT")
    item = val_ds[0]
    image, label = item["image"].as_tensor()[None], item["label"].as_tensor()
    rot = next(r for r in rotations if r.kind == "grid" and not np.allclose(r.matrix_array, np.eye(3)))
    preds = {}
    for name, model in models.items():
        model.eval()
        preds[f"{name} upright"] = predict_rotated(model, image, rotations[0])[0]
        preds[f"{name} {rot.name}"] = predict_rotated(model, image, rot)[0]
    plot_segmentation_slices(image[0], label, preds, out / "segmentation_slices.png")
    summary = {"settings": {k: v for k, v in vars(args).items()}, "rotations": [r.name for r in rotations],
               "results": results, "device": "cpu", "torch_threads": torch.get_num_threads()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    for r in results:
        s = r["rotation_summary"]
        print(f"{r['model']:>22}: params {r['parameters']:>7}  sliding-window Dice {r['sliding_window_dice']:.3f}  "
              f"upright {s['upright']:.3f}  worst grid {s['worst_grid']:.3f}  mean so3 "
              f"{s['mean_so3'] if s['mean_so3'] is None else round(s['mean_so3'], 3)}")
    print(f"outputs in {out}")
    return summary


if __name__ == "__main__":
    main()
