"""Grid geometry: bringing cubic grids to a model's input size, centre crops, downsampled volumes, and the checked
classification grids a model is trained on.

Shapes: classification grids ``(N, C, S, S, S)`` (cubes: resizing must commute with the 24 cube rotations, so the
rotation tests and augmentations stay exact); volumes ``(C, D, H, W)`` images with ``(1, D, H, W)`` label maps.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DataError, check_finite
from .labels import check_labels

__all__ = ["resize_plan", "describe_resize", "resize_grids", "center_crop", "downsample_volume",
           "classification_grids"]


def resize_plan(side: int, size: Optional[int], mode: str = "auto") -> Tuple[int, int, Optional[int]]:
    """How a cubic grid of ``side`` reaches ``size``: ``(padded side, pooling factor, crop side or None)``.

    ``"auto"``: pool by ``side / size`` when it is an integer, else zero-pad to the next multiple of ``size`` and
    pool (MedMNIST 28 -> 32 -> 16); a grid smaller than ``size`` is padded up. ``"pad"``: the same. ``"pool"``: the
    integer factor only (else ``ValueError``). ``"crop"``: centre crop.
    """
    if size is None or side == size:
        return side, 1, None
    if mode == "crop":
        if size > side:
            raise ValueError(f"input_size {size} is larger than the stored grid size {side} (resize='crop')")
        return side, 1, size
    if mode == "pool":
        if size > side:
            raise ValueError(f"input_size {size} is larger than the stored grid size {side}")
        if side % size:
            raise ValueError(f"input_size {size} must divide the stored grid size {side} for resize='pool' "
                             f"(or use resize='auto' / 'pad' to zero-pad first, or 'crop')")
        return side, side // size, None
    if mode not in ("auto", "pad"):
        raise ValueError(f"resize must be 'auto', 'pool', 'pad' or 'crop', got {mode!r}")
    factor = max(1, -(-side // size))
    return size * factor, factor, None


def describe_resize(side: int, size: Optional[int], mode: str = "auto") -> str:
    """One phrase saying what :func:`resize_grids` does to a ``side``^3 grid, e.g.
    ``"28^3 -> zero-padded to 32^3 -> average-pooled x2 -> 16^3"``."""
    padded, factor, crop = resize_plan(side, size, mode)
    if crop is not None:
        return f"{side}^3 -> centre crop {crop}^3"
    parts = [f"{side}^3"]
    if padded != side:
        parts.append(f"zero-padded to {padded}^3")
    if factor > 1:
        parts.append(f"average-pooled x{factor}")
    if len(parts) == 1:
        return f"{side}^3 as stored"
    return " -> ".join(parts + [f"{padded // factor}^3"])


def resize_grids(x: np.ndarray | torch.Tensor, size: Optional[int], mode: str = "auto") -> torch.Tensor:
    """Reduce cubic grids ``(N, C, S, S, S)`` to ``(N, C, size, size, size)`` float32 (see :func:`resize_plan`).

    ``mode="auto"`` / ``"pad"``: zero-pad symmetrically to a multiple of ``size`` when needed, then average pooling
    by the integer factor (keeps the whole field of view; binary masks become occupancy fractions); ``"pool"``:
    pooling only; ``"crop"``: centre crop (keeps the resolution). ``size=None``: unchanged. All commute with the 24
    cube rotations (exact for cubic grids: the padding is symmetric, or one voxel more at the end, which the
    pooling windows then align with).
    """
    x = torch.as_tensor(x, dtype=torch.float32)
    if size is None or x.shape[-1] == size:
        return x
    s = x.shape[-1]
    if x.shape[-3:] != (s, s, s):
        raise ValueError(f"resize_grids expects cubic grids, got spatial shape {tuple(x.shape[-3:])}")
    padded, factor, crop = resize_plan(s, size, mode)
    if crop is not None:
        a = (s - size) // 2
        return x[..., a:a + size, a:a + size, a:a + size].contiguous()
    if padded != s:
        lo = (padded - s) // 2
        x = F.pad(x, [lo, padded - s - lo] * 3)
    return F.avg_pool3d(x, factor) if factor > 1 else x.contiguous()


def center_crop(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Centre crop (or zero-pad, symmetric; the odd voxel at the end) the last three axes of ``x`` to ``size``."""
    out = x
    for ax, n in zip(range(-3, 0), size):
        cur = out.shape[ax]
        if cur > n:
            a = (cur - n) // 2
            out = out.narrow(ax, a, n)
        elif cur < n:
            pad = [0, 0] * 3
            k = (-ax - 1) * 2  # F.pad lists the last axis first
            pad[k], pad[k + 1] = (n - cur) // 2, n - cur - (n - cur) // 2
            out = F.pad(out, pad)
    return out.contiguous()


