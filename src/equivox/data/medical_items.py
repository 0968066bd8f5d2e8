"""Item lists of medical segmentation data: a Medical Segmentation Decathlon folder (``dataset.json``) or an image
folder and a label folder matched by file name, as ``[{"image": path, "label": path}, ...]``; the image file
extensions known (:data:`IMAGE_EXTENSIONS`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from .errors import DataError

__all__ = ["IMAGE_EXTENSIONS", "strip_image_extension", "decathlon_items", "decathlon_labels", "folder_pair_items"]

PathLike = Union[str, Path]
IMAGE_EXTENSIONS = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr", ".img", ".hdr")
_MAX_LISTED = 10


def _listing(items: Sequence, limit: int = _MAX_LISTED) -> str:
    items = [str(i) for i in items]
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def strip_image_extension(name: str) -> Optional[str]:
    """File name without its (possibly double) image extension, e.g. ``"case_01.nii.gz" -> "case_01"``;
    ``None`` for names without a known extension (see ``IMAGE_EXTENSIONS``)."""
    low = name.lower()
    for ext in IMAGE_EXTENSIONS:
        if low.endswith(ext):
            return name[: -len(ext)]
    return None


def _read_dataset_json(root: Path) -> dict:
    if not root.is_dir():
        raise DataError(f"Decathlon folder not found: {root}")
    meta = root / "dataset.json"
    if not meta.is_file():
        raise DataError(f"{root} has no dataset.json (Medical Segmentation Decathlon layout expected)")
    try:
        return json.loads(meta.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{meta} is not valid JSON: {err}") from None


def decathlon_items(root: PathLike, section: str = "training") -> List[Dict[str, str]]:
    """Items of a Decathlon folder (``dataset.json``, ``imagesTr/``, ``labelsTr/``, ``imagesTs/``).

    Args:
        root: the task folder (e.g. ``Task09_Spleen``).
        section: ``"training"`` (dicts with ``image`` and ``label``) or ``"test"`` (image paths only).

    Returns:
        ``[{"image": abs path, "label": abs path}, ...]`` (``{"image": ...}`` for ``"test"``) in
        ``dataset.json`` order; relative paths like ``./imagesTr/x.nii.gz`` are resolved against ``root``.

    Raises:
        DataError: missing folder / ``dataset.json``, invalid JSON, missing section or keys, or listed files
            that do not exist (all of them are named).
    """
    root = Path(root)
    meta = _read_dataset_json(root)
    if section not in meta:
        raise DataError(f"{root / 'dataset.json'} has no {section!r} list (keys: {sorted(meta)})")
    items, missing = [], []
    for n, entry in enumerate(meta[section]):
        if isinstance(entry, str):
            entry = {"image": entry}
        if not isinstance(entry, dict) or "image" not in entry or (section == "training" and "label" not in entry):
            raise DataError(f"{root / 'dataset.json'}: entry {n} of {section!r} lacks 'image'/'label': {entry}")
        item = {}
        for key in ("image", "label"):
            if key in entry:
                p = (root / entry[key]).resolve()
                item[key] = str(p)
                if not p.is_file():
                    missing.append(str(p))
        items.append(item)
    if missing:
        raise DataError(f"{len(missing)} file(s) listed in {root / 'dataset.json'} are missing: {_listing(missing)}")
    if not items:
        raise DataError(f"{root / 'dataset.json'}: the {section!r} list is empty")
    return items


def decathlon_labels(root: PathLike) -> Dict[int, str]:
    """The ``labels`` mapping of a Decathlon ``dataset.json`` as ``{value: name}`` (e.g. ``{0: "background",
    1: "spleen"}``); ``len(...)`` is the ``num_classes`` to validate against."""
    root = Path(root)
    meta = _read_dataset_json(root)
    if "labels" not in meta:
        raise DataError(f"{root / 'dataset.json'} has no 'labels' mapping")
    try:
        return {int(k): str(v) for k, v in sorted(meta["labels"].items(), key=lambda kv: int(kv[0]))}
    except (ValueError, AttributeError):
        raise DataError(f"{root / 'dataset.json'}: 'labels' must map integer strings to names") from None


def folder_pair_items(image_dir: PathLike, label_dir: PathLike, image_suffix: str = "") -> List[Dict[str, str]]:
    """Pair images and labels stored in two folders by file name (extension-insensitive: ``a.nii.gz`` pairs
    with ``a.nii``).

    Args:
        image_suffix: a suffix removed from image names before matching, e.g. ``"_0000"`` for nnU-Net's
            ``case_0000.nii.gz`` / ``case.nii.gz``.

    Returns:
        ``[{"image": abs path, "label": abs path}, ...]`` sorted by name.

    Raises:
        DataError: missing folders, no images, or images without labels / labels without images (named).
    """
    image_dir, label_dir = Path(image_dir), Path(label_dir)
    for d, what in ((image_dir, "image"), (label_dir, "label")):
        if not d.is_dir():
            raise DataError(f"{what} folder not found: {d}")

    def index(folder: Path, suffix: str = "") -> Dict[str, Path]:
        out: Dict[str, Path] = {}
        for p in sorted(folder.iterdir()):
            stem = strip_image_extension(p.name) if p.is_file() and not p.name.startswith(".") else None
            if stem is None:
                continue
            if suffix and stem.endswith(suffix):
                stem = stem[: -len(suffix)]
            if stem in out:
                raise DataError(f"two files in {folder} share the name {stem!r}: {out[stem].name}, {p.name}")
            out[stem] = p
        return out

    images, labels = index(image_dir, image_suffix), index(label_dir)
    if not images:
        raise DataError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {image_dir}")
    no_label = sorted(set(images) - set(labels))
    no_image = sorted(set(labels) - set(images))
    if no_label or no_image:
        parts = []
        if no_label:
            parts.append(f"images without a label in {label_dir}: {_listing(images[s].name for s in no_label)}")
        if no_image:
            parts.append(f"labels without an image in {image_dir}: {_listing(labels[s].name for s in no_image)}")
        raise DataError("; ".join(parts))
    return [{"image": str(images[s].resolve()), "label": str(labels[s].resolve())} for s in sorted(images)]
