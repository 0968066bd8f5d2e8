"""Equivariance checks: :func:`assert_equivariant` for equivox modules (reads their field types), and
:func:`equivariance_errors` for any model (equivox, MONAI, plain torch).

A grid-exact element ``g`` of a group acts on a field tensor ``(B, C, D, H, W)`` in two parts: it moves the voxels
(a signed permutation of the spatial axes, :func:`equivox.groups.move_voxels`) and mixes each
field's channels by the field's escnn representation ``rho(g)`` (identity on scalar fields, a permutation on
regular fields, an orthogonal matrix on Fourier fields). A module ``f`` from ``in_spec`` to ``out_spec`` fields is
equivariant when ``f(g . x) == g . f(x)`` for every ``g``; hidden-field outputs are checked too.

>>> import torch
>>> from equivox.nn import EquivariantConv3d, FieldSpec
>>> conv = EquivariantConv3d(FieldSpec.scalar("c4_axial", 1), FieldSpec.hidden("c4_axial", 2))
>>> errors = assert_equivariant(conv)          # every grid element of c4_axial, hidden output fields
>>> [e.element for e in errors]
['[d,h,w]', '[-d,-h,w]', '[-h,d,w]', '[h,-d,w]']
>>> max(e.relative for e in errors) < 1e-4
True
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import torch

from .groups import GridElement, cube_rotations, get_group, move_voxels

__all__ = ["ElementError", "TOLERANCES", "assert_equivariant", "class_permutation", "equivariance_errors",
           "field_action", "format_error_table", "ieee_float32", "output_class_permutation", "voxel_action"]

#: default relative tolerance (max |f(g x) - g f(x)| / max |g f(x)|) per dtype of the input; float64 is bounded by
#: the kernel bases, which are stored in float32 (a double module reaches ~1e-9)
TOLERANCES = {torch.float16: 1e-2, torch.bfloat16: 5e-2, torch.float32: 1e-4, torch.float64: 1e-7}


@dataclass(frozen=True)
class ElementError:
    """Error of one group element on one output: ``relative`` = max abs difference / max abs reference output."""

    element: str
    max_abs: float
    relative: float
    output: int = 0


def voxel_action(element: GridElement, x: torch.Tensor) -> torch.Tensor:
    """Move the voxels of ``x`` ``(..., D, H, W)`` by ``element``: output axis ``i`` is input axis ``p(i)``,
    reversed where the matrix entry is -1 (the action on scalar fields; :func:`equivox.groups.move_voxels`)."""
    axes, flips = element.axes_and_flips
    return move_voxels(x, axes, flips)


def field_action(spec, element: GridElement) -> torch.Tensor:
    """``rho(g)``: the ``(C, C)`` matrix by which ``element`` mixes the channels of ``spec``'s fields (block
    diagonal, one escnn representation per field). ``element`` must be one of ``spec``'s group's
    :attr:`~equivox.groups.Group.grid_elements` (it carries the escnn element)."""
    if element.escnn_element is None:
        raise ValueError(f"grid element {element.name} has no escnn element: take it from "
                         f"get_group({spec.group!r}).grid_elements")
    blocks = [torch.as_tensor(rep(element.escnn_element), dtype=torch.float64) for rep in spec.representations()]
    return torch.block_diag(*blocks)


def _act(spec, element: GridElement, t: torch.Tensor) -> torch.Tensor:
    """``g . t`` for a tensor of ``spec`` fields: ``(B, C, D, H, W)`` (voxels and channels) or ``(B, C)``."""
    if spec is not None:
        rho = field_action(spec, element).to(t)
        if not torch.equal(rho, torch.eye(rho.shape[0], dtype=rho.dtype, device=rho.device)):
            t = torch.einsum("ij,bj...->bi...", rho, t)
    return voxel_action(element, t) if t.dim() == 5 else t


def _of_group(elements, spec) -> bool:
    """Whether every element carries an escnn element of ``spec``'s group (so its representations apply)."""
    group = spec.group_obj.gspace.fibergroup
    return all(g.escnn_element is not None and g.escnn_element.group == group for g in elements)


