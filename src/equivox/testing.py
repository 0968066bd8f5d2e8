"""Equivariance checker usable on any model (equivox, MONAI, plain torch).

For each grid-exact element ``g`` it compares ``model(g.apply(x))`` with ``g.apply(model(x))`` (per-voxel outputs
``(B, K, D, H, W)``) or with ``model(x)`` (invariant outputs ``(B, K)``), and reports the relative error
``max|difference| / max|model(x)|``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Union

import torch
from monai.networks import eval_mode

from .groups import GridElement, cube_rotations, get_group

__all__ = ["ElementError", "equivariance_errors", "format_error_table"]


@dataclass(frozen=True)
class ElementError:
    """Error of one group element: ``relative`` = max abs difference / max abs reference output."""

    element: str
    max_abs: float
    relative: float


@torch.no_grad()
def equivariance_errors(
    model: torch.nn.Module,
    x: torch.Tensor,
    elements: Union[str, Sequence[GridElement], None] = None,
    class_permutation: Optional[Sequence[int]] = None,
) -> List[ElementError]:
    """Per-element equivariance (or invariance) errors of ``model`` on input ``x``.

    Args:
        model: maps ``(B, C, D, H, W)`` to ``(B, K)`` (checked for invariance) or ``(B, K, D, H, W)`` (checked for
            equivariance of scalar fields). It is put in eval mode for the check and restored afterwards.
        x: input ``(B, C, D, H, W)``; use a cube (``D == H == W``) for elements that swap axes.
        elements: a group name (its grid-exact elements), a list of :class:`GridElement`, or ``None`` for the
            model's own group (``model.group``) or, failing that, the 24 cube rotations.
        class_permutation: for label-permuting models (``EquivariantUNet(class_swaps=...)``), the class
            permutation improper elements apply to the outputs; default ``model.class_permutation`` if set.

    Returns:
        one :class:`ElementError` per element, in order (identity first for registry groups).
    """
    if elements is None:
        group = getattr(model, "group", None)
        elements = get_group(group).grid_elements if group else cube_rotations()
    elif isinstance(elements, str):
        elements = get_group(elements).grid_elements
    perm = class_permutation if class_permutation is not None else getattr(model, "class_permutation", None)
    with eval_mode(model):  # eval mode and no_grad for the check; the training flag is restored afterwards
        ref = model(x)
        scale = ref.abs().max().clamp_min(1e-12)
        out = []
        for g in elements:
            y = model(g.apply(x))
            target = ref if ref.dim() == 2 else g.apply(ref)
            if perm is not None and g.determinant < 0:
                target = target[:, list(perm)]
            diff = (y - target).abs().max()
            out.append(ElementError(g.name, float(diff), float(diff / scale)))
        return out


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
