"""Kernel bases of the irreps fields: e3nn spherical harmonics times a radial basis, contracted with Wigner 3j.

For one input field and one output field of an SO(3) / O(3) group (any escnn representation of it; the bridge
gives its e3nn irreps and basis) the basis holds, for every input irrep instance ``(l_i, p_i)``, output instance
``(l_o, p_o)``, filter degree ``l_f`` with ``|l_i - l_o| <= l_f <= min(l_i + l_o, filter_lmax)`` (and, with
reflections, ``p_o = p_i (-1)^l_f``) and radial function ``phi_r``, the kernel

    ``K[a, b, t] = sum_m wigner_3j(l_i, l_f, l_o)[b, m, a] * Y_{l_f}^m(t / |t|) * phi_r(|t|)``

on the kxkxk voxel offsets ``t`` (e3nn frame: :data:`equivox.irreps.bridge.FRAME`), normalised to unit norm. This
is e3nn's voxel convolution (``FullyConnectedTensorProduct`` of the input with the spherical harmonics, weights
from a radial basis), written as a fixed basis: a layer's filter is ``weights @ basis`` and it runs one dense
``conv3d`` (:class:`equivox.nn.EquivariantConv3d`). Because ``K(R t) = D_out(R) K(t) D_in(R)^T`` for every rotation
and the grid-exact elements permute the offsets, the convolution is exact for them.
"""
from __future__ import annotations

import math
from typing import Dict

import torch

from ..cache import cached_tensors

__all__ = ["irreps_pair_basis", "offsets"]


def offsets(kernel_size: int) -> torch.Tensor:
    """Voxel offsets ``(k**3, 3)`` (float64) of a kxkxk kernel in e3nn's frame, in ``Conv3d`` weight order."""
    from .bridge import FRAME

    c = torch.arange(kernel_size, dtype=torch.float64) - kernel_size // 2
    grid = torch.stack(torch.meshgrid(c, c, c, indexing="ij"), dim=-1).reshape(-1, 3)
    return grid @ torch.from_numpy(FRAME).T


def radial_embedding(r: torch.Tensor, kernel_size: int, fields) -> torch.Tensor:
    """``(k**3, n_radial)`` radial basis on the offsets' lengths (``e3nn.math.soft_one_hot_linspace``)."""
    from e3nn.math import soft_one_hot_linspace

    if kernel_size == 1:
        return torch.ones(r.shape[0], 1, dtype=r.dtype)
    n = fields.radial or 2 * (kernel_size // 2) + 1
    end = (kernel_size // 2) * math.sqrt(3.0)
    return soft_one_hot_linspace(r, 0.0, end, n, basis=fields.radial_basis, cutoff=False)


def _paths(in_irs, out_irs, lmax: int, reflections: bool):
    for o, (lo, po) in enumerate(out_irs):
        for i, (li, pi) in enumerate(in_irs):
            for lf in range(abs(li - lo), min(li + lo, lmax) + 1):
                if reflections and pi * (-1) ** lf != po:
                    continue
                yield o, i, lf


def _build(gspace, in_repr, out_repr, kernel_size: int, fields) -> Dict[str, torch.Tensor]:
    from e3nn import o3

    from .bridge import _repr_layout

    in_irs, b_in = _repr_layout(gspace, in_repr)
    out_irs, b_out = _repr_layout(gspace, out_repr)
    b_in, b_out = torch.from_numpy(b_in), torch.from_numpy(b_out)
    in_off = [0]
    for l, _ in in_irs:
        in_off.append(in_off[-1] + 2 * l + 1)
    out_off = [0]
    for l, _ in out_irs:
        out_off.append(out_off[-1] + 2 * l + 1)
    t = offsets(kernel_size)
    emb = radial_embedding(t.norm(dim=1), kernel_size, fields)  # (S, n_r)
    sh = {lf: o3.spherical_harmonics(lf, t, normalize=True, normalization="component")
          for lf in range(fields.filter_lmax + 1)}  # (S, 2 lf + 1); zero at the centre for lf > 0
    elements = []
    for o, i, lf in _paths(in_irs, out_irs, fields.filter_lmax, fields.reflections):
        lo, li = out_irs[o][0], in_irs[i][0]
        cg = o3.wigner_3j(li, lf, lo, dtype=torch.float64)  # (2li+1, 2lf+1, 2lo+1)
        ang = torch.einsum("bma,tm->abt", cg, sh[lf])  # (2lo+1, 2li+1, S)
        for r in range(emb.shape[1]):
            k = ang * emb[:, r]
            norm = k.norm()
            if norm < 1e-9:  # e.g. lf > 0 on a 1x1x1 kernel
                continue
            full = torch.zeros(out_off[-1], in_off[-1], t.shape[0], dtype=torch.float64)
            full[out_off[o]:out_off[o + 1], in_off[i]:in_off[i + 1]] = k / norm
            elements.append(full)
    if elements:
        basis = torch.stack(elements)
        basis = torch.einsum("ao,noit,ib->nabt", b_out, basis, b_in)  # e3nn basis -> the fields' channels
    else:
        basis = torch.zeros(0, out_repr.size, in_repr.size, t.shape[0], dtype=torch.float64)
    scalar = [out_off[o] for o, (l, p) in enumerate(out_irs) if l == 0 and p == 1]
    bias = b_out.T[:, scalar] if scalar else torch.zeros(out_repr.size, 0, dtype=torch.float64)
    return {"basis": basis.float().contiguous(), "bias": bias.float().contiguous()}


def irreps_pair_basis(group, in_repr, out_repr, kernel_size: int, fields) -> Dict[str, torch.Tensor]:
    """``{"basis": (n_basis, out_size, in_size, k**3), "bias": (out_size, n_bias)}`` between one input and one
    output field of ``group`` (see the module docstring), cached on disk (:func:`equivox.cache.cached_tensors`)."""
    import e3nn

    from ..groups import get_group

    g = get_group(group)
    key = (f"e3nn-basis|e3nn={e3nn.__version__}|group={g.name}|in={in_repr.name}|out={out_repr.name}|"
           f"k={kernel_size}|lmax={fields.filter_lmax}|radial={fields.radial},{fields.radial_basis}|"
           f"reflections={fields.reflections}|frame=dhw")
    return cached_tensors(key, lambda: _build(g.gspace, in_repr, out_repr, kernel_size, fields))
