"""Prediction on new data with a checkpoint from :func:`equivox.training.fit` (``equivox predict``).

Segmentation: each image goes through the training run's preprocessing (RAS orientation, its ``spacing``, its
intensity rule, read from the checkpoint), MONAI ``sliding_window_inference`` with the run's ``patch_size``
windows, and back to the input's own voxel grid (MONAI ``Invertd``: orientation and resampling undone on the
class probabilities); the mask is written as NIfTI with the input file's affine, ``<stem>_seg.nii.gz`` (uint8
class indices), and on request ``<stem>_prob.nii.gz`` (float32, classes on the 4th axis). Every input is read in
full and checked before the first mask is written (:func:`preflight_segmentation`: readable, 3D, finite values, the
model's channel count); each output file is written atomically (complete or absent).

Classification: each volume (NIfTI, ``.npy``, ``.npz``, ``.binvox``, mesh; an ``.npz`` archive of many volumes
such as a MedMNIST file gives one row per volume) is scaled and resized as in training; one CSV row per volume
with the predicted class and every class probability.

The user's files are only read; outputs never replace an input.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .data.errors import DataError

__all__ = ["input_files", "preflight_segmentation", "predict_segmentation", "predict_classification",
           "segmentation_preprocessing"]

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


def preflight_segmentation(paths: Sequence[PathLike], out_dir: PathLike, in_channels: int = 0,
                           probabilities: bool = False) -> List[Tuple[Path, List[Path]]]:
    """Check every input of a segmentation prediction before anything is written, and plan the outputs.

    Each image is read in full (:func:`equivox.data.load_image_checked`; formats other than NIfTI through MONAI's
    readers, :func:`equivox.data.load_monai_checked`): readable to its last byte, 3D (or 4D with channels last),
    finite values, as many channels as the model takes (``in_channels``; 0: not checked). Its outputs
    (``<stem>_seg.nii.gz``, with ``probabilities`` also ``<stem>_prob.nii.gz``, in ``out_dir``) must neither replace
    an input nor be claimed by another input of the same name.

    Returns:
        ``[(input, [mask path, probabilities path if asked]), ...]`` in the order of ``paths``.

    Raises:
        DataError: the first problem, one line naming the file and the problem; nothing has been written.
    """
    from .data.medical import is_nifti, load_image_checked, load_monai_checked

    out = Path(out_dir)
    inputs = {Path(p).resolve() for p in paths}
    claimed: Dict[Path, Path] = {}
    plan: List[Tuple[Path, List[Path]]] = []
    for p in paths:
        p = Path(p)
        if is_nifti(p):
            shape = tuple(load_image_checked(p, "image", before="prediction")[1].shape)
            channels = int(np.prod(shape[3:])) if len(shape) > 3 else 1
        else:
            channels = int(load_monai_checked({"image": p}, before="prediction")["image"].shape[0])
        if in_channels and channels != in_channels:
            raise DataError(f"image {p} has {channels} channel(s); the model takes {in_channels}")
        targets = [out / f"{_stem(p)}_seg.nii.gz"] + ([out / f"{_stem(p)}_prob.nii.gz"] if probabilities else [])
        for t in targets:
            if t.resolve() in inputs:
                raise DataError(f"output {t} would replace an input file; choose another --out")
            if t.resolve() in claimed:
                other = claimed[t.resolve()]
                if other.resolve() == p.resolve():
                    raise DataError(f"input {p} is given twice (as a file and in --image-dir?)")
                raise DataError(f"inputs {other} and {p} would both write {t}; rename one of them")
            claimed[t.resolve()] = p
        plan.append((p, targets))
    return plan


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`equivox.cache.atomic_write`: a temporary file in the same folder,
    renamed over ``path``): an output is complete or absent, never half-written. The file gets the user's usual
    mode (umask), not the temporary file's 0600."""
    from .cache import atomic_write
    from .training.fit import _umask

    atomic_write(path, lambda f: f.write(data))
    os.chmod(path, 0o666 & ~_umask())


def _save_nifti(img, path: Path) -> None:
    """A nibabel image written atomically (gzip-compressed for ``.nii.gz``, as ``nibabel.save`` does)."""
    import gzip

    data = img.to_bytes()
    _write_atomically(path, gzip.compress(data, compresslevel=1) if path.name.lower().endswith(".gz") else data)


