"""Prediction on new data with a checkpoint from :func:`equivox.training.fit` (``equivox predict``).

Segmentation: each image goes through the training run's preprocessing (RAS orientation, its ``spacing``, its
intensity rule, read from the checkpoint), MONAI ``sliding_window_inference`` with the run's ``patch_size``
windows, and back to the input's own voxel grid (MONAI ``Invertd``: orientation and resampling undone on the
class probabilities); the mask is written as NIfTI with the input file's affine, ``<stem>_seg.nii.gz`` (uint8
class indices), and on request ``<stem>_prob.nii.gz`` (float32, classes on the 4th axis).

Classification: each volume (NIfTI, ``.npy``, ``.npz``, ``.binvox``, mesh; an ``.npz`` archive of many volumes
such as a MedMNIST file gives one row per volume) is scaled and resized as in training; one CSV row per volume
with the predicted class and every class probability.

The user's files are only read; outputs never replace an input.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .data.errors import DataError

__all__ = ["input_files", "predict_segmentation", "predict_classification", "segmentation_preprocessing"]

PathLike = Union[str, Path]
_CLASSIFY_EXT = (".npy", ".npz", ".binvox", ".nii", ".nii.gz")


def input_files(image_dir: Optional[PathLike] = None, files: Sequence[PathLike] = (),
                task: str = "segment") -> List[Path]:
    """The input files: ``files`` as given plus the image files of ``image_dir`` (sorted; hidden files skipped).

    Raises:
        DataError: a missing folder or file, or no usable file (naming the folder).
    """
    from .data.medical import IMAGE_EXTENSIONS, strip_image_extension
    from .data.meshes import MESH_EXTENSIONS

    out: List[Path] = []
    for f in files:
        p = Path(f)
        if not p.is_file():
            raise DataError(f"input file not found: {p}")
        out.append(p.resolve())
    if image_dir is not None:
        d = Path(image_dir)
        if not d.is_dir():
            raise DataError(f"image folder not found: {d}")
        exts = IMAGE_EXTENSIONS if task == "segment" else _CLASSIFY_EXT + tuple(MESH_EXTENSIONS)
        found = [p.resolve() for p in sorted(d.iterdir()) if p.is_file() and not p.name.startswith(".")
                 and any(p.name.lower().endswith(e) for e in exts)]
        if not found:
            raise DataError(f"no input files ({', '.join(exts)}) in {d}")
        out += found
    if not out:
        raise DataError("no inputs: give --image-dir DIR or image files")
    if task == "segment":
        bad = [p for p in out if strip_image_extension(p.name) is None]
        if bad:
            raise DataError(f"{bad[0]} is not an image file ({', '.join(IMAGE_EXTENSIONS)})")
    return out


def _stem(p: Path) -> str:
    from .data.medical import strip_image_extension

    return strip_image_extension(p.name) or p.stem


def segmentation_preprocessing(config: Dict, intensity: Optional[str]):
    """The image-only part of the training pipeline for ``config`` (a checkpoint's ``hparams["config"]``): load,
    channel-first, RAS orientation, resampling to ``spacing`` (when the run resampled), ``intensity``
    (``"ct"``, ``"mri"`` or None). A MONAI ``Compose`` whose invertible steps :func:`predict_segmentation`
    undoes on the prediction."""
    from monai.transforms import (Compose, EnsureChannelFirstd, EnsureTyped, NormalizeIntensityd, Orientationd,
                                  ScaleIntensityRanged, Spacingd)

    from .data.medical import LoadImageCheckedd

    t = [LoadImageCheckedd("image", image_only=True), EnsureChannelFirstd("image"),
         Orientationd("image", axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")))]
    if config.get("spacing"):
        t.append(Spacingd("image", pixdim=tuple(config["spacing"]), mode="bilinear"))
    if intensity == "ct":
        t.append(ScaleIntensityRanged("image", a_min=-1000.0, a_max=1000.0, b_min=0.0, b_max=1.0, clip=True))
    elif intensity == "mri":
        t.append(NormalizeIntensityd("image", nonzero=True, channel_wise=True))
    t.append(EnsureTyped("image", track_meta=True))
    return Compose(t)


def _window(config: Dict, model) -> Tuple[int, int, int]:
    mult = int(getattr(model, "size_multiple", 1) or 1)
    side = int(config.get("patch_size") or 24)
    return (max(mult, side - side % mult),) * 3


def predict_segmentation(model: torch.nn.Module, hparams: Dict, paths: Sequence[PathLike], out_dir: PathLike,
                         probabilities: bool = False, intensity: Optional[str] = None, sw_batch_size: int = 2,
                         overlap: float = 0.25, device: str = "cpu", say=print) -> List[Path]:
    """Masks for ``paths`` written to ``out_dir`` (see the module docstring); returns the written files.

    Args:
        model: from :func:`equivox.training.load_checkpoint` (maps ``(B, C, D, H, W)`` to logits ``(B, K, ...)``).
        hparams: its ``hparams`` (the run's ``config``: ``spacing``, ``intensity``, ``patch_size``).
        intensity: override of the stored rule (``"ct"``, ``"mri"``, ``"none"``, ``"auto"``: decided from
            ``paths``; a stored ``"auto"``, from a run on a registered dataset, is decided the same way).
        say: called with one line per written file (``None``: quiet).
    """
    import nibabel as nib
    from monai.data import MetaTensor
    from monai.inferers import sliding_window_inference
    from monai.transforms import Invertd

    from .data.medical import choose_intensity, scan_images

    config = dict(hparams.get("config") or {})
    rule = intensity if intensity is not None else config.get("intensity")
    rule = None if rule in (None, "none") else rule
    if rule == "auto":
        rule, why = choose_intensity([str(p) for p in paths])
        if say:
            say(f"intensity auto -> {rule} ({why})")
    in_channels = int(getattr(model, "in_channels", 0) or 0)
    for info in scan_images([str(p) for p in paths]):
        if in_channels and info["channels"] is not None and info["channels"] != in_channels:
            raise DataError(f"image {info['path']} has {info['channels']} channel(s); the model takes {in_channels}")
    pre = segmentation_preprocessing(config, rule)
    inv = Invertd(keys="pred", transform=pre, orig_keys="image", nearest_interp=False)
    roi = _window(config, model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    inputs = {Path(p).resolve() for p in paths}
    written: List[Path] = []
    model = model.to(device).eval()
    for p in paths:
        p = Path(p)
        d = pre({"image": str(p)})
        img = d["image"]
        with torch.no_grad():
            logits = sliding_window_inference(img.as_tensor()[None].float().to(device), roi, sw_batch_size, model,
                                              overlap=overlap)
        probs = torch.as_tensor(logits).float().softmax(1)[0].cpu()
        pred = MetaTensor(probs, meta=dict(img.meta))
        pred.applied_operations = list(img.applied_operations)
        back = inv({"pred": pred, "image": img})["pred"]
        back = back.as_tensor() if hasattr(back, "as_tensor") else torch.as_tensor(back)
        src = nib.load(str(p))
        if tuple(back.shape[1:]) != tuple(src.shape[:3]):
            raise RuntimeError(f"prediction for {p} has shape {tuple(back.shape[1:])}, expected {src.shape[:3]}")
        mask = back.argmax(0).numpy().astype(np.uint8)
        targets = [out / f"{_stem(p)}_seg.nii.gz"] + ([out / f"{_stem(p)}_prob.nii.gz"] if probabilities else [])
        for t in targets:
            if t.resolve() in inputs:
                raise DataError(f"output {t} would replace an input file; choose another --out")
        header = src.header.copy()
        seg = nib.Nifti1Image(mask, src.affine, header)
        seg.set_data_dtype(np.uint8)
        seg.header.set_slope_inter(1, 0)
        nib.save(seg, str(targets[0]))
        written.append(targets[0])
        if probabilities:
            pr = nib.Nifti1Image(back.permute(1, 2, 3, 0).numpy().astype(np.float32), src.affine)
            nib.save(pr, str(targets[1]))
            written.append(targets[1])
        if say:
            say(f"  {p.name} -> {targets[0].name} (classes present: {sorted(np.unique(mask).tolist())})")
    return written


def _volumes(p: Path) -> List[Tuple[str, np.ndarray]]:
    """``[(row name, volume (D, H, W) or (C, D, H, W))]`` of one classification input file."""
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        try:
            a = np.asarray(nib.load(str(p)).dataobj)
        except Exception as err:
            raise DataError(f"cannot read {p} (unreadable or truncated NIfTI file): {type(err).__name__}") from None
        return [(p.name, np.moveaxis(a, -1, 0) if a.ndim == 4 else a)]
    if name.endswith(".npz"):
        from .data import load_array

        try:
            with np.load(p, allow_pickle=False) as z:
                keys = list(z.keys())
        except Exception as err:
            raise DataError(f"cannot read {p} (truncated or not a .npz archive): {type(err).__name__}") from None
        key = next((k for k in ("test_images", "images") if k in keys), keys[0] if len(keys) == 1 else None)
        if key is None:
            raise DataError(f"{p} holds arrays {keys}; expected 'test_images', 'images' or a single array")
        a = load_array(p, key)
        if a.ndim == 4:
            return [(f"{p.name}[{key}][{i}]", a[i]) for i in range(len(a))]
        return [(p.name, a)]
    from .data import load_voxel_file

    return [(p.name, load_voxel_file(p))]


def predict_classification(model: torch.nn.Module, hparams: Dict, paths: Sequence[PathLike], out_csv: PathLike,
                           batch_size: int = 32, device: str = "cpu") -> Tuple[Path, List[Dict[str, object]]]:
    """Class probabilities for every volume of ``paths``, scaled (the run's stored ``intensity_scale``) and
    resized (its ``input_size`` / ``resize``) as in training. Writes ``out_csv`` with columns ``input``,
    ``predicted`` (class name) and ``p_<class name>`` per class; returns ``(path, rows)``."""
    from .data import check_finite
    from .training.data import resize_grids

    config = dict(hparams.get("config") or {})
    info = dict(hparams.get("data_info") or {})
    k = int(hparams["num_classes"])
    names = list(info.get("class_names") or [])
    names = names + [str(i) for i in range(len(names), k)]
    scale = float(info.get("intensity_scale", 1.0))
    rows: List[Dict[str, object]] = []
    items: List[Tuple[str, torch.Tensor]] = []
    for p in paths:
        for row_name, v in _volumes(Path(p)):
            v = np.asarray(v)
            check_finite(v, f"input {row_name}")
            x = torch.as_tensor(v.astype(np.float32) / np.float32(scale))
            x = x[None] if x.dim() == 3 else x
            if x.dim() != 4 or len(set(x.shape[1:])) != 1:
                raise DataError(f"{p}: a classification input must be a cubic volume (D, H, W), got shape {v.shape}")
            items.append((row_name, resize_grids(x[None], config.get("input_size"), config.get("resize", "auto"))[0]))
    model = model.to(device).eval()
    for i in range(0, len(items), batch_size):
        chunk = items[i:i + batch_size]
        with torch.no_grad():
            prob = model(torch.stack([x for _, x in chunk]).to(device)).float().softmax(-1).cpu()
        for (row_name, _), pr in zip(chunk, prob):
            row = {"input": row_name, "predicted": names[int(pr.argmax())]}
            row.update({f"p_{n}": round(float(v), 6) for n, v in zip(names, pr)})
            rows.append(row)
    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out, rows
