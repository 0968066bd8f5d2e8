"""The dataset registry: every named dataset equivox knows, bundled or added from user code.

A :class:`DatasetSpec` holds what the rest of equivox needs to know about a dataset: its name (what
``TrainConfig(dataset=...)`` and ``equivox train --dataset`` accept), its task, the loader that returns one split,
how to rebuild it, and its licence and citation. The CLI (``equivox data list|info|build``), the training config
and the training data code read this registry and nothing else, so adding a dataset is one call::

    from equivox.data import DatasetSpec, register_dataset

    register_dataset(DatasetSpec(name="my_shapes", task="classification", load=my_loader,
                                 licence="CC BY 4.0", citation="Me et al. 2026"))

Loader contract (``load(split)`` with ``split`` in ``"train"``, ``"val"``, ``"test"``):

* classification: a mapping ``{"images": (N, D, H, W) or (N, C, D, H, W) array, "labels": (N,) integer
  array, "class_names": [str, ...] (optional)}``;
* segmentation: a mapping ``{"volumes": [(image (C, D, H, W) or (D, H, W), label (1, D, H, W) or (D, H, W)),
  ...], "label_names": {int: str} (optional)}``; images already scaled for training (e.g. to [0, 1]).

A loader without a separate split may return the same data for several splits (the bundled segmentation
samples serve every split: patches train, a centre crop validates). :meth:`DatasetSpec.load_split` checks what
the loader returns and raises :class:`~equivox.data.DataError` naming the dataset, the split and the problem.

A classification dataset built from meshes may also offer them (``meshes=lambda split: [path, ...]``, in the
loader's order, and ``mesh_options``: how the stored grids were voxelized): the benchmark harness then scores
random rotations by rotating the mesh and voxelizing it (``run_classification(so3_protocol="mesh")``).

Licence, citation and description may come from a provenance JSON record (``provenance=``; the bundled
datasets' ``equivox/data/bundled/<stem>.json``) instead of being repeated in code.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .errors import DataError, check_finite

__all__ = ["TASKS", "SPLITS", "DatasetSpec", "register_dataset", "unregister_dataset", "get_dataset",
           "find_dataset", "dataset_names", "list_datasets", "normalize_task", "unknown_dataset_message",
           "MESH_OPTIONS"]

#: dataset tasks (``TrainConfig.task`` ``"classify"`` / ``"segment"`` are accepted as synonyms)
TASKS = ("classification", "segmentation")
#: the splits a loader is asked for
SPLITS = ("train", "val", "test")
#: the :func:`~equivox.data.voxelize_mesh` keywords a :class:`DatasetSpec` may fix in ``mesh_options``
MESH_OPTIONS = ("margin", "method", "placement")
_TASK_SYNONYMS = {"classify": "classification", "segment": "segmentation"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")

_REGISTRY: Dict[str, "DatasetSpec"] = {}  # name -> spec, in registration order
_ALIASES: Dict[str, str] = {}  # alias -> name


def normalize_task(task: str) -> str:
    """``"classification"`` or ``"segmentation"`` for ``task`` (also accepts ``"classify"`` / ``"segment"``);
    raises ``ValueError`` naming the bad value."""
    t = _TASK_SYNONYMS.get(task, task)
    if t not in TASKS:
        raise ValueError(f"dataset task must be one of {TASKS} (or 'classify' / 'segment'), got {task!r}")
    return t


@dataclass(frozen=True)
class DatasetSpec:
    """One registered dataset.

    Args:
        name: the name ``TrainConfig(dataset=...)`` and ``--dataset`` accept (letters, digits, ``_``, ``-``; no
            path separators or dots, so it never reads as a file path).
        task: ``"classification"`` or ``"segmentation"`` (``"classify"`` / ``"segment"`` accepted).
        load: ``load(split) -> mapping`` (see the module docstring for the keys per task).
        description, licence, citation: free text; empty values are taken from the ``provenance`` record.
        provenance: path of a JSON provenance record (keys ``description``, ``licence``, ``citation``,
            ``source_package``, ``files: {filename: {"bytes", "sha256"}}`` next to the JSON).
        build_script: script that rebuilds the data, relative to the repository root (e.g.
            ``"data_scripts/build_lidc_nodules.py"``); ``build_needs``: what it needs installed.
        loader: the public loader / dataset class names to show users (default: ``load``'s name).
        aliases: other names that resolve to this dataset (e.g. the bundled file stem).
        meshes: optional ``meshes(split) -> [path, ...]``: the mesh file of every item of ``split``, in the
            loader's order; offering them enables the mesh-level SO(3) protocol of the benchmark harness
            (``so3_protocol="mesh"``: rotate the mesh, then voxelize; a segmentation dataset's meshes are labelled
            by :func:`~equivox.data.voxelize_labelled_shapes` from their materials).
        mesh_options: the :func:`~equivox.data.voxelize_mesh` keywords (``margin``, ``method``, ``placement``)
            that rebuild the stored grids from ``meshes`` (the grid side is the stored one); needs ``meshes``.
    """

    name: str
    task: str
    load: Callable[[str], Mapping[str, Any]]
    description: str = ""
    licence: str = ""
    citation: str = ""
    provenance: Optional[Union[str, Path]] = None
    build_script: Optional[str] = None
    build_needs: str = ""
    loader: str = ""
    aliases: Tuple[str, ...] = ()
    meshes: Optional[Callable[[str], Sequence[Union[str, Path]]]] = None
    mesh_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        for n in (self.name, *self.aliases):
            if not isinstance(n, str) or not _NAME.match(n):
                raise ValueError(f"dataset name {n!r} must start with a letter or digit and hold only letters, "
                                 "digits, '_' and '-' (no path separators or dots)")
        object.__setattr__(self, "task", normalize_task(self.task))
        object.__setattr__(self, "aliases", tuple(self.aliases))
        if not callable(self.load):
            raise ValueError(f"dataset {self.name!r}: load must be a callable load(split) -> mapping, got "
                             f"{type(self.load).__name__}")
        if self.provenance is not None:
            object.__setattr__(self, "provenance", Path(self.provenance))
        if self.meshes is not None and not callable(self.meshes):
            raise ValueError(f"dataset {self.name!r}: meshes must be a callable meshes(split) -> [path, ...], got "
                             f"{type(self.meshes).__name__}")
        unknown = sorted(set(self.mesh_options) - set(MESH_OPTIONS))
        if unknown or (self.mesh_options and self.meshes is None):
            raise ValueError(f"dataset {self.name!r}: mesh_options takes {list(MESH_OPTIONS)} and needs meshes; got "
                             f"{dict(self.mesh_options)} with meshes={self.meshes!r}")
        object.__setattr__(self, "mesh_options", dict(self.mesh_options))

    # ------------------------------------------------------------------ metadata
    def _record(self) -> Dict[str, Any]:
        if self.provenance is None or not Path(self.provenance).is_file():
            return {}
        try:
            rec = json.loads(Path(self.provenance).read_text())
        except (OSError, json.JSONDecodeError):
            return {}
        return rec if isinstance(rec, dict) else {}

    @property
    def installed(self) -> bool:
        """False when the dataset names a provenance record that is missing (package data not installed)."""
        return self.provenance is None or Path(self.provenance).is_file()

    def metadata(self) -> Dict[str, Any]:
        """``{"name", "task", "description", "licence", "citation", "source_package", "files", "available",
        "loader", "build_script", "aliases"}``: the spec's fields, empty ones filled from the provenance record.
        ``files`` maps each data file to ``{"bytes", "sha256"}`` (empty for in-memory data); ``available`` is
        False when a listed file (or the record itself) is missing."""
        rec = self._record()
        files = rec.get("files") or {}
        folder = Path(self.provenance).parent if self.provenance is not None else None
        available = self.installed and all((folder / f).is_file() for f in files)
        return {"name": self.name, "task": self.task,
                "description": self.description or rec.get("description", ""),
                "licence": self.licence or rec.get("licence", ""),
                "citation": self.citation or rec.get("citation", ""),
                "source_package": rec.get("source_package", ""), "files": files, "available": available,
                "loader": self.loader or getattr(self.load, "__qualname__", type(self.load).__name__),
                "build_script": self.build_script, "aliases": self.aliases}

    def build_hint(self) -> str:
        """The command that rebuilds the data (``"python <build_script>  (needs ...)"``), or a pointer to
        ``data_scripts/`` when the dataset has no build script."""
        if not self.build_script:
            return "see data_scripts/ in the equivox repository"
        return f"python {self.build_script}" + (f"  (needs {self.build_needs})" if self.build_needs else "")

    # ------------------------------------------------------------------ loading
    def mesh_paths(self, split: str) -> List[Path]:
        """The mesh file of every item of ``split`` (the :attr:`meshes` callable's list, as paths).

        Raises:
            DataError: the dataset offers no meshes (one line naming it), or a listed file is missing.
        """
        if self.meshes is None:
            raise DataError(f"dataset {self.name!r} offers no meshes (its DatasetSpec has no meshes=...): the "
                            "mesh-level SO(3) protocol needs them; use so3_protocol='grid'")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        paths = [Path(p) for p in self.meshes(split)]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise DataError(f"dataset {self.name!r} [{split}]: {len(missing)} of {len(paths)} mesh files are "
                            f"missing (first: {missing[0]})")
        return paths

    def load_split(self, split: str) -> Dict[str, Any]:
        """Call the loader for ``split`` and check its result.

        Returns a dict: classification ``{"images": ndarray, "labels": ndarray, "class_names": list | None}``;
        segmentation ``{"volumes": [(image FloatTensor (C, D, H, W), label LongTensor (1, D, H, W)), ...],
        "label_names": {int: str}}``.

        Raises:
            ValueError: ``split`` is not one of :data:`SPLITS`.
            DataError: the loader returned something else than the task's mapping (message names the dataset,
                the split and what is wrong).
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        where = f"dataset {self.name!r} [{split}]"
        out = self.load(split)
        if not isinstance(out, Mapping):
            raise DataError(f"{where}: the loader must return a mapping, got {type(out).__name__}")
        if self.task == "classification":
            missing = [k for k in ("images", "labels") if k not in out]
            if missing:
                raise DataError(f"{where}: the classification loader's mapping lacks {missing} (it holds "
                                f"{sorted(out)}); return {{'images': (N, D, H, W), 'labels': (N,), "
                                "'class_names': [...]}}")
            names = out.get("class_names")
            return {"images": np.asarray(out["images"]), "labels": np.asarray(out["labels"]),
                    "class_names": [str(c) for c in names] if names is not None else None}
        return {"volumes": self._volumes(out, where), "label_names": self._label_names(out, where)}

    @staticmethod
    def _volumes(out: Mapping[str, Any], where: str) -> List[Tuple[Any, Any]]:
        vols = out.get("volumes")
        if not isinstance(vols, (list, tuple)) or not vols:
            raise DataError(f"{where}: the segmentation loader's mapping needs 'volumes', a non-empty list of "
                            f"(image, label) pairs; it holds {sorted(out)}")
        result = []
        for n, pair in enumerate(vols):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise DataError(f"{where}: volume {n} must be an (image, label) pair, got {type(pair).__name__}")
            img, lab = _as_tensor(pair[0]).float(), _as_tensor(pair[1])
            img = img[None] if img.dim() == 3 else img
            lab = lab[None] if lab.dim() == 3 else lab
            if img.dim() != 4 or lab.dim() != 4 or lab.shape[0] != 1 or img.shape[1:] != lab.shape[1:]:
                raise DataError(f"{where}: volume {n} needs image (C, D, H, W) and label (1, D, H, W) of the same "
                                f"spatial shape, got {tuple(img.shape)} and {tuple(lab.shape)}")
            check_finite(img.numpy(), f"{where} volume {n} image")
            if lab.is_floating_point() and not bool((lab == lab.round()).all()):
                raise DataError(f"{where}: volume {n} label holds values that are not integer class indices")
            lab = lab.long()
            if bool((lab < 0).any()):
                raise DataError(f"{where}: volume {n} label holds negative class indices ({int(lab.min())})")
            result.append((img.contiguous(), lab.contiguous()))
        return result

    @staticmethod
    def _label_names(out: Mapping[str, Any], where: str) -> Dict[int, str]:
        names = out.get("label_names") or {}
        try:
            return {int(k): str(v) for k, v in dict(names).items()}
        except (TypeError, ValueError):
            raise DataError(f"{where}: label_names must map integer labels to names, got {names!r}") from None


def _as_tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    a = np.asarray(x)
    if a.dtype.kind in "uib":  # uint16 / bool maps: int64 (every torch op supports it)
        a = a.astype(np.int64)
    return torch.from_numpy(np.ascontiguousarray(a))


# ---------------------------------------------------------------------------------------------- registry
def register_dataset(spec: DatasetSpec, replace: bool = False) -> DatasetSpec:
    """Add a dataset to the registry (from user code too); afterwards ``TrainConfig(dataset=spec.name)``,
    ``equivox train --dataset <name>`` and ``equivox data list|info`` know it.

    Args:
        spec: a :class:`DatasetSpec`.
        replace: allow replacing a registered dataset of the same name.

    Raises:
        ValueError: the name or an alias is taken (by another dataset, or by this name without ``replace``).
    """
    if not isinstance(spec, DatasetSpec):
        raise ValueError(f"register_dataset needs a DatasetSpec, got {type(spec).__name__}")
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"dataset {spec.name!r} is already registered (pass replace=True to replace it)")
    for n in (spec.name, *spec.aliases):
        owner = _ALIASES.get(n, n if n in _REGISTRY else None)
        if owner is not None and owner != spec.name:
            raise ValueError(f"dataset name {n!r} of {spec.name!r} is already used by dataset {owner!r}")
    if spec.name in _REGISTRY:
        unregister_dataset(spec.name)
    _REGISTRY[spec.name] = spec
    for a in spec.aliases:
        _ALIASES[a] = spec.name
    return spec


