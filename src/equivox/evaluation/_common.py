"""Shared helpers: reading (image, label) items, model mode/device handling, equivariance check."""
from __future__ import annotations

import contextlib
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from monai.networks import eval_mode as monai_eval_mode

from ..data.rotations import grid_elements_of
from .rotations import Rotation, rotation_set


def plain(x):
    """MONAI MetaTensor -> plain tensor (other values unchanged)."""
    if isinstance(x, torch.Tensor) and type(x) is not torch.Tensor and hasattr(x, "as_tensor"):
        return x.as_tensor()
    return x


def split_item(item, index) -> Tuple[torch.Tensor, object]:
    """``item`` is a dict with ``"image"``/``"label"`` or an ``(image, label, ...)`` pair: return both."""
    if isinstance(item, dict):
        missing = [k for k in ("image", "label") if k not in item]
        if missing:
            raise ValueError(f"data item {index} is a dict without key(s) {missing} (keys: {sorted(item)}); "
                             f"items must be {{'image': ..., 'label': ...}} or (image, label)")
        return plain(item["image"]), plain(item["label"])
    if isinstance(item, (tuple, list)) and len(item) >= 2:
        return plain(item[0]), plain(item[1])
    raise ValueError(f"data item {index} is a {type(item).__name__}; items must be dicts with 'image' and "
                     f"'label' or (image, label) pairs")


def as_items(data) -> Tuple[object, Optional[int]]:
    """Normalise ``data`` to an indexable/iterable of items and its length (or None).

    Accepts ``(images (N, C, D, H, W), labels (N, ...))`` tensor pairs, map-style datasets, lists and iterables.
    """
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data) \
            and data[0].dim() == 5:
        images, labels = data
        if len(images) != len(labels):
            raise ValueError(f"got {len(images)} images but {len(labels)} labels")
        return torch.utils.data.TensorDataset(plain(images), plain(labels)), len(images)
    if is_loader(data):
        return data, None  # batches, not items: counted as they come
    try:
        n = len(data)
    except TypeError:
        n = None
    return data, n


def is_loader(data) -> bool:
    return isinstance(data, torch.utils.data.DataLoader)


def loader_batches(loader) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Batches ``(images (B, C, D, H, W), labels (B, ...))`` of a DataLoader yielding dicts or pairs."""
    for b, batch in enumerate(loader):
        x, y = split_item(batch, f"(batch {b})")
        x, y = torch.as_tensor(x), torch.as_tensor(y)
        if x.dim() != 5:
            raise ValueError(f"DataLoader batch {b}: image must be (B, C, D, H, W), got shape {tuple(x.shape)}")
        if len(y) != len(x):
            raise ValueError(f"DataLoader batch {b}: {len(x)} images but {len(y)} labels")
        yield x, y


def iterate_items(data) -> Iterator[Tuple[torch.Tensor, object]]:
    if is_loader(data):  # unbatch
        for x, y in loader_batches(data):
            for i in range(len(x)):
                yield x[i], y[i]
        return
    items, n = as_items(data)
    if n is not None and hasattr(items, "__getitem__"):
        for i in range(n):
            yield split_item(items[i], i)
    else:
        for i, item in enumerate(items):
            yield split_item(item, i)


def default_rotations(model, rotations) -> List[Rotation]:
    if rotations is None:
        return rotation_set("standard", group=getattr(model, "group", None) or "octa")
    rotations = list(rotations)
    if not rotations or not all(isinstance(r, Rotation) for r in rotations):
        raise ValueError("rotations must be a non-empty list of equivox.evaluation.Rotation "
                         "(use rotation_set(...))")
    return rotations


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module, device):
    """``monai.networks.eval_mode`` (eval mode and ``no_grad`` for the block, training flag restored) on ``model``
    moved to ``device``."""
    model.to(device)
    with monai_eval_mode(model):
        yield model


def grid_check_elements(model, rotations: Sequence[Rotation]):
    els = [r.element for r in rotations if r.kind == "grid" and r.element is not None]
    if not els:
        els = grid_elements_of(getattr(model, "group", None) or "octa")
    return els


def check_equivariance_on(model, x: torch.Tensor, rotations: Sequence[Rotation]):
    """Relative equivariance/invariance errors of ``model`` on the real batch ``x`` over the grid elements of
    ``rotations`` (or the model's group): ``(max error, {element: error})``."""
    from ..testing import equivariance_errors

    errs = equivariance_errors(model, x, elements=grid_check_elements(model, rotations))
    by_el = {e.element: float(e.relative) for e in errs}
    return (max(by_el.values()) if by_el else None), by_el


def progress_bar(total, desc, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, unit="pass")