def _scalar(spec) -> bool:
    return all(name == spec.group_obj.gspace.trivial_repr.name for name in spec.reprs)


def _multiple(module) -> int:
    m = getattr(module, "size_multiple", 1)
    m = [int(v) for v in m] if isinstance(m, (tuple, list)) else [int(m)]
    return math.lcm(*m)


def _out_specs(module, n: int) -> list:
    specs = getattr(module, "out_specs", None)
    if specs is None or len(specs) != n:
        specs = [getattr(module, "out_spec", None)] * n
    return list(specs)


def class_permutation(class_swaps: Sequence[Sequence[int]], num_classes: int) -> Tuple[int, ...]:
    """The class permutation ``perm`` (``perm[c]`` = class that ``c`` becomes under a reflection) declared by
    ``class_swaps``, a list of disjoint pairs, e.g. ``[(1, 2)]`` for left lung (1) and right lung (2).

    Raises:
        ValueError: a pair that is not two different classes in ``[0, num_classes)``, or a class in two pairs.
    """
    perm = list(range(int(num_classes)))
    seen = set()
    for pair in class_swaps:
        pair = tuple(int(c) for c in pair)
        if len(pair) != 2 or pair[0] == pair[1] or not all(0 <= c < num_classes for c in pair):
            raise ValueError(f"class_swaps entries must be pairs of two different classes in [0, {num_classes}), "
                             f"got {pair}")
        if seen & set(pair):
            raise ValueError(f"class_swaps pairs must be disjoint; class {sorted(seen & set(pair))} appears twice")
        seen |= set(pair)
        perm[pair[0]], perm[pair[1]] = pair[1], pair[0]
    if not seen:
        raise ValueError("class_swaps is empty: declare at least one pair of classes that swap under reflections")
    return tuple(perm)


def output_class_permutation(module) -> Optional[Tuple[int, ...]]:
    """The class permutation improper elements apply to ``module``'s outputs (left/right classes), or ``None``.

    The one reader of it (equivariance checks, evaluation, wrappers; re-exported as
    :func:`equivox.nn.module.output_class_permutation`): ``module.out_spec.class_permutation`` (a field of
    :class:`~equivox.nn.FieldSpec`) when set; else, for old code and pickled models, a ``class_permutation``
    attribute; else, for a model without an output spec (a plain model annotated by hand), its ``class_swaps``
    pairs over its ``out_channels`` classes (:func:`class_permutation`).

    Raises:
        ValueError: ``class_swaps`` on a plain model without ``out_channels`` (the number of classes is unknown), or
            invalid pairs.
    """
    spec = getattr(module, "out_spec", None)
    perm = getattr(spec, "class_permutation", None)
    if perm is None:
        perm = getattr(module, "class_permutation", None)
    if perm is None and spec is None:
        swaps = getattr(module, "class_swaps", None)
        if swaps:
            k = getattr(module, "out_channels", None)
            if k is None:
                raise ValueError("class_swaps need the number of classes: give the model an out_channels attribute")
            perm = class_permutation(swaps, int(k))
    return None if perm is None else tuple(int(c) for c in perm)


def _as_list(y) -> List[torch.Tensor]:
    return list(y) if isinstance(y, (list, tuple)) else [y]


@contextlib.contextmanager
def ieee_float32():
    """Full float32 convolutions and matrix products inside the block, restored afterwards.

    cuDNN runs float32 convolutions in TF32 by default on Ampere and newer GPUs (a 10-bit mantissa): a model that is
    exactly equivariant then shows ~5e-4 relative error (measured on an H200), above the float32 tolerance, which
    would be rounding, not the model. Autocast (bf16 / fp16) is not affected.
    """
    cudnn_conv = getattr(torch.backends.cudnn, "conv", None)
    if cudnn_conv is not None and hasattr(cudnn_conv, "fp32_precision"):  # torch >= 2.9
        flags = [(cudnn_conv, "fp32_precision"), (torch.backends.cuda.matmul, "fp32_precision")]
        value = "ieee"
    else:
        flags = [(torch.backends.cudnn, "allow_tf32"), (torch.backends.cuda.matmul, "allow_tf32")]
        value = False
    saved = [getattr(obj, name) for obj, name in flags]
    try:
        for obj, name in flags:
            setattr(obj, name, value)
        yield
    finally:
        for (obj, name), old in zip(flags, saved):
            setattr(obj, name, old)


