"""The sections of :class:`~equivox.config.TrainConfig`: data, network, canonicalizer, trainer.

Each field carries its ``--help`` line, its choices and (where it differs from the name) its command-line option in
its metadata (:func:`~equivox.config.options.option`); the command line is generated from them. The sections hold
values only: :meth:`TrainConfig.validate <equivox.config.TrainConfig.validate>` checks them (with messages naming the
field), since several checks span sections.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from .options import option

__all__ = ["ARCH_CHOICES", "RESIZE_CHOICES", "EXTRA_KEYS", "DataConfig", "NetworkConfig", "CanonicalizerConfig",
           "TrainerConfig"]

#: the model roles an ``arch`` names: the built-in roles of :mod:`equivox.models.roles` (a test keeps them equal; this
#: torch-free layer cannot import the registry), besides the name of any registered model
ARCH_CHOICES = ("equivariant", "baseline", "plain_compute", "monai", "monai_unet")
#: how classification grids are brought to ``input_size``
RESIZE_CHOICES = ("auto", "pool", "pad", "crop")
#: the keys ``TrainConfig.extra`` accepts (engine details only)
EXTRA_KEYS = ("model_summary",)


@dataclass
class DataConfig:
    """What to train on and how it is prepared.

    ``dataset`` is a registered dataset name (the bundled ones and any added with
    :func:`equivox.data.register_dataset`; ``equivox data list`` shows them) or a path: ``.npz`` (classification), a
    ModelNet-style mesh folder (classification), a Decathlon folder (segmentation); checked by
    :meth:`TrainConfig.validate_dataset <equivox.config.TrainConfig.validate_dataset>`. ``image_dir`` / ``label_dir``:
    an image/label NIfTI folder pair for segmentation instead. ``resize="auto"`` average-pools by the integer factor
    when the stored side is a multiple of ``input_size``, else zero-pads to the next multiple first (MedMNIST 28^3 ->
    32^3 -> pooled x2 -> 16^3; stated on the start-up line). ``max_train`` / ``max_val`` subsample deterministically
    (stratified by label for classification). ``val_crop=None`` validates segmentation with a sliding window over the
    whole volume (``patch_size`` windows, MONAI ``SlidingWindowInferer``). ``spacing=None`` keeps the stored voxels
    (their spacing is then read from the headers: ``group="auto"`` chooses from it and any other group is checked
    against it). ``intensity="auto"`` is chosen from the training images' value range (minimum below -500 and maximum
    above 500 -> ``"ct"``, else ``"mri"``; printed and stored in the checkpoint, so evaluate and predict apply the
    same); ``None`` / ``"none"`` keeps the values as stored. ``strict``: the unusable files of a mesh folder are
    skipped with a warning each (listed in ``FitResult.skipped_files``) unless it is set.
    """

    task: str = option("classify", "classify or segment", choices=("classify", "segment"))
    dataset: str = option("lidc", "a registered dataset name (see 'equivox data list'), a .npz file, a mesh folder or "
                                  "a Decathlon folder")
    image_dir: Optional[str] = option(None, "segmentation: folder of image NIfTI files (with --label-dir; implies "
                                            "--task segment)")
    label_dir: Optional[str] = option(None, "segmentation: folder of label NIfTI files, same names as the images")
    num_classes: Optional[int] = option(None, "number of classes (segmentation: including background; required with "
                                              "--image-dir)", none_means="from the dataset")
    class_names: Optional[List[str]] = option(None, "segmentation folder pair: class names, background first, "
                                                    "comma-separated (e.g. background,liver,tumour)",
                                              none_means="0,1,...")
    input_size: Optional[int] = option(16, "classification: reduce grids to this cube side",
                                       none_means="the stored size")
    resize: str = option("auto", "classification: how grids reach --input-size: auto (pool, zero-padding first when "
                                 "the side does not divide, e.g. 28 -> 32 -> 16), pool, pad or crop",
                         choices=RESIZE_CHOICES)
    max_train: Optional[int] = option(None, "subsample the training split to this many items", none_means="all")
    max_val: Optional[int] = option(None, "subsample the validation split", none_means="all")
    patch_size: int = option(24, "segmentation training patch side (and sliding-window side): a multiple of the "
                                 "product of --strides, at most the volumes' side")
    patches_per_epoch: int = option(32, "segmentation: random patches per epoch")
    val_crop: Optional[int] = option(48, "segmentation: validate on a centre crop of this side",
                                     none_means="whole volumes, sliding window")
    spacing: Optional[Tuple[float, float, float]] = option(
        None, "NIfTI: resample to this voxel spacing in mm, D,H,W or one value",
        none_means="keep the stored voxels, spacing read from the headers")
    intensity: Optional[str] = option(
        "auto", "NIfTI intensity normalisation: auto (ct when the training images span HU, i.e. min < -500 and max > "
                "500, else mri), ct (HU window -1000..1000 -> [0, 1]), mri (per-volume z-score) or none (as stored)",
        choices=("auto", "ct", "mri", "none"),
        invalid="intensity must be 'ct', 'mri' or 'none', or 'auto' (chosen from the data)")
    downsample: int = option(1, "bundled segmentation volumes: shrink by this integer factor")
    augment: str = option("none", "none, grid (random exact grid rotations) or so3 (random resampled rotations)",
                          choices=("none", "grid", "so3"))
    strict: bool = option(False, "fail on the first unusable file of a mesh folder instead of skipping it with a "
                                 "warning")


@dataclass
class NetworkConfig:
    """The network.

    ``arch``: ``"equivariant"`` (InvariantClassifier / EquivariantUNet of ``group``), ``"baseline"`` (the same network
    with ``group="trivial"``, channels scaled to match the parameter count of the equivariant one, see
    :mod:`equivox.baselines`), ``"monai_unet"`` (segmentation, matched MONAI ``UNet``), or the name of any registered
    model (:func:`equivox.nets.registry.available_models`, e.g. ``"EquivariantMonaiUNet"`` or one registered from
    user code), built with the arguments of this section that its constructor takes. ``model``: further constructor
    arguments (YAML ``model:`` section, CLI ``--model-arg key=value``), e.g. ``{"head": "oriented", "class_swaps":
    [[1, 2]], "norm": "instance"}``: every argument of the built class's constructor is accepted (also overriding the
    ones above); an unknown key is an error naming it and the valid ones.
    """

    arch: str = option("equivariant", "equivariant, baseline (trivial group, matched parameters), monai_unet, or a "
                                      "registered model name (e.g. EquivariantMonaiUNet, EquivariantUNet, "
                                      "InvariantClassifier)", choices=ARCH_CHOICES, other="MODEL")
    group: str = option("octa", "symmetry group (octa, full_octa, ico, so3, ..., trivial), with field options in "
                                "parentheses (e.g. 'so3_irreps(irreps=4x0e+2x1o+1x2e, filter_lmax=3)'), or auto: the "
                                "largest group exact for the voxel spacing")
    channels: Tuple[int, ...] = option((2, 4), "hidden fields per level, e.g. 2,4")
    strides: Tuple[int, ...] = option((2,), "downsampling factors between levels, e.g. 2")
    kernel_size: int = option(3, "convolution kernel side")
    convs_per_level: int = option(2, "convolutions per level")
    hidden_features: Tuple[int, ...] = option((32,), "classification: widths of the head's hidden layers, e.g. 32")
    model: Dict[str, Any] = option(
        help="any constructor argument of the network, value as YAML (repeatable), e.g. --model-arg head=oriented "
             "--model-arg 'class_swaps=[[1, 2]]'; merged over the YAML model: section; unknown keys are errors",
        default_factory=dict, flag="--model-arg", metavar="KEY=VALUE", default_help="none")


@dataclass
class CanonicalizerConfig:
    """An exactly equivariant canonicalizer in front of the network (:class:`equivox.canonicalization.Canonicalized`).

    ``canonicalize``: a group name (e.g. ``"octa"``) to put the model behind a canonicalizer over that group's
    grid-exact elements (:func:`equivox.canonicalization.canonicalize`), trained jointly with it (task loss plus
    ``prior_weight`` x the prior toward the identity); ``None``: no canonicalizer. Use it with a plain model (``arch:
    baseline``, ``group: trivial``, MONAI's ``UNet``): it makes that model exact under the group's grid rotations;
    upright it does as well as the canonicalizer learns which way is up (docs/canonicalization.md: on the furniture
    shapes, 8-9 points below the plain model). ``canonical_sample`` is ``sample_in_training``.
    """

    canonicalize: Optional[str] = option(None, "put the model behind an exactly equivariant canonicalizer over this "
                                               "group's grid rotations (e.g. octa; none: off), trained with it")
    canonical_mode: str = option("hard", "canonicalizer mode: hard (one forward), frame or soft (averaged)",
                                 choices=("hard", "frame", "soft"))
    prior_weight: float = option(1.0, "weight of the canonicalizer's prior toward the identity")
    canonical_sample: bool = option(True, "train on poses drawn from the canonicalizer's softmax "
                                          "(--no-canonical-sample: its top pose)")
    canonical_margin: float = option(0.5, "frame mode: average the poses scoring within this of the top")
    canonical_temperature: float = option(1.0, "soft mode: softmax temperature of the pose weights")
    canonical_pose: bool = option(False, "principal-axes pose before the canonicalizer (cubic classification inputs: "
                                         "invariant to any rotation up to resampling)")
    canonicalizer_channels: Tuple[int, ...] = option((2, 4), "canonicalizer fields per level, e.g. 2,4")
    canonicalizer_input_size: int = option(16, "side of the pooled copy the canonicalizer sees")


@dataclass
class TrainerConfig:
    """Optimisation and the engine (PyTorch Lightning).

    ``until_plateau``: ``epochs`` becomes the minimum: train on until the validation curve has reached its plateau
    (:func:`~equivox.training.plateaued`), at most ``max_epochs`` (default ``3 * epochs``). ``strategy="auto"``
    becomes ``"ddp"`` when ``devices > 1`` or ``num_nodes > 1``; ``precision=None`` becomes ``"16-mixed"`` with CUDA,
    else ``"32-true"``. ``resume``: a checkpoint path (continues epochs and global step). ``plots``: write
    ``learning_curve.png`` into ``out_dir`` at the end of a run. ``extra``: engine details (only ``model_summary``;
    model options go in ``model``).

    ``compile``: the training steps call the model through ``torch.compile`` (backend
    :data:`equivox.training.modules.COMPILE_BACKEND`, ``"inductor"``; graph breaks fall back to eager, none occur in
    the equivox networks); the model, its state dict and checkpoints are the same as without it, and validation,
    evaluation and prediction run eagerly.

    ``overwrite``: start afresh in an ``out_dir`` that already holds a run: its ``checkpoints/*.ckpt`` and
    ``logs/version_*`` are replaced by the new run's (other files stay; a run that fails before its first checkpoint
    puts them back). ``False`` (default): ``equivox train`` / ``equivox canonicalize`` refuse such a folder with one
    line (``--overwrite``, ``--resume`` or another ``--out``); :func:`~equivox.training.fit` called from Python
    (scripts, notebooks, the benchmark harness re-running into its folders) replaces the earlier run with a one-line
    warning naming it. Either way ``checkpoints/last.ckpt`` is always the newest run's. Not with ``resume`` (a
    resumed run continues in its folder; giving both is an error).
    """

    epochs: int = option(5, "training epochs (with --until-plateau: the minimum)")
    until_plateau: bool = option(False, "after --epochs, train on until the validation curve has reached its plateau "
                                        "(its last fifth adds < 0.01 over its best before)")
    max_epochs: Optional[int] = option(None, "at most this many epochs with --until-plateau",
                                       none_means="3 x --epochs")
    max_steps: int = option(-1, "stop after this many optimiser steps (-1: no limit)")
    batch_size: int = option(16, "batch size")
    lr: float = option(3e-3, "AdamW learning rate")
    weight_decay: float = option(1e-4, "AdamW weight decay")
    seed: int = option(0, "random seed (weights, data order, augmentation)")
    num_workers: int = option(0, "DataLoader worker processes")
    devices: Any = option("auto", "devices per node (int or auto); >1 uses DDP", metavar="{N,auto}", kind="devices")
    num_nodes: int = option(1, "number of nodes (multi-node DDP, e.g. under torchrun/SLURM)")
    strategy: str = option("auto", "Lightning strategy (auto -> ddp when several devices)")
    accelerator: str = option("auto", "auto, cpu or gpu (any Lightning accelerator name)", metavar="{auto,cpu,gpu}")
    precision: Optional[str] = option(None, "Lightning precision", none_means="16-mixed with CUDA, else 32-true")
    out_dir: str = option("outputs/train", "output folder; one that already holds a run is refused unless "
                                           "--overwrite (or, for train, --resume)", flag="--out")
    resume: Optional[str] = option(None, "checkpoint to resume from (continues epochs and global step)")
    overwrite: bool = option(False, "start afresh when the output folder already holds a run: remove its "
                                    "checkpoints/*.ckpt and logs/version_* first (canonicalize: canonicalized.pt too; "
                                    "YAML overwrite: true)", default_help="off, such a folder is refused")
    progress: bool = option(True, "show progress bars")
    plots: bool = option(True, "write learning_curve.png (training loss and validation score per epoch) into the "
                               "output folder")
    deterministic: bool = option(False, "use deterministic algorithms only (Lightning's deterministic=True)")
    compile: bool = option(False, "compile the model for the training steps with torch.compile (inductor: fewer, "
                                  "fused kernels on a GPU after a one-off compilation of a minute or more; on the CPU "
                                  "it needs a C++ compiler); validation stays eager")
    extra: Dict[str, Any] = option(help="engine details, value as YAML (repeatable): model_summary=false hides "
                                        "Lightning's model summary", default_factory=dict, metavar="KEY=VALUE",
                                   default_help="none")
