"""Rotation-augmented evaluation of segmentation models (image and label rotated together)."""
from __future__ import annotations

import math
import time
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from monai.metrics import DiceMetric
from monai.networks.utils import one_hot

from ..nn.label_swap import permute_labels
from ..nn.module import output_class_permutation
from ._common import check_equivariance_on, default_rotations, eval_mode, iterate_items, as_items, progress_bar
from .report import RotationReport
from .rotations import Rotation

__all__ = ["evaluate_segmentation", "pad_to_multiple", "predict_rotated"]


def pad_to_multiple(x: torch.Tensor, multiple: int, value: float = 0.0) -> Tuple[torch.Tensor, List[int]]:
    """Pad the spatial axes of ``x`` (``(..., D, H, W)``) with ``value`` up to multiples of ``multiple``
    (``lo = extra // 2`` before, the rest after). Returns the padded tensor and the ``F.pad`` list."""
    pads: List[int] = []
    for n in reversed(x.shape[-3:]):
        extra = (-int(n)) % multiple
        pads += [extra // 2, extra - extra // 2]
    if not any(pads):
        return x, pads
    return F.pad(x, pads, value=value), pads


def _prepare(image, label, index, multiple: int, pad: bool):
    image = torch.as_tensor(image).float()
    label = torch.as_tensor(label)
    if image.dim() != 4:
        raise ValueError(f"segmentation item {index}: image must be (C, D, H, W), got shape {tuple(image.shape)}")
    if label.dim() == 3:
        label = label[None]
    if label.dim() != 4 or label.shape[0] != 1:
        raise ValueError(f"segmentation item {index}: label must be (1, D, H, W) class indices, got shape "
                         f"{tuple(label.shape)}")
    if label.shape[1:] != image.shape[1:]:
        raise ValueError(f"segmentation item {index}: image spatial shape {tuple(image.shape[1:])} differs from "
                         f"label shape {tuple(label.shape[1:])}")
    if label.is_floating_point():
        if not torch.equal(label, label.round()):
            raise ValueError(f"segmentation item {index}: label has non-integer values; pass class indices")
    label = label.long()
    valid = torch.ones_like(label, dtype=torch.uint8)
    bad = [int(s) for s in image.shape[1:] if int(s) % multiple]
    if bad and not pad:
        raise ValueError(f"segmentation item {index}: spatial size {tuple(image.shape[1:])} is not divisible by the "
                         f"model's size_multiple={multiple}; pass pad=True or pad/crop the data "
                         f"(monai.transforms.DivisiblePadd(k={multiple}))")
    if bad:
        image, _ = pad_to_multiple(image, multiple)
        label, _ = pad_to_multiple(label, multiple)
        valid, _ = pad_to_multiple(valid, multiple)
    return image[None], label[None], valid[None]


def _mean_present(dice: torch.Tensor) -> Optional[float]:
    """Mean over the foreground classes of one item's Dice row (the ``(1, K-1)`` value of one ``DiceMetric``
    call; NaN for classes absent from the item's label are skipped); ``None`` when every class is absent."""
    vals = [float(v) for v in dice.float().reshape(-1).cpu() if not math.isnan(float(v))]
    return sum(vals) / len(vals) if vals else None


def _improper(rotation: Rotation) -> bool:
    return float(np.linalg.det(rotation.matrix_array)) < 0


def _model_permutation(model, class_permutation):
    return class_permutation if class_permutation is not None else output_class_permutation(model)


def predict_rotated(model: torch.nn.Module, image: torch.Tensor, rotation: Rotation,
                    inferer: Optional[Callable] = None,
                    class_permutation: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Predicted class map of ``model`` for ``rotation.apply_image(image)``, mapped back upright.

    ``image``: ``(B, C, D, H, W)``; returns ``(B, 1, D, H, W)`` long (exact inverse for grid rotations; nearest
    resampling, with background at the cut corners, for so3). The model runs in eval mode on ``image``'s device
    (training flag restored); without an inferer, sizes are padded to ``model.size_multiple`` as in
    :func:`evaluate_segmentation` and the prediction cropped back. Used for upright-vs-rotated figures.
    For an improper ``rotation`` the classes are mapped back through ``class_permutation`` (default
    the model's output spec's, :func:`~equivox.nn.module.output_class_permutation`: left/right classes of a
    label-permuting model)."""
    if not isinstance(image, torch.Tensor) or image.dim() != 5:
        raise ValueError(f"predict_rotated expects an image (B, C, D, H, W), got "
                         f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
    multiple = 1 if inferer is not None else int(getattr(model, "size_multiple", 1) or 1)
    x, pads = pad_to_multiple(image.float(), multiple)
    with eval_mode(model, image.device):
        xr = rotation.apply_image(x)
        logits = inferer(xr, model) if inferer is not None else model(xr)
        pred = rotation.inverse_apply_label(logits.argmax(1, keepdim=True))
        perm = _model_permutation(model, class_permutation)
        if perm is not None and _improper(rotation):
            pred = permute_labels(pred, perm)
    if any(pads):
        d, h, w = pred.shape[-3:]
        pred = pred[..., pads[4]:d - pads[5], pads[2]:h - pads[3], pads[0]:w - pads[1]]
    return pred


def _check_physical(rotations: Sequence[Rotation], spacing: Optional[Sequence[float]]) -> None:
    """Refuse rotations of the voxel array that are not rotations of the scan on voxels of ``spacing``."""
    if spacing is None:
        return
    sp = np.asarray([float(v) for v in spacing])
    if np.allclose(sp, sp[0], rtol=1e-3):
        return
    for r in rotations:
        m = np.abs(np.asarray(r.matrix, dtype=float))
        if not r.exact or not np.allclose(m @ sp, sp, rtol=1e-3):
            raise ValueError(f"rotation {r.name} is not a rotation of the scan on anisotropic voxels "
                             f"({'x'.join(f'{v:g}' for v in sp)} mm); score only the rotations exact for this "
                             "spacing (rotation_set('grid', group=equivox.groups.auto_group(spacing)[0])) or resample "
                             "to isotropic voxels first")


def evaluate_segmentation(
    model: torch.nn.Module,
    data,
    rotations: Optional[Sequence[Rotation]] = None,
    *,
    num_classes: int,
    device="cpu",
    progress: bool = True,
    name: Optional[str] = None,
    inferer: Optional[Callable] = None,
    pad: bool = True,
    check_equivariance: bool = False,
    class_names: Optional[Sequence[str]] = None,
    class_permutation: Optional[Sequence[int]] = None,
    spacing: Optional[Sequence[float]] = None,
) -> RotationReport:
    """Dice of a segmentation model on every rotation, image and label rotated together, scored in the rotated
    frame.

    Args:
        model: maps ``(B, C, D, H, W)`` to per-voxel logits ``(B, K, D, H, W)``; runs in eval mode, no_grad.
        data: dataset / list / iterable of ``{"image": (C, D, H, W), "label": (1, D, H, W)}`` dicts or
            ``(image, label)`` pairs (e.g. :class:`equivox.data.ChestCTDataset` with a crop transform), or a
            tuple ``(images (N, C, D, H, W), labels (N, 1, D, H, W))``, or a ``DataLoader`` of such batches
            (unbatched). Items are evaluated one at a time, so their sizes may differ.
        rotations: list of :class:`Rotation` (default ``rotation_set("standard", group=model.group)``).
        num_classes: K, including background (class 0).
        inferer: optional ``inferer(x, model)`` (e.g. ``monai.inferers.SlidingWindowInferer``); default calls
            ``model(x)``.
        pad: without an inferer, volumes whose sizes are not multiples of ``model.size_multiple`` are padded with
            zeros (image) / background (label) in the upright frame, then rotated; padded voxels are excluded from
            the score (prediction forced to background there). ``pad=False`` raises ``ValueError`` instead.
        check_equivariance: measure the model's equivariance error on the first (padded) item over the grid
            rotations of the set; sets ``report.equivariance_error``.
        class_names: names for the per-class columns (``len == num_classes``, background first); default
            ``"1" .. "K-1"``.
        class_permutation: classes that swap under improper rotations (reflections), e.g. ``(0, 2, 1)`` for
            left/right lung: the rotated label of an improper rotation is mapped through it (a reflected left lung
            is a right lung). Default: the model's (its output spec's ``class_permutation``, set by
            ``EquivariantUNet(class_swaps=...)`` / ``canonicalize(..., "segment", class_swaps=...)``;
            :func:`~equivox.nn.module.output_class_permutation`);
            ``None``: labels keep their classes.
        spacing: the volumes' voxel spacing ``(D, H, W)`` in mm, when known. On anisotropic voxels a rotation of
            the voxel array is a rotation of the scan only when it maps every axis onto an axis of the same
            spacing: any other rotation in the set (random SO(3), or a grid element swapping axes of different
            spacing) raises ``ValueError`` naming it (use :func:`equivox.groups.auto_group` for the exact group).

    Returns:
        :class:`RotationReport` with primary metric ``"dice"`` (mean Dice over foreground classes, averaged over
        items; MONAI ``DiceMetric(include_background=False)``; classes absent from an item's rotated label are
        skipped for that item) and one ``"dice_<class>"`` column per foreground class.
        ``report.per_item[rotation name]`` is each volume's mean foreground Dice (over the classes present in
        its rotated label; ``None`` if none is), in data order: the per-item numbers of the same ``DiceMetric``
        calls (their plain mean can differ from the ``"dice"`` column, which averages per class first).
        Grid rotations are exact (voxel permutations of image and label); so3 rotations resample the image
        (trilinear) and the label (nearest) and lose the corners of the box (see :class:`Rotation`).
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 (background + at least one class), got {num_classes}")
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} names, expected num_classes={num_classes}")
    names = [str(c) for c in (class_names or range(num_classes))][1:]
    rotations = default_rotations(model, rotations)
    _check_physical(rotations, spacing)
    perm = _model_permutation(model, class_permutation)
    if perm is not None and sorted(perm) != list(range(num_classes)):
        raise ValueError(f"class_permutation {tuple(perm)} is not a permutation of the {num_classes} classes")
    multiple = 1 if inferer is not None else int(getattr(model, "size_multiple", 1) or 1)
    metrics = [DiceMetric(include_background=False, reduction="mean_batch", ignore_empty=True) for _ in rotations]
    _, n = as_items(data)
    eq_err = by_el = None
    item_dice: List[List[Optional[float]]] = [[] for _ in rotations]
    count = 0
    t0 = time.perf_counter()
    with eval_mode(model, device):
        bar = progress_bar(None if n is None else n * len(rotations), "rotations x volumes", progress)
        try:
            for idx, (image, label) in enumerate(iterate_items(data)):
                x, y, valid = _prepare(image, label, idx, multiple, pad)
                x, y, valid = x.to(device), y.to(device), valid.to(device)
                if int(y.max()) >= num_classes or int(y.min()) < 0:
                    raise ValueError(f"segmentation item {idx}: label values must be in [0, {num_classes}), got "
                                     f"range [{int(y.min())}, {int(y.max())}]")
                if idx == 0 and check_equivariance:
                    eq_err, by_el = check_equivariance_on(model, x, rotations)
                count += 1
                for rot, metric, items in zip(rotations, metrics, item_dice):
                    xr, yr, vr = rot.apply_image(x), rot.apply_label(y), rot.apply_label(valid)
                    if perm is not None and _improper(rot):
                        yr = permute_labels(yr, perm)
                    logits = inferer(xr, model) if inferer is not None else model(xr)
                    if logits.dim() != 5 or logits.shape[2:] != xr.shape[2:] or logits.shape[1] != num_classes:
                        raise ValueError(f"segmentation output must be logits (B, {num_classes}, D, H, W) matching "
                                         f"the input {tuple(xr.shape)}, got {tuple(logits.shape)}")
                    pred = logits.argmax(1, keepdim=True) * vr  # padded voxels: background in both
                    yr = yr * vr
                    dice = metric(y_pred=one_hot(pred, num_classes), y=one_hot(yr, num_classes))
                    items.append(_mean_present(dice))
                    bar.update(1)
        finally:
            bar.close()
    if count == 0:
        raise ValueError("evaluate_segmentation got no data items")
    rows = []
    for rot, metric in zip(rotations, metrics):
        per_class = metric.aggregate().float().cpu()
        vals = [None if math.isnan(float(v)) else float(v) for v in per_class]
        present = [v for v in vals if v is not None]
        row = {"rotation": rot.name, "kind": rot.kind, "exact": rot.exact,
               "dice": sum(present) / len(present) if present else None}
        row.update({f"dice_{c}": v for c, v in zip(names, vals)})
        rows.append(row)
    meta = {"task": "segmentation", "n_samples": count, "num_classes": int(num_classes),
            "n_rotations": len(rotations), "device": str(device), "seconds": round(time.perf_counter() - t0, 3),
            "model": type(model).__name__, "group": getattr(model, "group", None), "padded_to_multiple": multiple,
            "class_permutation": list(perm) if perm is not None else None}
    per_item = {rot.name: items for rot, items in zip(rotations, item_dice)}
    return RotationReport(name or type(model).__name__, "dice", rows, eq_err, by_el, meta, per_item)
