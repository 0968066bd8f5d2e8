"""Spacing rules: which groups stay exact on voxels of a given spacing ``(D, H, W)`` mm, the largest one
(:func:`auto_group`), and the warning for a group used on voxels it is not exact for (:func:`check_spacing`).

Isotropic groups (``GroupSpec.exact_spacing == "isotropic"``) need three equal spacings, axial groups equal spacings
off their slice axis, ``"any"`` (``trivial``) none.
"""
from __future__ import annotations

from typing import List, Tuple

from . import registry
from .group import Group
from .names import group_spec
from .registry import GroupSpec

__all__ = ["auto_group", "check_spacing", "exact_groups_for_spacing"]


def exact_groups_for_spacing(spacing, rtol: float = 1e-3) -> List[str]:
    """Registered groups whose grid-exact elements stay exact on voxels of ``spacing`` (mm, per tensor axis
    ``(D, H, W)``): isotropic groups need three equal spacings, axial groups equal spacings off their slice axis."""
    sp = [float(v) for v in spacing]
    if len(sp) != 3 or min(sp) <= 0:
        raise ValueError(f"spacing must be 3 positive numbers (mm along D, H, W), got {spacing}")
    return [name for name, spec in registry.GROUPS.items() if _exact_for_spacing(spec, sp, rtol)]


def _exact_for_spacing(spec: GroupSpec, sp: List[float], rtol: float) -> bool:
    def same(a, b):
        return abs(a - b) <= rtol * max(a, b)

    if spec.exact_spacing == "any":
        return True
    if spec.exact_spacing == "isotropic":
        return same(sp[0], sp[1]) and same(sp[1], sp[2])
    a, b = [sp[i] for i in range(3) if i != spec.slice_axis]
    return same(a, b)


#: preference of :func:`auto_group` (largest exact finite group first)
_AUTO_ORDER = ("octa", "d4_axial", "d4_axial_d", "d4_axial_h", "trivial")


def auto_group(spacing, rtol: float = 1e-3) -> Tuple[str, str]:
    """The largest rotation group exact for voxels of ``spacing`` ``(D, H, W)`` mm, and why.

    Isotropic -> ``"octa"`` (24 rotations); two equal spacings -> ``"d4_axial"`` about the odd axis (suffix for D
    or H); all different -> ``"trivial"``. Returns ``(name, reason)``.
    """
    exact = exact_groups_for_spacing(spacing, rtol)
    name = next(n for n in _AUTO_ORDER if n in exact)
    sp = tuple(float(v) for v in spacing)
    if name == "octa":
        why = f"spacing {sp} is isotropic: all 24 cube rotations map the voxel grid onto itself"
    elif name == "trivial":
        why = f"spacing {sp} has three different values: no rotation maps the physical grid onto itself"
    else:
        axis = "DHW"[registry.GROUPS[name].slice_axis]
        why = (f"spacing {sp} is anisotropic along {axis}: only the 8 rotations keeping the {axis} axis map the "
               f"physical grid onto itself")
    return name, why


def check_spacing(group, spacing, rtol: float = 1e-3) -> None:
    """Warn (``UserWarning``) when ``group`` is not exact for voxels of ``spacing`` ``(D, H, W)`` mm, naming the
    spacing and the groups that would be exact. ``spacing=None`` (unknown) is not checked."""
    import warnings

    if spacing is None:
        return
    name = group.name if isinstance(group, Group) else str(group)
    exact = exact_groups_for_spacing(spacing, rtol)
    if not _exact_for_spacing(group_spec(name), [float(v) for v in spacing], rtol):
        warnings.warn(f"group {name!r} is not exact for voxel spacing {tuple(float(v) for v in spacing)} mm: its "
                      f"rotations do not map the physical grid onto itself. Exact groups for this spacing: "
                      f"{', '.join(exact)} (or resample to isotropic voxels).", UserWarning, stacklevel=2)
