"""Rotation-augmented evaluation of classifiers."""
from __future__ import annotations

import time
from typing import List, Optional, Sequence

import torch
from torchmetrics.functional.classification import binary_auroc, multiclass_accuracy

from ._common import as_items, is_loader, loader_batches, check_equivariance_on, default_rotations, eval_mode, progress_bar, split_item
from .report import RotationReport
from .rotations import Rotation

__all__ = ["evaluate_classification", "CLASSIFICATION_METRICS"]

CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "auroc")


def _batches(data, batch_size: int):
    if is_loader(data):  # use the loader's own batches
        for x, y in loader_batches(data):
            yield _stack(list(zip(x, y)), 0)
        return
    items, n = as_items(data)
    if n is not None and hasattr(items, "__getitem__"):
        index = range(n)
        get = items.__getitem__
        for start in range(0, n, batch_size):
            chunk = [split_item(get(i), i) for i in index[start:start + batch_size]]
            yield _stack(chunk, start)
    else:
        chunk, start = [], 0
        for i, item in enumerate(items):
            chunk.append(split_item(item, i))
            if len(chunk) == batch_size:
                yield _stack(chunk, start)
                chunk, start = [], i + 1
        if chunk:
            yield _stack(chunk, start)


def _stack(chunk, start):
    images, labels = [], []
    for j, (img, lab) in enumerate(chunk):
        img, lab = torch.as_tensor(img), torch.as_tensor(lab)
        if img.dim() != 4:
            raise ValueError(f"classification item {start + j}: image must be (C, D, H, W), got shape "
                             f"{tuple(img.shape)}")
        if lab.numel() != 1:
            raise ValueError(f"classification item {start + j}: label must be one class index, got shape "
                             f"{tuple(lab.shape)}")
        images.append(img.float())
        labels.append(int(lab.reshape(())))
    shapes = {tuple(i.shape) for i in images}
    if len(shapes) > 1:
        raise ValueError(f"classification items {start}..{start + len(chunk) - 1} have different image shapes "
                         f"{sorted(shapes)}; resize/pad them to one size (e.g. monai.transforms.ResizeWithPadOrCrop)")
    return torch.stack(images), torch.tensor(labels, dtype=torch.long)


def _scores(probs: torch.Tensor, target: torch.Tensor, num_classes: int) -> dict:
    out = {
        "accuracy": float(multiclass_accuracy(probs, target, num_classes=num_classes, average="micro")),
        "balanced_accuracy": float(multiclass_accuracy(probs, target, num_classes=num_classes, average="macro")),
    }
    if num_classes == 2:
        both = bool((target == 0).any() and (target == 1).any())
        out["auroc"] = float(binary_auroc(probs[:, 1], target)) if both else None
    return out


def evaluate_classification(
    model: torch.nn.Module,
    data,
    rotations: Optional[Sequence[Rotation]] = None,
    *,
    batch_size: int = 32,
    device="cpu",
    num_classes: Optional[int] = None,
    progress: bool = True,
    name: Optional[str] = None,
    metric: str = "accuracy",
    check_equivariance: bool = False,
) -> RotationReport:
    """Score a classifier on every rotation of the inputs (labels are not rotated: classes are rotation-invariant).

    Args:
        model: maps ``(B, C, D, H, W)`` to logits ``(B, K)``; any ``nn.Module`` (equivox, MONAI, plain torch).
            It runs in eval mode under ``no_grad``; its training flag is restored afterwards.
        data: a dataset / list / iterable of ``(image (C, D, H, W), label)`` pairs or ``{"image", "label"}`` dicts
            (e.g. :class:`equivox.data.LIDCNoduleDataset`), a tuple ``(images (N, C, D, H, W), labels (N,))``, or
            a ``DataLoader`` yielding such batches (its batches are used as they are; ``batch_size`` is ignored).
            All images must share one shape.
        rotations: list of :class:`Rotation` (default ``rotation_set("standard", group=model.group)``).
        batch_size: images per forward pass. device: where the model runs.
        num_classes: K (default: ``model.out_channels``, else the logits' width).
        progress: tqdm progress bar over (batch, rotation) passes.
        name: report name (default: the model's class name). metric: the primary metric, one of
            ``"accuracy"``, ``"balanced_accuracy"``, ``"auroc"`` (2 classes only).
        check_equivariance: also measure the model's invariance error on the first batch (up to 4 items) over the
            grid rotations of the set (:func:`equivox.testing.equivariance_errors`); sets
            ``report.equivariance_error``.

    Returns:
        :class:`RotationReport` with columns ``accuracy``, ``balanced_accuracy`` (mean per-class recall) and, for
        two classes, ``auroc`` (of the softmax probability of class 1; ``None`` if only one class is present).
        ``report.per_item[rotation name]`` is the 0/1 correctness (argmax == label) of every item, in data order;
        its mean is the ``accuracy`` column.
    """
    if metric not in CLASSIFICATION_METRICS:
        raise ValueError(f"metric must be one of {CLASSIFICATION_METRICS}, got {metric!r}")
    rotations = default_rotations(model, rotations)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _, n = as_items(data)
    n_batches = None if n is None else -(-n // batch_size)
    probs: List[List[torch.Tensor]] = [[] for _ in rotations]
    targets: List[torch.Tensor] = []
    eq_err = by_el = None
    t0 = time.perf_counter()
    with eval_mode(model, device):
        bar = progress_bar(None if n_batches is None else n_batches * len(rotations), "rotations x batches",
                           progress)
        try:
            for b, (x, y) in enumerate(_batches(data, batch_size)):
                x = x.to(device)
                if b == 0 and check_equivariance:
                    eq_err, by_el = check_equivariance_on(model, x[:4], rotations)
                targets.append(y)
                for i, rot in enumerate(rotations):
                    logits = model(rot.apply_image(x))
                    if logits.dim() != 2:
                        raise ValueError(f"classifier output must be logits (B, K), got shape {tuple(logits.shape)}")
                    probs[i].append(torch.softmax(logits.float(), dim=1).cpu())
                    bar.update(1)
        finally:
            bar.close()
    if not targets:
        raise ValueError("evaluate_classification got no data items")
    target = torch.cat(targets)
    k = num_classes or getattr(model, "out_channels", None) or probs[0][0].shape[1]
    if probs[0][0].shape[1] != k:
        raise ValueError(f"num_classes={k} but the model outputs {probs[0][0].shape[1]} logits")
    if int(target.max()) >= k or int(target.min()) < 0:
        raise ValueError(f"labels must be class indices in [0, {k}), got range [{int(target.min())}, "
                         f"{int(target.max())}]")
    if metric == "auroc" and k != 2:
        raise ValueError(f"metric='auroc' needs 2 classes, got {k}")
    rows = []
    per_item = {}
    for rot, p in zip(rotations, probs):
        p = torch.cat(p)
        rows.append({"rotation": rot.name, "kind": rot.kind, "exact": rot.exact, **_scores(p, target, k)})
        per_item[rot.name] = (p.argmax(1) == target).int().tolist()  # 0/1 correctness, data order
    meta = {"task": "classification", "n_samples": int(len(target)), "num_classes": int(k),
            "n_rotations": len(rotations), "device": str(device), "seconds": round(time.perf_counter() - t0, 3),
            "model": type(model).__name__, "group": getattr(model, "group", None)}
    return RotationReport(name or type(model).__name__, metric, rows, eq_err, by_el, meta, per_item)
