"""Datasets for training: registered datasets (:mod:`equivox.data.registry`: the bundled ones and any a user
registers) and data files, as torch datasets of ``{"image", "label"}`` dicts.

Classification items: ``image`` FloatTensor ``(C, S, S, S)``, ``label`` int. Segmentation items: ``image``
``(C, D, H, W)`` float, ``label`` ``(1, D, H, W)`` integer class map. :func:`build_datasets` returns
``(train, val, info)`` for a :class:`~equivox.training.TrainConfig`; every missing file or bad value raises
:class:`equivox.data.DataError` (or ``ValueError``) naming it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..data import DataError, check_finite
from ..data.registry import dataset_names, get_dataset
from .config import TrainConfig

__all__ = ["DataInfo", "ArrayClassificationDataset", "resize_grids", "resize_plan", "describe_resize",
           "resolve_data_settings", "segmentation_file_items", "segmentation_eval_dataset", "subsample_indices", "build_datasets", "bundled_volume",
           "classification_arrays", "augmentation_transform", "center_crop", "intensity_scale",
           "preflight_segmentation_files"]


@dataclass
class DataInfo:
    """What the model needs to know about the data: channels, classes and their names, sizes."""

    in_channels: int
    num_classes: int
    class_names: List[str]
    n_train: int
    n_val: int
    spatial_size: Tuple[int, ...] = ()
    extra: Dict[str, Any] = field(default_factory=dict)


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
    """Reduce cubic grids ``(N, C, S, S, S)`` to ``(N, C, size, size, size)`` (see :func:`resize_plan`).

    ``mode="auto"`` / ``"pad"``: zero-pad symmetrically to a multiple of ``size`` when needed, then average pooling
    by the integer factor (keeps the whole field of view; binary masks become occupancy fractions); ``"pool"``:
    pooling only; ``"crop"``: centre crop (keeps the resolution). ``size=None``: unchanged. All commute with the 24
    cube rotations (exact for cubic grids).
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
    """Centre crop (or zero-pad, symmetric) the last three axes of ``x`` to ``size``."""
    out = x
    for ax, n in zip(range(-3, 0), size):
        cur = out.shape[ax]
        if cur > n:
            a = (cur - n) // 2
            out = out.narrow(ax, a, n)
        elif cur < n:
            pad = [0, 0] * 3
            k = (-ax - 1) * 2
            pad[k], pad[k + 1] = (n - cur) // 2, n - cur - (n - cur) // 2
            out = F.pad(out, pad)
    return out.contiguous()


def subsample_indices(labels: np.ndarray, n: Optional[int], seed: int = 0) -> np.ndarray:
    """``n`` indices drawn without replacement, stratified by label (class proportions kept), sorted.
    ``n=None`` or ``n >= len(labels)``: all indices."""
    labels = np.asarray(labels)
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    out = []
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.floor(counts / counts.sum() * n).astype(int)
    quota[np.argsort(-(counts / counts.sum() * n - quota))[: n - quota.sum()]] += 1
    for c, q in zip(classes, quota):
        idx = np.flatnonzero(labels == c)
        out.append(rng.choice(idx, size=min(q, len(idx)), replace=False))
    return np.sort(np.concatenate(out))


