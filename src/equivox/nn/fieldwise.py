"""Field-wise normalization, nonlinearity and dropout for hidden fields (plain torch; export as they are).

For ``regular`` groups a hidden field is a function on the group's elements (its channels are permuted by the
group), so a pointwise nonlinearity and a normalization whose statistics are shared by the field's channels are
exactly equivariant (escnn's ``InnerBatchNorm`` + ``PointwiseNonLinearity``).

For ``fourier`` groups (SO(3), O(3)) a hidden field holds band-limited Fourier coefficients. The block samples the
field on a grid of group elements (``A``), normalizes and applies the nonlinearity on the samples, and maps back
(``A_inv``), as escnn's ``FourierELU``. The grid is closed under the grid-exact elements, so this is exact for
them and approximate for other rotations.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
from monai.networks.layers.factories import Act
from torch import nn

from ..groups import get_group

__all__ = ["FieldNormAct", "make_activation"]


def make_activation(act: Union[str, Tuple, None]) -> nn.Module:
    """MONAI-style activation spec (``"relu"``, ``("elu", {"alpha": 1.0})``, ``None``) -> module.

    Any *pointwise* activation is allowed: it is applied to regular-field channels or to grid samples.
    """
    if act is None:
        return nn.Identity()
    name, kwargs = (act, {}) if isinstance(act, str) else (act[0], dict(act[1]) if len(act) > 1 else {})
    try:
        return Act[name](**kwargs)
    except (KeyError, TypeError) as err:
        raise ValueError(f"unknown activation {act!r} (use a MONAI Act name such as 'relu', 'elu', 'prelu')") from err


class FieldNormAct(nn.Module):
    """Normalization -> activation -> field dropout on ``n_fields`` hidden fields of ``group``.

    Args:
        group: registered group name.
        n_fields: number of hidden fields (tensor channels ``n_fields * field_size``).
        norm: ``"batch"`` (statistics per field over batch, space and the field's channels/samples),
            ``"instance"`` (per sample), or ``None``.
        act: MONAI-style activation spec; ``None`` for none.
        dropout: probability of zeroing a whole field (keeps equivariance in distribution).

    Shapes: ``(B, n_fields * field_size, D, H, W)`` -> same.
    """

    def __init__(self, group: str, n_fields: int, norm: Optional[str] = "batch", act="elu", dropout: float = 0.0):
        super().__init__()
        g = get_group(group)
        self.group = g.name
        self.n_fields = n_fields
        self.field_size = g.field_size
        if g.kind == "fourier":
            a, a_inv = g.fourier_matrices
            self.register_buffer("A", a.clone(), persistent=False)
            self.register_buffer("A_inv", a_inv.clone(), persistent=False)
        else:
            self.A = None
            self.A_inv = None
        if norm == "batch":
            self.norm = nn.BatchNorm3d(n_fields)
        elif norm == "instance":
            self.norm = nn.InstanceNorm3d(n_fields, affine=True)
        elif norm is None:
            self.norm = nn.Identity()
        else:
            raise ValueError(f"norm must be 'batch', 'instance' or None, got {norm!r}")
        self.act = make_activation(act)
        self.dropout = nn.Dropout3d(dropout) if dropout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, d, h, w = x.shape
        if c != self.n_fields * self.field_size:
            raise ValueError(f"expected {self.n_fields} fields x {self.field_size} channels = "
                             f"{self.n_fields * self.field_size} channels, got {c}")
        y = x.reshape(b, self.n_fields, self.field_size, d * h * w)
        if self.A is not None:
            y = torch.einsum("nk,bfks->bfns", self.A, y)
        samples = y.shape[2]
        # (B, F, samples * space) seen as a 3D volume: statistics are shared by a field's channels/samples
        y = self.norm(y.reshape(b, self.n_fields, samples, d * h, w))
        y = self.dropout(self.act(y)).reshape(b, self.n_fields, samples, d * h * w)
        if self.A_inv is not None:
            y = torch.einsum("kn,bfns->bfks", self.A_inv, y)
        return y.reshape(b, c, d, h, w)

    def extra_repr(self) -> str:
        return f"{self.group}: {self.n_fields} fields x {self.field_size}"
