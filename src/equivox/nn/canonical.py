"""Canonical pose from the inertia tensor: turns cube-rotation invariance into rotation invariance.

The principal axes of a volume's mass (intensity or occupancy) are defined up to their order and signs, i.e. up to
the 48 signed permutations of the axes; keeping a proper frame leaves the **24 cube rotations**. A volume resampled
into its principal frame is therefore the same for every rotation of the input *up to a cube rotation*, and an
``octa``-invariant model on top of it (``InvariantClassifier(group="octa")``) gives the same output for *any*
rotation of the input: exact invariance to SO(3), up to resampling and up to objects whose inertia has (nearly)
equal principal moments (their principal axes are not defined; they fall back to whatever the eigen-solver picks).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CanonicalPose"]


class CanonicalPose(nn.Module):
    """Resample each volume into its principal (inertia) frame, centred on its centre of mass.

    Shapes: ``(B, C, S, S, S) -> (B, C, S, S, S)`` (cubic volumes). The frame is computed from the sum over
    channels of the non-negative part of the input (occupancy / intensity mass). Trilinear resampling with zero
    padding (``align_corners=True``: sample points on voxel centres); a pose that moves mass outside the box cuts it
    off, so pad the volume first when objects fill it (e.g. ``placement="sphere"`` in :func:`equivox.benchmark.run_classification`).

    Group assumption: output is invariant to any rotation of the input up to one of the 24 cube rotations (see the
    module docstring); put a model invariant to ``octa`` after it. No parameters; not part of ``export()``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or len(set(x.shape[2:])) != 1:
            raise ValueError(f"CanonicalPose expects cubic volumes (B, C, S, S, S), got shape {tuple(x.shape)}")
        b, s = x.shape[0], x.shape[-1]
        mass = x.detach().clamp_min(0).sum(1).double()  # (B, S, S, S)
        idx = torch.arange(s, dtype=torch.float64, device=x.device)
        coords = torch.stack(torch.meshgrid(idx, idx, idx, indexing="ij"), -1).reshape(-1, 3)  # (S^3, 3) (d, h, w)
        w = mass.reshape(b, -1)
        total = w.sum(1, keepdim=True).clamp_min(1e-12)
        centre = (w @ coords) / total  # (B, 3)
        rel = coords[None] - centre[:, None]  # (B, S^3, 3)
        cov = torch.einsum("bn,bni,bnj->bij", w, rel, rel) / total[..., None]
        _, vecs = torch.linalg.eigh(cov)  # columns: principal axes, ascending moments
        vecs = vecs * torch.where(torch.linalg.det(vecs) < 0, -1.0, 1.0)[:, None, None].to(vecs)  # proper frame
        half = (s - 1) / 2.0
        shift = (centre - half) / half  # centre of mass in normalised coordinates, (d, h, w)
        # output voxel q (normalised, canonical axes) samples input point centre + V q, in grid_sample's (w, h, d)
        a = vecs.flip(-1).flip(-2)
        theta = torch.cat([a, shift.flip(-1)[..., None]], dim=2).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=True)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
