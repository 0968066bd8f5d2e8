"""Training configuration: one dataclass, loadable from YAML / dicts and mergeable with CLI flags."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["TrainConfig", "load_yaml_config"]

_TASK_OF = {"classify": "classification", "segment": "segmentation"}
#: what ``dataset`` may be besides a registered name, per task (for error messages)
_FILE_FORMS = {"classify": "or give a path: a .npz file (MedMNIST-3D layout or 'images'/'labels' arrays) or a "
                           "ModelNet-style mesh folder",
               "segment": "or give a path: a Decathlon folder (with dataset.json), or image_dir + label_dir"}


def _looks_like_path(name: str) -> bool:
    return "/" in name or "\\" in name or bool(Path(name).suffix) or Path(name).exists()


#: the built-in ``arch`` choices (besides the name of any registered model)
ARCH_CHOICES = ("equivariant", "baseline", "monai_unet")
#: how classification grids are brought to ``input_size``
RESIZE_CHOICES = ("auto", "pool", "pad", "crop")
#: the keys ``TrainConfig.extra`` accepts (engine details only)
EXTRA_KEYS = ("model_summary",)


@dataclass
class TrainConfig:
    """Everything :func:`equivox.training.fit` needs. Every field has a default that trains something sane.

    Data:
        task: ``"classify"`` or ``"segment"``.
        dataset: a registered dataset name (the bundled ones and any added with
            :func:`equivox.data.register_dataset`; ``equivox data list`` shows them) or a path: ``.npz``
            (classification), a ModelNet-style mesh folder (classification), a Decathlon folder (segmentation).
            Checked by :meth:`validate_dataset`.
        image_dir, label_dir: an image/label NIfTI folder pair for segmentation (instead of ``dataset``).
        num_classes: classes (segmentation: including background); ``None`` = from the dataset.
        class_names: names of an image/label folder pair's classes, background first (one per class; shown in
            tables, CSV columns and legends); ``None`` = ``"0", "1", ...``. Other datasets carry their own names.
        input_size: classification grids are reduced to this cube size; ``None`` keeps the stored size.
        resize: how: ``"auto"`` (default: average pooling by the integer factor when the stored side is a
            multiple of ``input_size``, else zero-padding to the next multiple first, e.g. MedMNIST 28^3 -> 32^3 ->
            pooled x2 -> 16^3; stated on the start-up line), ``"pool"`` (pooling only; the side must divide),
            ``"pad"`` (always pad then pool) or ``"crop"`` (centre crop, keeps the resolution).
        max_train, max_val: subsample the splits (deterministic, stratified by label for classification).
        patch_size: segmentation training patch (cube side; must be a multiple of the model's ``size_multiple``).
        patches_per_epoch: random patches drawn per epoch (segmentation).
        val_crop: segmentation validation on a centre crop of this side (direct forward); ``None`` = sliding
            window over the whole volume with ``patch_size`` windows (MONAI ``SlidingWindowInferer``).
        spacing: resample NIfTI data to this voxel spacing (mm along the RAS axes D, H, W); ``None`` keeps the
            stored voxels (their spacing is then read from the headers: ``group="auto"`` chooses from it and any
            other group is checked against it).
        intensity: NIfTI intensity normalisation: ``"auto"`` (default: chosen from the training images' value
            range: minimum below -500 and maximum above 500 -> ``"ct"``, else ``"mri"``; the choice is printed and
            stored in the checkpoint, so evaluate and predict apply the same), ``"ct"`` (HU window -1000..1000 ->
            [0, 1]), ``"mri"`` (per-volume z-score over the nonzero voxels), or None / ``"none"`` (as stored).
        downsample: integer factor to shrink registered segmentation volumes (image: average, label: nearest).
        augment: ``"none"``, ``"grid"`` (random grid rotation of ``group`` per item, exact) or ``"so3"``
            (random SO(3) rotation, resampled; image+label rotate together).
        strict: a mesh folder's unusable files (unreadable, empty) raise an error instead of being skipped with a
            warning each (the skipped files are listed in ``FitResult.skipped_files``).
    Model:
        arch: ``"equivariant"`` (InvariantClassifier / EquivariantUNet of ``group``), ``"baseline"`` (the same
            network with ``group="trivial"``, channels scaled to match the parameter count of the equivariant
            one, see :mod:`equivox.baselines`), ``"monai_unet"`` (segmentation, matched MONAI ``UNet``), or the name
            of any registered model (:func:`equivox.nets.registry.available_models`, e.g. ``"EquivariantMonaiUNet"``
            or one registered from user code), built with the arguments below that its constructor takes.
        group, channels (hidden fields per level), strides, kernel_size, convs_per_level, hidden_features.
        model: further constructor arguments of the network (YAML ``model:`` section, CLI ``--model-arg
            key=value``), e.g. ``{"head": "oriented", "class_swaps": [[1, 2]], "norm": "instance"}``: every
            argument of the built class's constructor is accepted (also overriding the ones above); an unknown
            key is an error naming it and the valid ones.
        canonicalize: a group name (e.g. ``"octa"``) to put the model behind an exactly equivariant canonicalizer
            over that group's grid-exact elements (:func:`equivox.canonicalization.canonicalize`), trained jointly
            with it (task loss plus ``prior_weight`` x the prior toward the identity); ``None``: no canonicalizer.
            Use it with a plain model (``arch: baseline``, ``group: trivial``, MONAI's ``UNet``): it makes that model
            exact under the group's grid rotations; upright it does as well as the canonicalizer learns which way
            is up (docs/canonicalization.md: on the furniture shapes, 8-9 points below the plain model).
        canonical_mode (``"hard"``, ``"frame"``, ``"soft"``), canonical_margin (frame mode), canonical_temperature
        (soft mode), prior_weight, canonical_sample (draw the training pose from the scores' softmax:
        ``sample_in_training``), canonical_pose (principal-axes pose first; cubic classification inputs),
        canonicalizer_channels (fields per level), canonicalizer_input_size (side of the pooled copy it sees): the
        canonicalizer's settings (:class:`equivox.canonicalization.Canonicalized`).
    Optimisation / engine (PyTorch Lightning):
        epochs, until_plateau (``epochs`` becomes the minimum: train on until the validation curve has reached its
        plateau, :func:`~equivox.training.plateaued`, at most ``max_epochs``; default ``3 * epochs``), max_epochs,
        max_steps (-1: no limit), batch_size, lr, weight_decay (AdamW), seed, num_workers,
        devices, num_nodes, strategy (``"auto"`` -> ``"ddp"`` when ``devices > 1`` or ``num_nodes > 1``),
        accelerator (``"auto"``, ``"cpu"``, ``"gpu"``), precision (``None`` -> ``"16-mixed"`` with CUDA, else
        ``"32-true"``), out_dir, resume (checkpoint path: continues epochs and global step), progress,
        plots (write ``learning_curve.png`` into ``out_dir`` at the end of a run: training loss and validation
        score per epoch; CLI ``--no-plots``), deterministic, extra (engine details: only ``model_summary``; model options go in ``model``).
        overwrite: start afresh in an ``out_dir`` that already holds a run: its ``checkpoints/*.ckpt`` and
            ``logs/version_*`` are replaced by the new run's (other files stay; a run that fails before its first
            checkpoint puts them back). ``False`` (default): ``equivox
            train`` / ``equivox canonicalize`` refuse such a folder with one line (``--overwrite``, ``--resume`` or
            another ``--out``); :func:`~equivox.training.fit` called from Python (scripts, notebooks, the benchmark
            harness re-running into its folders) replaces the earlier run with a one-line warning naming it. Either
            way ``checkpoints/last.ckpt`` is always the newest run's. Not with ``resume`` (a resumed run continues
            in its folder; giving both is an error).
    """

    task: str = "classify"
    dataset: str = "lidc"
    image_dir: Optional[str] = None
    label_dir: Optional[str] = None
    num_classes: Optional[int] = None
    class_names: Optional[List[str]] = None
    input_size: Optional[int] = 16
    resize: str = "auto"
    max_train: Optional[int] = None
    max_val: Optional[int] = None
    patch_size: int = 24
    patches_per_epoch: int = 32
    val_crop: Optional[int] = 48
    spacing: Optional[Tuple[float, float, float]] = None
    intensity: Optional[str] = "auto"
    downsample: int = 1
    augment: str = "none"
    strict: bool = False

    arch: str = "equivariant"
    group: str = "octa"
    channels: Tuple[int, ...] = (2, 4)
    strides: Tuple[int, ...] = (2,)
    kernel_size: int = 3
    convs_per_level: int = 2
    hidden_features: Tuple[int, ...] = (32,)
    model: Dict[str, Any] = field(default_factory=dict)
    canonicalize: Optional[str] = None
    canonical_mode: str = "hard"
    prior_weight: float = 1.0
    canonical_sample: bool = True
    canonical_margin: float = 0.5
    canonical_temperature: float = 1.0
    canonical_pose: bool = False
    canonicalizer_channels: Tuple[int, ...] = (2, 4)
    canonicalizer_input_size: int = 16

    epochs: int = 5
    until_plateau: bool = False
    max_epochs: Optional[int] = None
    max_steps: int = -1
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    num_workers: int = 0
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    accelerator: str = "auto"
    precision: Optional[str] = None
    out_dir: str = "outputs/train"
    resume: Optional[str] = None
    overwrite: bool = False
    progress: bool = True
    plots: bool = True
    deterministic: bool = False
    extra: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.validate()

    def validate(self) -> "TrainConfig":
        """Check values; raises ``ValueError`` naming the bad field."""
        if self.task not in ("classify", "segment"):
            raise ValueError(f"task must be 'classify' or 'segment', got {self.task!r}")
        if self.arch not in ARCH_CHOICES:
            from ..nets.registry import available_models

            if self.arch not in available_models():
                raise ValueError(f"arch must be one of {', '.join(ARCH_CHOICES)} or a registered model "
                                 f"({', '.join(available_models())}), got {self.arch!r}")
        if self.task != "segment" and (self.image_dir is not None or self.label_dir is not None):
            raise ValueError("image_dir / label_dir (an image/label folder pair) are segmentation data, but task is "
                             f"{self.task!r}; use --task segment (task: segment)")
        if self.arch == "monai_unet" and self.task != "segment":
            raise ValueError("arch 'monai_unet' is for task 'segment' only")
        if self.augment not in ("none", "grid", "so3"):
            raise ValueError(f"augment must be 'none', 'grid' or 'so3', got {self.augment!r}")
        if isinstance(self.intensity, str) and self.intensity.lower() in ("none", "null", ""):
            self.intensity = None
        if self.intensity not in ("auto", "ct", "mri", None):
            raise ValueError(f"intensity must be 'ct', 'mri' or 'none', or 'auto' (chosen from the data), got "
                             f"{self.intensity!r}")
        if self.resize not in RESIZE_CHOICES:
            raise ValueError(f"resize must be one of {', '.join(RESIZE_CHOICES)}, got {self.resize!r}")
        for name in ("epochs", "batch_size", "patch_size", "patches_per_epoch", "downsample", "kernel_size",
                     "convs_per_level", "num_nodes"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.class_names is not None:
            if isinstance(self.class_names, str) or not all(isinstance(n, str) and n for n in self.class_names):
                raise ValueError(f"class_names must be a list of non-empty strings, got {self.class_names!r}")
            self.class_names = [str(n) for n in self.class_names]
        for name in ("input_size", "max_train", "max_val", "val_crop", "num_classes", "max_epochs"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {v!r}")
        if self.max_epochs is not None and self.max_epochs < self.epochs:
            raise ValueError(f"max_epochs must be >= epochs ({self.epochs}), got {self.max_epochs}")
        for name in ("overwrite", "plots", "until_plateau"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.overwrite and self.resume is not None:
            raise ValueError("overwrite and resume exclude each other: resume continues the run in out_dir, overwrite "
                             "removes it first; give one")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        for name in ("channels", "strides", "hidden_features", "canonicalizer_channels"):
            vals = getattr(self, name)
            if isinstance(vals, (int, str)) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                                       for v in vals):
                raise ValueError(f"{name} must be a list of positive integers, got {vals!r}")
        self.channels = tuple(int(c) for c in self.channels)
        self.strides = tuple(int(s) for s in self.strides)
        self.hidden_features = tuple(int(h) for h in self.hidden_features)
        self.canonicalizer_channels = tuple(int(c) for c in self.canonicalizer_channels)
        if isinstance(self.canonicalize, str) and self.canonicalize.lower() in ("none", "null", ""):
            self.canonicalize = None
        if self.canonical_mode not in ("hard", "frame", "soft"):
            raise ValueError(f"canonical_mode must be 'hard', 'frame' or 'soft', got {self.canonical_mode!r}")
        if self.prior_weight < 0 or self.canonical_margin < 0 or self.canonical_temperature <= 0:
            raise ValueError(f"need prior_weight >= 0, canonical_margin >= 0 and canonical_temperature > 0, got "
                             f"{self.prior_weight}, {self.canonical_margin}, {self.canonical_temperature}")
        if len(self.strides) != len(self.channels) - 1:
            raise ValueError(f"strides needs len(channels) - 1 = {len(self.channels) - 1} entries for "
                             f"channels={self.channels}, got {self.strides}")
        if self.spacing is not None:
            if isinstance(self.spacing, (int, float)):
                self.spacing = (self.spacing,) * 3
            self.spacing = tuple(float(s) for s in self.spacing)
            if len(self.spacing) != 3 or min(self.spacing) <= 0:
                raise ValueError(f"spacing must be 3 positive values (mm along D, H, W), got {self.spacing}")
        self._check_group()
        if not isinstance(self.model, dict) or not all(isinstance(k, str) for k in self.model):
            raise ValueError(f"model must be a mapping of constructor argument names to values, got {self.model!r}")
        unknown_extra = sorted(set(self.extra) - set(EXTRA_KEYS))
        if unknown_extra:
            raise ValueError(f"unknown extra keys {unknown_extra} (valid: {', '.join(EXTRA_KEYS)}); model "
                             "constructor options go in the model: section / --model-arg key=value")
        return self

    def _check_group(self) -> None:
        from ..groups import group_name_error

        for name in ("group", "canonicalize"):
            value = getattr(self, name)
            error = None if value is None else group_name_error(value, name, ("auto",) if name == "group" else ())
            if error:
                raise ValueError(error)

    def validate_dataset(self):
        """Check ``dataset`` against the dataset registry and return its :class:`~equivox.data.DatasetSpec`, or
        ``None`` when the data are files (``image_dir``/``label_dir`` given, or ``dataset`` is a path: these are
        checked when loaded).

        :meth:`validate` checks only what the config holds; this check reads the registry (which user code may
        extend) and the file system, so it runs where the data are needed: in
        :func:`~equivox.training.build_datasets` and before ``equivox train`` starts (a config whose datasets are
        passed to :func:`~equivox.training.fit` directly may use ``dataset`` as a plain label).

        Raises:
            DataError: (a ``ValueError``) ``dataset`` is neither registered nor a path (the message lists the
                registered datasets of the task), or it is registered for the other task.
        """
        from ..data.errors import DataError
        from ..data.registry import find_dataset, unknown_dataset_message

        if self.image_dir is not None or self.label_dir is not None:
            return None
        spec = find_dataset(self.dataset)
        if spec is None:
            if isinstance(self.dataset, str) and self.dataset and _looks_like_path(self.dataset):
                return None
            raise DataError(unknown_dataset_message(self.dataset, _TASK_OF[self.task], _FILE_FORMS[self.task]))
        if spec.task != _TASK_OF[self.task]:
            other = "segment" if self.task == "classify" else "classify"
            raise DataError(f"dataset {self.dataset!r} is a {spec.task} dataset; use task {other!r}")
        return spec

    # ------------------------------------------------------------------ conversions
    def to_dict(self) -> Dict[str, Any]:
        """Plain dict (tuples as lists), e.g. for YAML or checkpoint hyper-parameters."""
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def field_names(cls) -> Tuple[str, ...]:
        """The config's field names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "TrainConfig":
        """Build from a dict; unknown keys raise ``ValueError`` listing them (typos fail loudly)."""
        unknown = sorted(set(d) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; valid keys: {', '.join(cls.field_names())} (the "
                             "network's own constructor options go in the model: section)")
        return cls(**d)

    def merged(self, overrides: Dict[str, Any]) -> "TrainConfig":
        """A copy with ``overrides`` applied (``None`` values are ignored: "flag not given")."""
        d = dataclasses.asdict(self)
        d.update({k: v for k, v in overrides.items() if v is not None})
        return type(self).from_dict(d)


def load_yaml_config(path) -> Dict[str, Any]:
    """Read a YAML mapping of :class:`TrainConfig` keys from ``path``; raises ``FileNotFoundError`` /
    ``ValueError`` with the path named.

    A top-level ``train:`` section is used when present (so one YAML file can hold several sections, e.g.
    ``train:`` and ``evaluate:``): its keys are returned, merged over any top-level :class:`TrainConfig` keys
    (other top-level sections are ignored)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"config file {p} is not valid YAML: {err}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {p} must hold a mapping of keys to values, got {type(data).__name__}")
    if "train" in data:
        section = data["train"] or {}
        if not isinstance(section, dict):
            raise ValueError(f"config file {p}: the 'train:' section must be a mapping of keys to values, got "
                             f"{type(section).__name__}")
        fields = set(TrainConfig.field_names())
        data = {**{k: v for k, v in data.items() if k in fields}, **section}
    return data