class ArrayClassificationDataset(Dataset):
    """In-memory classification dataset over tensors.

    Args:
        images: ``(N, C, D, H, W)`` float tensor. labels: ``(N,)`` integer array.
        transform: optional callable on the item dict (e.g. :func:`augmentation_transform`).
        class_names: label names (default ``"0", "1", ...``).

    Items: ``{"image": (C, D, H, W) float32, "label": int}``.
    """

    def __init__(self, images, labels, transform: Optional[Callable] = None, class_names=None):
        self.images = torch.as_tensor(images, dtype=torch.float32)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if self.images.dim() != 5 or len(self.images) != len(self.labels):
            raise ValueError(f"images must be (N, C, D, H, W) with N == len(labels); got {tuple(self.images.shape)} "
                             f"and {len(self.labels)} labels")
        self.transform = transform
        n = int(self.labels.max()) + 1 if len(self.labels) else 0
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(n)]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        item = {"image": self.images[i], "label": int(self.labels[i])}
        return self.transform(item) if self.transform is not None else item

    def tensors(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(images (N, C, D, H, W), labels (N,))`` without transforms (for evaluation)."""
        return self.images, self.labels


def augmentation_transform(kind: str, keys: Sequence[str], group: str = "octa", seed: int = 0) -> Optional[Callable]:
    """Random-rotation augmentation on item dicts: ``"grid"`` (exact random element of ``group``, or of the 24
    cube rotations for continuous groups), ``"so3"`` (Haar-random resampled rotation; labels nearest), ``"none"``.
    All ``keys`` rotate together. Seeded with ``seed`` (per worker process: reseed via the DataLoader)."""
    from ..data import RandGridRotatedd, RandSO3Rotatedd

    if kind == "none":
        return None
    if kind == "grid":
        from ..groups import get_group

        g = group if get_group(group).order is not None else "octa"
        t = RandGridRotatedd(list(keys), group=g)
    elif kind == "so3":
        modes = ("bilinear",) + ("nearest",) * (len(keys) - 1)
        t = RandSO3Rotatedd(list(keys), mode=modes)
    else:
        raise ValueError(f"augment must be 'none', 'grid' or 'so3', got {kind!r}")
    t.set_random_state(seed)
    return t


# ---------------------------------------------------------------------------------------------- classification
def _classification_raw(cfg: TrainConfig, split: str):
    """``(x, y, class names or None, skipped {file: reason})`` of ``split`` as stored (no rescaling)."""
    name = cfg.dataset
    skipped: Dict[str, str] = {}
    spec = cfg.validate_dataset()
    if spec is not None:
        d = spec.load_split(split)
        x, y, names = d["images"], d["labels"], d["class_names"]
    else:
        p = Path(name)
        if p.suffix == ".npz":
            x, y = _npz_classification(p, split)
            names = None
        elif p.is_dir():
            from ..data import MeshFolderVoxels

            ds = MeshFolderVoxels(p, split="train" if split == "train" else "test", progress=cfg.progress,
                                  strict=cfg.strict)
            x, y = np.asarray(ds.voxels), np.asarray(ds.labels)
            names = getattr(ds, "class_names", None)
            skipped = {str(f): r for f, r in ds.skipped}
        else:
            raise DataError(f"dataset {name!r} is neither a registered classification dataset "
                            f"({', '.join(dataset_names('classification'))}), a .npz file nor an existing mesh folder")
    return np.asarray(x), np.asarray(y), names, skipped


def intensity_scale(x: np.ndarray) -> float:
    """The divisor that maps stored classification images to ``[0, 1]``: 255 for integer data (e.g. ``uint8``
    MedMNIST intensities) with values above 1 and at most 255, else 1 (float data such as HU or z-scores, binary
    masks and booleans are kept as stored). Decided once, on the training split, for every split."""
    x = np.asarray(x)
    if x.dtype.kind in "ui" and x.size and 1 < int(x.max()) <= 255 and int(x.min()) >= 0:
        return 255.0
    return 1.0


def _check_labels(y: np.ndarray, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype.kind == "f":
        check_finite(y, f"{where} labels")
        frac = y[y != np.round(y)]
        if frac.size:
            raise DataError(f"{where}: labels must be integer class indices, found {sorted(set(frac.tolist()))[:10]}")
    elif y.dtype.kind not in "uib":
        raise DataError(f"{where}: labels must be integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64).reshape(-1)
    if len(y) and y.min() < 0:
        raise DataError(f"{where}: labels must be class indices >= 0, found {int(y.min())}")
    return y


def classification_arrays(cfg: TrainConfig, split: str, scale: Optional[float] = None,
                          _raw=None) -> Tuple[torch.Tensor, np.ndarray, List[str]]:
    """Images ``(N, 1, S, S, S)`` (resized per ``cfg.input_size`` / ``cfg.resize``), labels ``(N,)`` and class
    names for ``split`` (``"train"``, ``"val"``, ``"test"``) of ``cfg.dataset``.

    Integer images are divided by ``scale`` (default: :func:`intensity_scale` of the *training* split, so every
    split is scaled alike). Raises :class:`DataError` naming the dataset for NaN/inf images, non-integer or
    negative labels, wrongly shaped arrays and non-cubic grids that cannot be resized or rotation-augmented.
    """
    name = cfg.dataset
    x, y, names, _ = _raw if _raw is not None else _classification_raw(cfg, split)
    where = f"{name} [{split}]"
    if scale is None:
        scale = intensity_scale(x if split == "train" else _classification_raw(cfg, "train")[0])
    if x.ndim == 4:
        x = x[:, None]
    if x.ndim != 5:
        raise DataError(f"{where}: classification images must be (N, D, H, W) or (N, C, D, H, W), got {x.shape}")
    check_finite(x, f"{where} images")
    y = _check_labels(y, where)
    if len(y) != len(x):
        raise DataError(f"{where}: {len(x)} images but {len(y)} labels")
    spatial = tuple(x.shape[2:])
    if len(set(spatial)) != 1:
        if cfg.input_size is not None:
            raise DataError(f"{where}: grids of spatial shape {spatial} are not cubic; input_size={cfg.input_size} "
                            "resizing needs cubes: pad them to a cube, or set input_size to null (None) to train on "
                            "them as stored")
        if cfg.augment != "none":
            raise DataError(f"{where}: grids of spatial shape {spatial} are not cubic; rotation augmentation "
                            f"({cfg.augment!r}) would give items of different shapes: pad them to a cube or use "
                            "augment 'none'")
    x = x.astype(np.float32)
    if scale != 1.0:
        x = x / np.float32(scale)
    names = list(names) if names is not None else [str(i) for i in range(int(y.max()) + 1 if len(y) else 0)]
    return resize_grids(x, cfg.input_size, cfg.resize), y, names


def _npz_classification(p: Path, split: str) -> Tuple[np.ndarray, np.ndarray]:
    if not p.is_file():
        raise DataError(f"classification data file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as z:
            keys = list(z.keys())
    except Exception as err:  # zipfile.BadZipFile (truncated), pickled objects, not an archive
        raise DataError(f"cannot read {p} (truncated or not a .npz archive): {type(err).__name__}: {err}") from None
    if f"{split}_images" in keys or "train_images" in keys:
        from ..data import load_medmnist3d

        if split == "val" and "val_images" not in keys:
            split = "test"
        return load_medmnist3d(p, split)
    if "images" in keys and "labels" in keys:
        try:
            with np.load(p, allow_pickle=False) as z:
                x, y = z["images"], z["labels"]
        except Exception as err:
            raise DataError(f"cannot read {p} (truncated or corrupt .npz archive): {type(err).__name__}: "
                            f"{err}") from None
        # no split in the file: deterministic 80/20 split
        idx = np.random.default_rng(0).permutation(len(y))
        cut = int(round(0.8 * len(y)))
        sel = idx[:cut] if split == "train" else idx[cut:]
        return x[np.sort(sel)], y[np.sort(sel)]
    raise DataError(f"{p}: expected MedMNIST-3D keys (train_images, train_labels, ...) or 'images' and 'labels', "
                    f"found {keys}")


def _classification(cfg: TrainConfig):
    raw_tr, raw_va = _classification_raw(cfg, "train"), _classification_raw(cfg, "val")
    scale = intensity_scale(raw_tr[0])  # one decision for both splits
    xtr, ytr, names = classification_arrays(cfg, "train", scale, raw_tr)
    xva, yva, _ = classification_arrays(cfg, "val", scale, raw_va)
    itr = subsample_indices(ytr, cfg.max_train, cfg.seed)
    iva = subsample_indices(yva, cfg.max_val, cfg.seed + 1)
    aug = augmentation_transform(cfg.augment, ["image"], cfg.group, cfg.seed)
    train = ArrayClassificationDataset(xtr[itr], ytr[itr], aug, names)
    val = ArrayClassificationDataset(xva[iva], yva[iva], None, names)
    k = cfg.num_classes or max(len(names), int(max(ytr.max(), yva.max())) + 1)
    info = DataInfo(xtr.shape[1], k, names, len(train), len(val), tuple(xtr.shape[2:]),
                    extra={"skipped_files": {**raw_tr[3], **raw_va[3]}, "intensity_scale": scale})
    return train, val, info


# ---------------------------------------------------------------------------------------------- segmentation
class VolumePatches(Dataset):
    """Random patches (``patch`` cube) from in-memory volumes, image and label cropped together.

    Args:
        volumes: list of ``(image (C, D, H, W) float, label (1, D, H, W) long)``.
        patch: patch side. length: items per epoch. pos_fraction: share of patches centred on a foreground voxel
            (MONAI ``RandCropByPosNegLabeld`` semantics, implemented via ``monai.transforms``).
        transform: optional callable on the item dict (e.g. rotation augmentation). seed: base seed; item ``i``
            of epoch ``e`` is drawn with seed ``seed + i`` mixed with ``e`` (call :meth:`set_epoch`).

    Item ``i`` comes from volume ``i % len(volumes)``; when an epoch is shorter than the list of volumes (many
    small volumes, e.g. one part each), from volume ``i`` of a permutation drawn per epoch instead, so every
    volume is seen over the epochs and an epoch is not the first volumes of a sorted list.
    """

    def __init__(self, volumes, patch: int, length: int, pos_fraction: float = 0.5,
                 transform: Optional[Callable] = None, seed: int = 0):
        from monai.transforms import RandCropByPosNegLabeld, SpatialPadd

        self.volumes = volumes
        self.patch, self.length, self.transform, self.seed = patch, length, transform, seed
        self.epoch = 0
        self._order = self._permutation()
        self.pad = SpatialPadd(["image", "label"], spatial_size=(patch,) * 3)
        self.crop = RandCropByPosNegLabeld(["image", "label"], "label", spatial_size=(patch,) * 3,
                                           pos=pos_fraction, neg=1 - pos_fraction, num_samples=1,
                                           image_key="image", image_threshold=-np.inf)

    def _permutation(self) -> Optional[np.ndarray]:
        if self.length >= len(self.volumes):
            return None
        return np.random.default_rng((self.seed, self.epoch)).permutation(len(self.volumes))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self._order = self._permutation()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> Dict[str, Any]:
        img, lab = self.volumes[i % len(self.volumes) if self._order is None else int(self._order[i])]
        self.crop.set_random_state(self.seed * 1_000_003 + self.epoch * 10_007 + i)
        d = self.pad({"image": img, "label": lab})
        d = self.crop(d)[0]
        item = {"image": torch.as_tensor(d["image"]).float().contiguous(),
                "label": torch.as_tensor(d["label"]).long().contiguous()}
        return self.transform(item) if self.transform is not None else item


class VolumeCrops(Dataset):
    """Fixed centre crops (``size`` cube, or whole volumes when ``size`` is None) of in-memory volumes."""

    def __init__(self, volumes, size: Optional[int]):
        self.items = []
        for img, lab in volumes:
            if size is not None:
                img, lab = center_crop(img, (size,) * 3), center_crop(lab, (size,) * 3)
            self.items.append({"image": img.float().contiguous(), "label": lab.long().contiguous()})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        return self.items[i]


def _downsample_volume(img: torch.Tensor, lab: torch.Tensor, f: int) -> Tuple[torch.Tensor, torch.Tensor]:
    if f == 1:
        return img, lab
    sh = [s - s % f for s in img.shape[1:]]
    img, lab = img[:, :sh[0], :sh[1], :sh[2]], lab[:, :sh[0], :sh[1], :sh[2]]
    img = F.avg_pool3d(img[None], f)[0]
    lab = lab[:, f // 2::f, f // 2::f, f // 2::f]
    return img.contiguous(), lab.contiguous()


def _registered_volumes(spec, split: str, downsample: int):
    """``(volumes, label_names)`` of a registered segmentation dataset's ``split``, each volume downsampled."""
    d = spec.load_split(split)
    return [_downsample_volume(img, lab, downsample) for img, lab in d["volumes"]], d["label_names"]


def bundled_volume(name: str, downsample: int = 1) -> Tuple[torch.Tensor, torch.Tensor, Dict[int, str]]:
    """``(image (C, D, H, W), label (1, D, H, W) long, label_names)`` of a registered segmentation dataset's
    first training volume, optionally downsampled (the bundled chest CT: HU window [-1000, 1000] scaled to
    [0, 1]; the bundled brain atlas: intensity / 255). Raises :class:`DataError` listing the registered segmentation
    datasets for another name."""
    vols, names = _registered_volumes(get_dataset(name, "segmentation"), "train", downsample)
    return vols[0][0], vols[0][1], dict(names)


def _segmentation(cfg: TrainConfig):
    aug = augmentation_transform(cfg.augment, ["image", "label"], cfg.group, cfg.seed)
    spec = cfg.validate_dataset()
    if spec is not None:
        vols, names = _registered_volumes(spec, "train", cfg.downsample)
        val_vols, val_names = _registered_volumes(spec, "val", cfg.downsample)
        names = {**val_names, **names}
        train = VolumePatches(vols, cfg.patch_size, cfg.patches_per_epoch, transform=aug, seed=cfg.seed)
        val = VolumeCrops(val_vols, cfg.val_crop)
        top = max(int(lab.max()) for _, lab in vols + val_vols) + 1
        k = cfg.num_classes or (len(names) if names else top)
        cls_names = [names.get(i, str(i)) for i in range(k)]
        in_channels = int(vols[0][0].shape[0])
        return train, val, DataInfo(in_channels, k, cls_names, len(train), len(val), tuple(vols[0][0].shape[1:]))
    return _segmentation_files(cfg, aug)


def segmentation_file_items(cfg: TrainConfig) -> Tuple[List[Dict[str, str]], int, List[str]]:
    """``(items [{"image", "label"} absolute paths], num_classes, class names)`` of ``cfg``'s own segmentation
    files: the ``image_dir`` / ``label_dir`` pair (``num_classes`` required) or the Decathlon folder
    ``dataset``. Every image header is read first: an image whose channel count differs from the others' raises
    :class:`DataError` naming it; then every pair is checked in full (:func:`preflight_segmentation_files`)."""
    from ..data import decathlon_items, folder_pair_items
    from ..data.medical import check_same_channels, scan_images

    if cfg.image_dir is not None or cfg.label_dir is not None:
        if cfg.image_dir is None or cfg.label_dir is None:
            raise DataError("an image/label folder pair needs both image_dir and label_dir")
        items = folder_pair_items(cfg.image_dir, cfg.label_dir)
        if cfg.num_classes is None:
            raise DataError("num_classes is required for an image/label folder pair (count the background)")
        k, names = cfg.num_classes, cfg.class_names or [str(i) for i in range(cfg.num_classes)]
        if len(names) != k:
            raise DataError(f"class_names has {len(names)} name(s) ({', '.join(names)}) but num_classes is {k} "
                            "(background included)")
    else:
        root = Path(cfg.dataset)
        if not root.is_dir():
            raise DataError(f"dataset {cfg.dataset!r} is neither a registered segmentation dataset "
                            f"({', '.join(dataset_names('segmentation'))}) nor a Decathlon folder (with dataset.json)")
        from ..data import decathlon_labels

        items = decathlon_items(root)
        labels = decathlon_labels(root)
        k = cfg.num_classes or len(labels)
        names = [labels.get(i, str(i)) for i in range(k)]
    check_same_channels(scan_images([it["image"] for it in items]))
    preflight_segmentation_files(items, k)
    return items, k, names


#: image/label pairs that passed :func:`preflight_segmentation_files` in this process, keyed by their paths, sizes
#: and modification times (a run checks its files once, not again in each step that lists them)
_CHECKED_PAIRS: set = set()


def _pair_key(item: Dict[str, str], num_classes: Optional[int]):
    try:
        stats = [os.stat(item[k]) for k in ("image", "label")]
    except OSError:
        return None
    return (item["image"], item["label"], num_classes) + tuple((s.st_size, s.st_mtime_ns) for s in stats)


def preflight_segmentation_files(items: Sequence[Dict[str, str]], num_classes: Optional[int]) -> None:
    """Check every image/label pair of ``items`` before any training work starts (nothing is written before):
    each file read in full (a truncated or corrupt file fails here), 3D (an image may add channels on the 4th
    axis), no NaN/inf values, equal spatial shapes, matching affines, label values in ``range(num_classes)``
    (:func:`equivox.data.validate_pair`; other formats than NIfTI: :func:`equivox.data.load_monai_checked`). A pair
    already checked in this process, unchanged on disk, is not read again.

    Raises:
        DataError: the first problem, one line naming the file(s) and the problem.
    """
    from ..data.medical import is_nifti, load_monai_checked, validate_pair

    for item in items:
        key = _pair_key(item, num_classes)
        if key is not None and key in _CHECKED_PAIRS:
            continue
        if is_nifti(item["image"]) and is_nifti(item["label"]):
            validate_pair(item["image"], item["label"], num_classes)
        else:
            load_monai_checked(item, num_classes)
        if key is not None:
            _CHECKED_PAIRS.add(key)


def _split_items(cfg: TrainConfig, items):
    if len(items) < 2:
        raise DataError(f"need at least 2 image/label pairs (train + validation), found {len(items)}")
    order = np.random.default_rng(cfg.seed).permutation(len(items))
    n_val = max(1, int(round(0.2 * len(items))))
    val_items = [items[i] for i in sorted(order[:n_val])]
    train_items = [items[i] for i in sorted(order[n_val:])]
    if cfg.max_train:
        train_items = train_items[: cfg.max_train]
    if cfg.max_val:
        val_items = val_items[: cfg.max_val]
    return train_items, val_items


def _intensity(cfg: TrainConfig, train_items) -> Tuple[Optional[str], str]:
    """``cfg.intensity``, with ``"auto"`` decided from the training images (:func:`choose_intensity`)."""
    from ..data.medical import choose_intensity

    if cfg.intensity != "auto":
        return cfg.intensity, "as configured"
    return choose_intensity([it["image"] for it in train_items])


def _eval_transforms(cfg: TrainConfig, k: int, intensity: Optional[str]):
    """The validation / evaluation pipeline: load, check, RAS, ``spacing``, ``intensity``, optional centre crop
    (``val_crop``), padding to the strides' product."""
    from monai.transforms import DivisiblePadd

    from ..data import segmentation_transforms

    va_extra = []
    if cfg.val_crop is not None:
        from monai.transforms import ResizeWithPadOrCropd

        va_extra.append(ResizeWithPadOrCropd(["image", "label"], (cfg.val_crop,) * 3))
    va_extra.append(DivisiblePadd(["image", "label"], k=int(np.prod(cfg.strides)) if cfg.strides else 1))
    return segmentation_transforms(spacing=cfg.spacing, intensity=intensity, patch_size=None, num_classes=k,
                                   extra=va_extra)


def segmentation_eval_dataset(cfg: TrainConfig, items: Sequence[Dict[str, str]], num_classes: int):
    """Every pair of ``items`` prepared as the validation split of a run with ``cfg`` (its spacing, its intensity
    rule, which must be resolved, not ``"auto"``: see :func:`resolve_data_settings`), for scoring a test folder."""
    from ..data import segmentation_dataset

    if cfg.intensity == "auto":
        raise ValueError("segmentation_eval_dataset needs a resolved intensity (the training run's), not 'auto'")
    return segmentation_dataset(list(items), _eval_transforms(cfg, num_classes, cfg.intensity))


def _segmentation_files(cfg: TrainConfig, aug):
    from ..data import segmentation_dataset, segmentation_transforms
    from ..data.medical import common_spacing, scan_images

    items, k, names = segmentation_file_items(cfg)
    train_items, val_items = _split_items(cfg, items)
    intensity, why = _intensity(cfg, train_items)
    extra = [aug] if aug is not None else []
    tr_t = segmentation_transforms(spacing=cfg.spacing, intensity=intensity, patch_size=(cfg.patch_size,) * 3,
                                   num_classes=k, num_samples=max(1, cfg.patches_per_epoch // max(1, len(train_items))),
                                   extra=extra)
    va_t = _eval_transforms(cfg, k, intensity)
    train = segmentation_dataset(train_items, tr_t)
    val = segmentation_dataset(val_items, va_t)
    in_channels = int(val[0]["image"].shape[0])  # modalities (e.g. 4 for Decathlon BrainTumour), not always 1
    spacing = cfg.spacing or common_spacing(scan_images([it["image"] for it in items]))
    return train, val, DataInfo(in_channels, k, names, len(train_items), len(val_items), (),
                                extra={"intensity": intensity, "intensity_reason": why,
                                       "spacing": list(spacing) if spacing else None})


def _absolute(path: Optional[str]) -> Optional[str]:
    return None if path is None else str(Path(path).expanduser().resolve())


def resolve_data_settings(cfg: TrainConfig) -> Tuple[TrainConfig, List[str]]:
    """A copy of ``cfg`` with what the data decide filled in, and a list of notes saying what was decided (for the
    start-up line):

    * data paths made absolute (``image_dir``, ``label_dir``, a ``dataset`` path), so a checkpoint works from any
      working directory;
    * own NIfTI segmentation data: ``intensity="auto"`` -> ``"ct"`` or ``"mri"`` from the training images'
      values (:func:`equivox.data.choose_intensity`); the voxel spacing read from the headers when ``spacing``
      is not set (RAS axes): ``group="auto"`` chooses the largest exact group for it
      (:func:`equivox.groups.auto_group`), any other group is checked against it (one-line warning naming the
      exact groups);
    * classification grids: how they reach ``input_size`` (:func:`describe_resize`).

    Raises :class:`DataError` for unreadable files, mixed channel counts, or ``group="auto"`` over images of
    different spacings without ``spacing``.
    """
    import dataclasses

    from ..groups import auto_group, check_spacing

    notes: List[str] = []
    changes: Dict[str, Any] = {"image_dir": _absolute(cfg.image_dir), "label_dir": _absolute(cfg.label_dir)}
    spec = cfg.validate_dataset()
    if spec is None and cfg.image_dir is None and cfg.label_dir is None:
        changes["dataset"] = _absolute(cfg.dataset)
    cfg = dataclasses.replace(cfg, **changes)
    if cfg.task == "segment" and spec is None:
        from ..data.medical import common_spacing, scan_images

        items, _, _ = segmentation_file_items(cfg)
        spacing = cfg.spacing or common_spacing(scan_images([it["image"] for it in items]))
        where = "resampled" if cfg.spacing else "from the headers"
        if cfg.group == "auto":
            if spacing is None:
                raise DataError("group 'auto' needs one voxel spacing, but the images' headers differ (or are not "
                                "NIfTI); resample them to one with --spacing D,H,W (mm)")
            group, why = auto_group(spacing)
            cfg = dataclasses.replace(cfg, group=group)
            notes.append(f"group auto -> {group} ({why})")
        elif cfg.spacing is None and spacing is not None:
            check_spacing(cfg.group, spacing)
        notes.append(f"spacing {'x'.join(f'{v:g}' for v in spacing)} mm ({where})" if spacing else
                     "spacing: mixed in the headers (not resampled; set --spacing)")
        intensity, why = _intensity(cfg, _split_items(cfg, items)[0])
        cfg = dataclasses.replace(cfg, intensity=intensity)
        notes.append(f"intensity {intensity or 'none'} ({why})")
    elif cfg.task == "segment":
        notes.append(f"intensity as registered for {cfg.dataset}")
    elif cfg.input_size is not None and spec is None and str(cfg.dataset).endswith(".npz"):
        x, _ = _npz_classification(Path(cfg.dataset), "train")
        notes.append(f"input {describe_resize(int(x.shape[-1]), cfg.input_size, cfg.resize)}")
    return cfg, notes


def build_datasets(cfg: TrainConfig):
    """``(train_dataset, val_dataset, DataInfo)`` for ``cfg`` (see :class:`~equivox.training.TrainConfig`)."""
    cfg.validate_dataset()  # unknown name or wrong task: fail before loading anything
    if cfg.task == "classify":
        return _classification(cfg)
    return _segmentation(cfg)