@torch.no_grad()
def _errors(model, x, elements, in_spec, out_specs, perm) -> List[ElementError]:
    from monai.networks import eval_mode

    # eval mode and no_grad for the check (the training flag is restored afterwards), float32 without TF32
    with eval_mode(model), ieee_float32():
        refs = _as_list(model(x))
        specs = out_specs(len(refs))
        scales = [r.abs().max().clamp_min(1e-12) for r in refs]
        out = []
        for g in elements:
            ys = _as_list(model(_act(in_spec, g, x)))
            for k, (y, ref, spec, scale) in enumerate(zip(ys, refs, specs, scales)):
                target = _act(spec, g, ref)
                if perm is not None and g.determinant < 0:
                    target = target[:, list(perm)]
                diff = (y - target).abs().max() if y.shape == target.shape else torch.tensor(float("inf"))
                out.append(ElementError(g.name, float(diff), float(diff / scale), k))
        return out


def assert_equivariant(module: torch.nn.Module, x: Optional[torch.Tensor] = None,
                       elements: Union[str, Sequence[GridElement], None] = None, rtol: Optional[float] = None,
                       size: Optional[int] = None) -> List[ElementError]:
    """Check ``module(g . x) == g . module(x)`` for grid-exact elements of its group; raise if not.

    Reads the module's ``in_spec`` and ``out_spec`` (or ``out_specs`` for a list of outputs): inputs and outputs
    transform by their fields' representations and by the voxel permutation (hidden fields included); invariant
    outputs ``(B, K)`` by their fields' representations only. The output spec's ``class_permutation``
    (label-permuting heads; :func:`output_class_permutation`) permutes the output classes under
    improper elements.

    Args:
        module: an equivox module (an :class:`~equivox.nn.EquivariantModule` or anything with ``in_spec`` /
            ``out_spec``), or any model on scalar fields (an ``nn.Sequential`` of blocks ending in logits: then
            pass ``x`` and ``elements``); put in eval mode for the check (restored afterwards).
        x: input ``(B, in_spec.size, S, S, S)``; default: random, cubic, ``S`` a multiple of ``module.size_multiple``
            (at least ``size``, default 8), on the module's device and dtype.
        elements: grid elements of the module's group, or a group name (default: all of
            ``get_group(in_spec.group).grid_elements``).
        rtol: relative tolerance; default by the input's dtype (:data:`TOLERANCES`).

    Returns:
        the :class:`ElementError` of every element and output.

    Raises:
        AssertionError: naming the worst element, the output and how far it is (absolute and relative).
        ValueError: the module has no ``in_spec``.
    """
    in_spec = getattr(module, "in_spec", None)
    if isinstance(elements, str):
        elements = get_group(elements).grid_elements
    if in_spec is None and elements is None:
        raise ValueError(f"{type(module).__name__} has no in_spec: pass elements= (a group name or grid elements) "
                         "to check it as a model on scalar fields, or give it field types (an equivox module)")
    group = get_group(in_spec.group) if in_spec is not None else None
    if elements is None:
        elements = group.grid_elements
    if x is None:
        if in_spec is None:
            raise ValueError(f"{type(module).__name__} has no in_spec: pass the input x")
        ref = next((t for t in list(module.parameters()) + list(module.buffers()) if t.is_floating_point()), None)
        dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
        m = _multiple(module)
        s = m * math.ceil((size or 8) / m)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(2, in_spec.size, s, s, s, generator=gen, dtype=dtype)
        if ref is not None:
            x = x.to(ref.device)
    tol = rtol if rtol is not None else TOLERANCES.get(x.dtype, 1e-4)
    if in_spec is not None and not _of_group(elements, in_spec):
        specs = [in_spec] + [sp for sp in _out_specs(module, 1) + list(getattr(module, "out_specs", None) or [])
                             if sp is not None]
        if not all(_scalar(sp) for sp in specs):
            raise ValueError("elements outside the module's group act on its hidden fields by no representation: "
                             f"take them from get_group({in_spec.group!r}).grid_elements")
        in_spec, group = None, None  # scalar fields in and out: elements of another group move the voxels only
    out_specs = (lambda n: _out_specs(module, n)) if in_spec is not None else (lambda n: [None] * n)
    errors = _errors(module, x, elements, in_spec, out_specs, output_class_permutation(module))
    worst = max(errors, key=lambda e: e.relative)
    if not worst.relative <= tol:
        kind = "improper element" if next(g for g in elements if g.name == worst.element).determinant < 0 else \
            "rotation"
        spec = out_specs(worst.output + 1)[worst.output]
        what = f"{len(spec)} fields of {spec.group!r}, {spec.size} channels" if spec is not None else "scalar fields"
        where = f" of group {group.name!r}" if group is not None else ""
        bad = sorted({e.element for e in errors if not e.relative <= tol})
        bad = bad[:6] + [f"... ({len(bad)} in all)"] if len(bad) > 6 else bad
        raise AssertionError(
            f"{type(module).__name__} is not equivariant under {kind} {worst.element}{where}: "
            f"output {worst.output} ({what}) differs from the transformed output by max abs {worst.max_abs:.3e}, "
            f"relative {worst.relative:.3e} > tolerance {tol:.1e} ({x.dtype}); failing elements: {', '.join(bad)}")
    return errors


