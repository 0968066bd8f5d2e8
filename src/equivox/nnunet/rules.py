"""Rules that turn nnU-Net v2 plan entries into equivox settings (no nnunetv2 import needed).

* **Group from the plan** (:func:`choose_group`): a grid element of a group permutes (and reverses) the tensor axes
  ``(D, H, W)``. The network is exactly equivariant for it only if every kernel size, stride (and the training
  patch) is the same on axes the element swaps. The plan's axes play the role of voxel spacings: axes with the same
  kernels and strides at every stage are interchangeable, and the group registry says which groups are exact for
  that pattern (:func:`equivox.groups.exact_groups_for_spacing`, :func:`equivox.groups.auto_group`). Isotropic
  plans (kernels ``(3, 3, 3)``, strides ``(2, 2, 2)``) allow every cube group (``octa`` default, ``full_octa``,
  ...); anisotropic plans (kernel ``(1, 3, 3)``, stride ``(1, 2, 2)``: nnU-Net's choice for thick-slice data,
  thick axis first) get the axial group about the odd axis (``d4_axial_d``); a plan with three different axes has
  no rotation and raises ``ValueError`` naming the stage, kernel and stride.
* **Fields from features** (:func:`fields_for_features`): ``keep="width"`` (default) keeps nnU-Net's tensor width,
  ``fields = ceil(features / field_size)``; ``keep="params"`` keeps its parameter count,
  ``fields = round(features / sqrt(field_size))`` (a regular-field convolution between ``n`` fields of size ``|G|``
  has ``n^2 |G| k^3`` free weights; a plain one with ``C`` channels ``C^2 k^3``).
* **Layers** (:func:`norm_kind`, :func:`activation_spec`, :func:`dropout_p`): nnU-Net's ``norm_op`` /
  ``nonlin`` / ``dropout_op`` (classes or their dotted names) -> the field-wise equivalents of
  :class:`equivox.nn.FieldNormAct`.

>>> plan_spacing([[1, 3, 3], [1, 3, 3]], [[1, 1, 1], [1, 2, 2]])
(1.0, 2.0, 2.0)
>>> choose_group([[1, 3, 3], [1, 3, 3]], [[1, 1, 1], [1, 2, 2]])
'd4_axial_d'
>>> choose_group([[3, 3, 3], [3, 3, 3]], [[1, 1, 1], [2, 2, 2]])
'octa'
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

__all__ = ["as_triples", "axis_permutations", "check_plan_for_group", "choose_group", "plan_spacing",
           "fields_for_features", "norm_kind", "activation_spec", "dropout_p", "check_patch_size", "symmetric_patch",
           "KEEP_RULES"]

KEEP_RULES = ("width", "params")


def _name(op) -> str:
    if op is None:
        return "None"
    if isinstance(op, str):
        return op.rsplit(".", 1)[-1]
    return getattr(op, "__name__", type(op).__name__)


def as_triples(values, n: int, what: str) -> List[Tuple[int, int, int]]:
    """nnU-Net's per-stage ``kernel_sizes`` / ``strides`` (an int, a list of ints, or a list of per-axis lists) as
    ``n`` ``(d, h, w)`` int triples; ``ValueError`` for 2D entries or a wrong count."""
    if isinstance(values, int):
        values = [values] * n
    out = []
    for i, v in enumerate(values):
        t = (int(v),) * 3 if isinstance(v, int) else tuple(int(a) for a in v)
        if len(t) != 3:
            raise ValueError(f"{what}[{i}] = {list(t)} is not 3D: equivox networks are 3D (use a 3d_* nnU-Net "
                             f"configuration, not 2d)")
        if min(t) < 1:
            raise ValueError(f"{what}[{i}] = {list(t)} must be positive")
        out.append(t)
    if len(out) != n:
        raise ValueError(f"{what} has {len(out)} entries, expected n_stages={n}")
    return out


def axis_permutations(group: str) -> List[Tuple[int, int, int]]:
    """The axis permutation of every grid element of ``group``: output axis ``i`` comes from input axis ``p[i]``."""
    from ..groups import get_group

    perms = set()
    for el in get_group(group).grid_elements:
        perms.add(tuple(next(j for j in range(3) if el.matrix[i][j]) for i in range(3)))
    return sorted(perms)


def _swapped(t: Sequence[int], perms) -> Optional[Tuple[int, int, int]]:
    for p in perms:
        if any(int(t[i]) != int(t[p[i]]) for i in range(3)):
            return p
    return None


def check_plan_for_group(group: str, kernels, strides) -> None:
    """Raise ``ValueError`` unless every stage's kernel and stride is unchanged by the axis permutations of
    ``group``'s grid elements (the condition for exact equivariance). The message names the first stage that
    breaks it, its kernel and stride, and the groups that would fit."""
    perms = axis_permutations(group)
    for i, (k, s) in enumerate(zip(kernels, strides)):
        for what, t in (("kernel", k), ("stride", s)):
            p = _swapped(t, perms)
            if p is not None:
                raise ValueError(
                    f"stage {i} has kernel {list(k)} and stride {list(s)}: group {group!r} swaps tensor axes "
                    f"{p} (a 90-degree rotation), which maps this {what} {list(t)} to "
                    f"{[t[j] for j in p]}, so the network could not be exactly equivariant. "
                    + _advice(kernels, strides))


def plan_spacing(kernels, strides) -> Tuple[float, float, float]:
    """The plan's axes as a pseudo voxel spacing ``(D, H, W)``: axes with the same kernel and stride at every stage
    get the same value (1.0, 2.0, 3.0 in order of first appearance), so the registry's spacing rules
    (:func:`equivox.groups.exact_groups_for_spacing`) say which groups may swap them."""
    signatures = [tuple((int(k[a]), int(s[a])) for k, s in zip(kernels, strides)) for a in range(3)]
    values: dict = {}
    return tuple(float(values.setdefault(sig, len(values) + 1)) for sig in signatures)


def _advice(kernels, strides) -> str:
    from ..groups import auto_group, grid_elements_of_name

    name, why = auto_group(plan_spacing(kernels, strides))
    if len(grid_elements_of_name(name)) == 1:  # the registry's choice has no rotation
        return ("No rotation keeps every kernel and stride of this plan (three different axes); plan an isotropic "
                "or axial configuration instead (e.g. nnUNetv2_plan_experiment -overwrite_target_spacing).")
    return f"Use group {name!r} (the plan's axes as spacings: {why})."


def choose_group(kernels, strides, group: Optional[str] = None, cube_group: str = "octa") -> str:
    """The group an nnU-Net plan is built for.

    ``group`` given: checked with :func:`check_plan_for_group` and returned. ``group=None``: the registry's choice
    for the plan's axes (:func:`plan_spacing`): ``cube_group`` when it is exact for them (isotropic plans), else
    :func:`equivox.groups.auto_group`'s largest exact group (the axial group about the odd axis). ``ValueError``
    naming the stage, kernel and stride when no rotation fits.
    """
    from ..groups import auto_group, exact_groups_for_spacing, get_group, grid_elements_of_name, parse_group_name

    if group is not None:
        name = get_group(group).name
        check_plan_for_group(name, kernels, strides)
        return name
    spacing = plan_spacing(kernels, strides)
    cube = get_group(cube_group).name
    if parse_group_name(cube)[0] in exact_groups_for_spacing(spacing):  # field options keep the grid elements
        check_plan_for_group(cube, kernels, strides)
        return cube
    name, _ = auto_group(spacing)
    if len(grid_elements_of_name(name)) == 1:  # no rotation fits the plan
        check_plan_for_group(cube, kernels, strides)  # raises, naming stage, kernel and stride
    check_plan_for_group(name, kernels, strides)
    return name


def fields_for_features(features: Sequence[int], field_size: int, keep: str = "width") -> Tuple[int, ...]:
    """Hidden fields per stage for nnU-Net's ``features_per_stage``.

    ``keep="width"``: ``ceil(f / field_size)`` (same tensor width, so nnU-Net's memory-based patch/batch plan
    still fits; about ``field_size`` x fewer weights). ``keep="params"``: ``max(1, round(f / sqrt(field_size)))``
    (about the same number of weights, ``sqrt(field_size)`` x wider tensors: more memory and compute than planned).
    """
    if keep not in KEEP_RULES:
        raise ValueError(f"keep must be one of {KEEP_RULES}, got {keep!r}")
    out = []
    for f in features:
        f = int(f)
        if f < 1:
            raise ValueError(f"features_per_stage must be positive, got {list(features)}")
        out.append(math.ceil(f / field_size) if keep == "width" else max(1, round(f / math.sqrt(field_size))))
    return tuple(out)


def norm_kind(norm_op) -> Optional[str]:
    """nnU-Net ``norm_op`` -> ``"instance"`` / ``"batch"`` / ``None`` (statistics shared by a field's channels)."""
    name = _name(norm_op)
    if name == "None":
        return None
    if "InstanceNorm" in name:
        return "instance"
    if "BatchNorm" in name:
        return "batch"
    raise ValueError(f"norm_op {norm_op!r} has no equivariant field-wise version in equivox; use InstanceNorm3d "
                     f"(nnU-Net's default), BatchNorm3d or None")


def activation_spec(nonlin, nonlin_kwargs) -> Optional[tuple]:
    """nnU-Net ``nonlin`` + kwargs -> a MONAI activation spec for :class:`~equivox.nn.FieldNormAct`.

    Only pointwise activations are exact on fields (no softmax / GEGLU; PReLU with one shared slope)."""
    name = _name(nonlin)
    if name == "None":
        return None
    from monai.networks.layers.factories import Act

    kwargs = dict(nonlin_kwargs or {})
    for key in Act.names:
        if key in ("SOFTMAX", "LOGSOFTMAX", "GEGLU"):
            continue
        if _name(Act[key]) == name:
            if key == "PRELU" and int(kwargs.get("num_parameters", 1)) != 1:
                raise ValueError("nonlin PReLU with num_parameters > 1 scales channels differently and breaks "
                                 "equivariance; use num_parameters=1")
            return (key.lower(), kwargs)
    raise ValueError(f"nonlin {nonlin!r} is not a pointwise activation equivox knows (use LeakyReLU, ReLU, ELU, "
                     f"GELU, PReLU, ...): a non-pointwise function across channels breaks equivariance")


def dropout_p(dropout_op, dropout_op_kwargs) -> float:
    """nnU-Net ``dropout_op`` -> whole-field dropout probability (``0.0`` for ``None``)."""
    if _name(dropout_op) == "None":
        return 0.0
    if "Dropout" not in _name(dropout_op):
        raise ValueError(f"dropout_op {dropout_op!r} is not a dropout layer")
    return float((dropout_op_kwargs or {}).get("p", 0.5))


def check_patch_size(patch_size: Sequence[int], strides) -> None:
    """nnU-Net's size rule made strict: every patch axis must be a multiple of the product of the strides on that
    axis, so that the average-pooling windows tile the patch (exact equivariance). ``ValueError`` names the patch,
    the strides and the axis."""
    strides = [tuple(s) for s in strides]
    if len(patch_size) != 3:
        raise ValueError(f"patch_size {list(patch_size)} is not 3D: equivox networks are 3D")
    prod = [math.prod(s[a] for s in strides) for a in range(3)]
    bad = [a for a in range(3) if int(patch_size[a]) % prod[a]]
    if bad:
        raise ValueError(f"patch_size {list(patch_size)} is not a multiple of the stride product {prod} (strides "
                         f"{[list(s) for s in strides]}) on axis {bad}: average pooling would not tile the patch "
                         f"and the network would not be exactly equivariant; choose a patch size divisible by {prod}")


def symmetric_patch(patch_size: Sequence[int], group: str) -> List[int]:
    """The largest patch inside ``patch_size`` that the axis permutations of ``group`` map onto itself (each axis
    cut to the smallest size among the axes it is swapped with; a cube group gives a cube). With it, training
    patches and nnU-Net's sliding-window tiles rotate onto themselves, so whole-volume predictions are exactly
    equivariant, not only the network. Sizes that satisfied :func:`check_patch_size` still do when the swapped
    axes have equal stride products (always, once the plan passed :func:`check_plan_for_group`)."""
    out = [int(v) for v in patch_size]
    perms = axis_permutations(group)
    changed = True
    while changed:
        changed = False
        for p in perms:
            for i in range(3):
                m = min(out[i], out[p[i]])
                if out[i] != m or out[p[i]] != m:
                    out[i] = out[p[i]] = m
                    changed = True
    return out
