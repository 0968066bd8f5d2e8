"""Invariant maps: hidden fields -> rotation-invariant scalar channels.

* ``"group"`` pooling: maximum over a field's channels (regular fields: the group elements) or over its grid
  samples (Fourier fields). Exact for every element of a finite group; for SO(3)/O(3) exact for the grid-exact
  elements and approximate otherwise.
* ``"norm"`` pooling: Euclidean norm of each irreducible component of a field (after escnn's change of basis).
  Exactly invariant for every group element, also for SO(3)/O(3).
"""
from __future__ import annotations

import torch
from torch import nn

from ..groups import get_group

__all__ = ["InvariantPooling"]


class InvariantPooling(nn.Module):
    """Per-voxel invariant pooling of ``n_fields`` hidden fields.

    Args:
        group: registered group name.
        n_fields: number of hidden fields.
        mode: ``"group"``, ``"norm"``, or ``None`` (``"group"`` for regular groups, ``"norm"`` for SO(3)/O(3)).

    Shapes: ``(B, n_fields * field_size, D, H, W) -> (B, out_channels, D, H, W)`` with ``out_channels`` =
    ``n_fields`` (group pooling) or ``n_fields * n_irreps`` (norm pooling).
    """

    def __init__(self, group: str, n_fields: int, mode=None):
        super().__init__()
        g = get_group(group)
        mode = mode or ("group" if g.kind == "regular" else "norm")
        if mode not in ("group", "norm"):
            raise ValueError(f"pooling mode must be 'group' or 'norm', got {mode!r}")
        self.mode = mode
        self.n_fields = n_fields
        self.field_size = g.field_size
        if mode == "group":
            self.out_channels = n_fields
            if g.kind == "fourier":
                self.register_buffer("A", g.fourier_matrices[0].clone(), persistent=False)
            else:
                self.A = None
        else:
            rep = g.hidden_repr
            q_inv = torch.as_tensor(rep.change_of_basis_inv, dtype=torch.float32)
            group_obj = g.gspace.fibergroup
            sizes = [group_obj.irrep(*irr).size for irr in rep.irreps]
            assign = torch.zeros(len(sizes), rep.size)
            pos = 0
            for i, s in enumerate(sizes):
                assign[i, pos:pos + s] = 1.0
                pos += s
            self.register_buffer("Q_inv", q_inv, persistent=False)
            self.register_buffer("assign", assign, persistent=False)
            self.out_channels = n_fields * len(sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, d, h, w = x.shape
        y = x.reshape(b, self.n_fields, self.field_size, d, h, w)
        if self.mode == "group":
            if self.A is not None:
                y = torch.einsum("nk,bfkdhw->bfndhw", self.A, y)
            return y.amax(dim=2)
        y = torch.einsum("jk,bfkdhw->bfjdhw", self.Q_inv, y).pow(2)
        y = torch.einsum("ij,bfjdhw->bfidhw", self.assign, y)
        return (y + 1e-12).sqrt().reshape(b, self.out_channels, d, h, w)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, {self.n_fields} fields -> {self.out_channels} invariant channels"