@torch.no_grad()
def equivariance_errors(
    model: torch.nn.Module,
    x: torch.Tensor,
    elements: Union[str, Sequence[GridElement], None] = None,
    class_permutation: Optional[Sequence[int]] = None,
) -> List[ElementError]:
    """Per-element equivariance (or invariance) errors of any ``model`` on input ``x``.

    Args:
        model: maps ``(B, C, D, H, W)`` to ``(B, K)`` (checked for invariance) or ``(B, K, D, H, W)``. Inputs and
            outputs are scalar fields unless the model declares ``in_spec`` / ``out_spec`` (equivox modules),
            whose representations then act on the channels too. Put in eval mode for the check and restored.
        x: input ``(B, C, D, H, W)``; use a cube (``D == H == W``) for elements that swap axes.
        elements: a group name (its grid-exact elements), a list of :class:`GridElement`, or ``None`` for the
            model's own group (``model.group``) or, failing that, the 24 cube rotations.
        class_permutation: for label-permuting models (``EquivariantUNet(class_swaps=...)``), the class
            permutation improper elements apply to the outputs; default: the model's own
            (:func:`output_class_permutation`: its output spec's ``class_permutation``).

    Returns:
        one :class:`ElementError` per element (and output, for models returning a list), in order (identity first
        for registry groups). The model runs in full float32 (no TF32: :func:`ieee_float32`).
    """
    if elements is None:
        group = getattr(model, "group", None)
        elements = get_group(group).grid_elements if group else cube_rotations()
    elif isinstance(elements, str):
        elements = get_group(elements).grid_elements
    perm = class_permutation if class_permutation is not None else output_class_permutation(model)
    in_spec = getattr(model, "in_spec", None)
    if in_spec is not None and not _of_group(elements, in_spec):
        in_spec = None  # elements of another group (or cube_rotations()) act on the voxels only, as on scalar fields
    if in_spec is None:
        return _errors(model, x, elements, None, lambda n: [None] * n, perm)
    return _errors(model, x, elements, in_spec, lambda n: _out_specs(model, n), perm)


def format_error_table(errors: Iterable[ElementError], title: Optional[str] = None) -> str:
    """Render errors as a text table with a summary line (max and mean relative error)."""
    errors = list(errors)
    lines = [title] if title else []
    lines.append(f"{'element':<14}{'max abs':>12}{'relative':>12}")
    lines += [f"{e.element:<14}{e.max_abs:>12.3e}{e.relative:>12.3e}" for e in errors]
    if errors:
        rel = [e.relative for e in errors]
        lines.append(f"{'max':<14}{'':>12}{max(rel):>12.3e}")
        lines.append(f"{'mean':<14}{'':>12}{sum(rel) / len(rel):>12.3e}")
    return "\n".join(lines)