def predict_segmentation(model: torch.nn.Module, hparams: Dict, paths: Sequence[PathLike], out_dir: PathLike,
                         probabilities: bool = False, intensity: Optional[str] = None, sw_batch_size: int = 2,
                         overlap: float = 0.25, device: str = "cpu", say=print, plots: bool = True,
                         model_name: Optional[str] = None) -> List[Path]:
    """Masks for ``paths`` written to ``out_dir`` (see the module docstring); returns the written files.

    Every input is checked first (:func:`preflight_segmentation`): on any problem nothing is written. Each output
    file is written atomically (complete or absent, never half-written).

    Args:
        model: from :func:`equivox.training.load_checkpoint` (maps ``(B, C, D, H, W)`` to logits ``(B, K, ...)``).
        hparams: its ``hparams`` (the run's ``config``: ``spacing``, ``intensity``, ``patch_size``).
        intensity: override of the stored rule (``"ct"``, ``"mri"``, ``"none"``, ``"auto"``: decided from
            ``paths``; a stored ``"auto"``, from a run on a registered dataset, is decided the same way).
        say: called with one line per written file (``None``: quiet).
        plots: after all masks are written, one ``<mask name>_overlay.png`` per input (e.g.
            ``case0_seg_overlay.png``): three orthogonal middle slices with the mask over the image, a class legend
            and a title naming the input and ``model_name`` (default: the model's class). Not in the returned list.
    """
    import nibabel as nib
    from monai.data import MetaTensor
    from monai.inferers import sliding_window_inference
    from monai.transforms import Invertd

    from .data.medical import choose_intensity

    config = dict(hparams.get("config") or {})
    in_channels = int(getattr(model, "in_channels", 0) or 0)
    plan = preflight_segmentation(paths, out_dir, in_channels, probabilities)
    rule = intensity if intensity is not None else config.get("intensity")
    rule = None if rule in (None, "none") else rule
    if rule == "auto":
        rule, why = choose_intensity([str(p) for p in paths])
        if say:
            say(f"intensity auto -> {rule} ({why})")
    pre = segmentation_preprocessing(config, rule)
    inv = Invertd(keys="pred", transform=pre, orig_keys="image", nearest_interp=False)
    roi = _window(config, model)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    written: List[Path] = []
    masks: List[Tuple[Path, Path, np.ndarray]] = []
    model = model.to(device).eval()
    for p, targets in plan:
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
        header = src.header.copy()
        seg = nib.Nifti1Image(mask, src.affine, header)
        seg.set_data_dtype(np.uint8)
        seg.header.set_slope_inter(1, 0)
        _save_nifti(seg, targets[0])
        written.append(targets[0])
        if probabilities:
            pr = nib.Nifti1Image(back.permute(1, 2, 3, 0).numpy().astype(np.float32), src.affine)
            _save_nifti(pr, targets[1])
            written.append(targets[1])
        if say:
            say(f"  {p.name} -> {targets[0].name} (classes present: {sorted(np.unique(mask).tolist())})")
        masks.append((p, targets[0], mask))
    if plots:
        _overlays(masks, hparams, model_name or type(model).__name__, say)
    return written


def _overlays(masks, hparams: Dict, model_name: str, say) -> None:
    """``<mask name>_overlay.png`` next to each mask (written after all masks)."""
    import nibabel as nib

    from .evaluation.plots import plot_segmentation_overlay

    k = int(hparams.get("num_classes") or 0) or None
    names = list((hparams.get("data_info") or {}).get("class_names") or []) or None
    for p, target, mask in masks:
        src = nib.load(str(p))
        out = target.with_name(f"{target.name[:-len('.nii.gz')] if target.name.endswith('.nii.gz') else target.stem}"
                              "_overlay.png")
        plot_segmentation_overlay(np.asanyarray(src.dataobj), mask, out, title=f"{p.name}: predicted by {model_name}",
                                  class_names=names, num_classes=k, spacing=src.header.get_zooms()[:3])
        if say:
            say(f"  {out.name}")


def _volumes(p: Path) -> List[Tuple[str, np.ndarray]]:
    """``[(row name, volume (D, H, W) or (C, D, H, W))]`` of one classification input file."""
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        from .data.medical import load_image_checked

        a = load_image_checked(p, "input", before="prediction")[1]
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
            check_finite(v, f"input {row_name}", before="prediction")
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
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    _write_atomically(out, text.getvalue().encode())
    return out, rows