def unregister_dataset(name: str) -> DatasetSpec:
    """Remove a registered dataset (by name or alias) and return its spec; raises :class:`DataError` listing
    the registered names when it is unknown."""
    spec = get_dataset(name)
    del _REGISTRY[spec.name]
    for a in spec.aliases:
        _ALIASES.pop(a, None)
    return spec


def find_dataset(name: str) -> Optional[DatasetSpec]:
    """The registered dataset called ``name`` (or with that alias), ``None`` when there is none."""
    if not isinstance(name, str):
        return None
    return _REGISTRY.get(_ALIASES.get(name, name))


def dataset_names(task: Optional[str] = None) -> Tuple[str, ...]:
    """Registered dataset names in registration order, optionally only those of ``task``."""
    return tuple(s.name for s in list_datasets(task))


def list_datasets(task: Optional[str] = None) -> List[DatasetSpec]:
    """Registered :class:`DatasetSpec` s in registration order, optionally only those of ``task``
    (``"classification"`` / ``"segmentation"``, or ``"classify"`` / ``"segment"``)."""
    t = normalize_task(task) if task is not None else None
    return [s for s in _REGISTRY.values() if t is None or s.task == t]


def get_dataset(name: str, task: Optional[str] = None) -> DatasetSpec:
    """The registered dataset ``name`` (or alias).

    Raises:
        DataError: unknown name (the message lists the registered names), or a dataset of another ``task``
            than the one asked for.
    """
    spec = find_dataset(name)
    if spec is None:
        raise DataError(unknown_dataset_message(name, task))
    if task is not None and spec.task != normalize_task(task):
        raise DataError(f"dataset {spec.name!r} is a {spec.task} dataset, not a {normalize_task(task)} one")
    return spec


def unknown_dataset_message(name: str, task: Optional[str] = None, alternatives: str = "") -> str:
    """``"unknown dataset 'x': registered <task> datasets are a, b, ... (add one with
    equivox.data.register_dataset)"``, then ``alternatives`` (e.g. the file forms also accepted)."""
    names = dataset_names(task)
    kind = f"{normalize_task(task)} " if task is not None else ""
    listed = ", ".join(names) if names else "none"
    alt = f"; {alternatives}" if alternatives else ""
    return (f"unknown dataset {name!r}: registered {kind}datasets are {listed} (add one with "
            f"equivox.data.register_dataset){alt}")