def downsample_volume(img: torch.Tensor, lab: torch.Tensor, factor: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """A volume shrunk by the integer ``factor``: image ``(C, D, H, W)`` average-pooled, label ``(1, D, H, W)``
    sampled at the centre voxel of each ``factor``^3 block (labels are classes: never averaged). Each axis is
    first trimmed at the end to a multiple of ``factor``. ``factor=1``: unchanged."""
    if factor == 1:
        return img, lab
    sh = [s - s % factor for s in img.shape[1:]]
    img, lab = img[:, :sh[0], :sh[1], :sh[2]], lab[:, :sh[0], :sh[1], :sh[2]]
    img = F.avg_pool3d(img[None], factor)[0]
    lab = lab[:, factor // 2::factor, factor // 2::factor, factor // 2::factor]
    return img.contiguous(), lab.contiguous()


def classification_grids(x: np.ndarray, y: np.ndarray, names: Optional[Sequence[str]], where: str,
                         scale: float = 1.0, input_size: Optional[int] = None, resize: str = "auto",
                         augment: str = "none") -> Tuple[torch.Tensor, np.ndarray, List[str]]:
    """Stored classification arrays checked and brought to what a model takes: ``(images (N, C, S', S', S')
    float32, labels (N,) int64, class names)``.

    Args:
        x: ``(N, D, H, W)`` or ``(N, C, D, H, W)`` images as stored. y: ``(N,)`` labels (integer class indices).
        names: class names (``None``: ``"0", "1", ...`` up to the largest label).
        where: names the data in errors (e.g. ``"lidc [train]"``).
        scale: images are divided by it (:func:`~equivox.data.intensity_scale` of the training split).
        input_size, resize: :func:`resize_grids` (``None``: as stored).
        augment: the rotation augmentation the grids will get (``"none"``, ``"grid"``, ``"so3"``): non-cubic grids
            cannot be rotated into items of one shape.

    Raises:
        DataError: naming ``where``: NaN/inf images, non-integer or negative labels, wrongly shaped arrays,
        image/label counts that differ, non-cubic grids that are to be resized or rotation-augmented.
    """
    if x.ndim == 4:
        x = x[:, None]
    if x.ndim != 5:
        raise DataError(f"{where}: classification images must be (N, D, H, W) or (N, C, D, H, W), got {x.shape}")
    check_finite(x, f"{where} images")
    y = check_labels(y, where)
    if len(y) != len(x):
        raise DataError(f"{where}: {len(x)} images but {len(y)} labels")
    spatial = tuple(x.shape[2:])
    if len(set(spatial)) != 1:
        if input_size is not None:
            raise DataError(f"{where}: grids of spatial shape {spatial} are not cubic; input_size={input_size} "
                            "resizing needs cubes: pad them to a cube, or set input_size to null (None) to train on "
                            "them as stored")
        if augment != "none":
            raise DataError(f"{where}: grids of spatial shape {spatial} are not cubic; rotation augmentation "
                            f"({augment!r}) would give items of different shapes: pad them to a cube or use "
                            "augment 'none'")
    x = x.astype(np.float32)
    if scale != 1.0:
        x = x / np.float32(scale)
    names = list(names) if names is not None else [str(i) for i in range(int(y.max()) + 1 if len(y) else 0)]
    return resize_grids(x, input_size, resize), y, names
