"""The files of the bundled datasets: where they live (:data:`BUNDLED_DIR`), a file's path with a rebuild hint when
it is missing (:func:`bundled_path`), the provenance records (:func:`bundled_datasets`), and the readers the
loaders share (a record, an ``.npz`` archive, packed occupancy bits, a split check)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .registry import list_datasets

__all__ = ["BUNDLED_DIR", "SPLITS", "bundled_path", "bundled_datasets"]

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"

SPLITS = ("train", "val", "test")


def bundled_path(filename: str) -> Path:
    """Path of a bundled file; raises FileNotFoundError with a rebuild hint if missing."""
    p = BUNDLED_DIR / filename
    if not p.is_file():
        stem = filename.split(".")[0]
        owners = [s for s in list_datasets() if s.provenance is not None and stem.startswith(s.provenance.stem)]
        hint = owners[0].build_hint() if owners else "see data_scripts/ in the equivox repository"
        raise FileNotFoundError(
            f"bundled data file not found: {p}\n"
            f"The equivox installation is missing its package data (was it installed without "
            f"'src/equivox/data/bundled/*'?). Rebuild it from the repository root with:\n    {hint}"
        )
    return p


def _metadata(name: str) -> dict:
    return json.loads(bundled_path(f"{name}.json").read_text())


def bundled_datasets() -> dict[str, dict[str, Any]]:
    """The registered datasets shipped in :data:`BUNDLED_DIR` whose provenance JSON is on disk, keyed by file stem.

    Returns ``{stem: {"description", "task", "licence", "citation", "source_package",
    "files": {filename: {"sha256", "bytes"}}, "loader", "available"}}`` (read from the JSON records).
    ``available`` is False when a data file listed in the JSON is missing.
    """
    out = {}
    for spec in list_datasets():
        if spec.provenance is None or spec.provenance.parent != BUNDLED_DIR or not spec.installed:
            continue
        if spec.provenance.stem in out:  # a second view of the same files (e.g. chest_ct_heldout)
            continue
        meta = spec.metadata()
        if not meta["files"] or not meta["licence"]:
            continue
        out[spec.provenance.stem] = {k: meta[k] for k in ("description", "task", "licence", "citation",
                                                           "source_package", "files", "loader", "available")}
    return out


def _unpack(packed: np.ndarray, shape) -> np.ndarray:
    shape = tuple(int(s) for s in shape)
    n = int(np.prod(shape))
    return np.unpackbits(packed, axis=1, count=n).reshape((len(packed),) + shape).astype(bool)


def _check_split(split: str | None, allowed=SPLITS) -> None:
    if split is not None and split not in allowed:
        raise ValueError(f"split must be one of {allowed} or None (all), got {split!r}")


def _npz(name: str) -> dict[str, np.ndarray]:
    with np.load(bundled_path(f"{name}.npz"), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _packed_shapes(name: str, split: str | None, per_item: tuple) -> dict[str, Any]:
    """A bundled shape-classification set stored as packed occupancy bits: ``voxels`` bool, ``label`` int64,
    ``class_names``, ``metadata`` and the ``per_item`` arrays, restricted to ``split`` (None: all)."""
    z = _npz(name)
    sel = slice(None) if split is None else (z["split"] == split)
    out = {"voxels": _unpack(z["voxels_packed"][sel], z["shape"]),
           "label": z["label"][sel].astype(np.int64),
           "class_names": [str(c) for c in z["class_names"]],
           "metadata": _metadata(name)}
    for k in per_item:
        out[k] = z[k][sel]
    return out
