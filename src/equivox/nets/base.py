"""Shared constructor checks of equivox networks (the module contract itself is :class:`equivox.nn.EquivariantModule`)."""
from __future__ import annotations

import inspect
import math
from typing import Sequence, Tuple

from ..groups import get_group
from ..nn.fields import FieldSpec
from ..nn.module import EquivariantModule, input_check

__all__ = ["EquivariantNetwork"]


class EquivariantNetwork(EquivariantModule):
    """Base of equivox networks: MONAI-style argument checks, one input validator, export.

    Subclasses set ``self.group`` (str), ``self.in_channels`` (int), ``self.strides`` (tuple) and ``self.input_check``
    (:meth:`_make_input_check`), and call ``self.input_check(x)`` first in ``forward``. Inputs may be
    ``torch.Tensor`` or MONAI ``MetaTensor`` (treated as a plain tensor). The export is the same class with plain
    children (:meth:`equivox.nn.EquivariantModule.export`), so ``forward`` is written scriptable (and no class-level
    attribute annotations: TorchScript would read them as attribute types).
    """

    __jit_unused_properties__ = ["out_tensor_channels", "size_multiple", "tensor_channels"]

    def __new__(cls, *args, **kwargs):
        # record the constructor arguments, so a network built directly (not from a spec) can be checkpointed and
        # rebuilt: equivox.models.spec_of reads them under the class's registered name
        self = super().__new__(cls)
        try:
            bound = inspect.signature(cls.__init__).bind(None, *args, **kwargs)
        except TypeError:
            return self
        object.__setattr__(self, "_init_arguments", dict(list(bound.arguments.items())[1:]))
        return self

    @staticmethod
    def _check_args(spatial_dims: int, in_channels: int, out_channels: int, channels: Sequence[int],
                    strides: Sequence[int], group: str, expected_strides: int) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
        if spatial_dims != 3:
            raise ValueError(f"equivox networks are 3D: spatial_dims must be 3, got {spatial_dims}")
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        channels, strides = tuple(int(c) for c in channels), tuple(int(s) for s in strides)
        if not channels or min(channels) < 1:
            raise ValueError(f"channels must be a non-empty sequence of positive field counts, got {channels}")
        if len(strides) != expected_strides:
            raise ValueError(
                f"strides must have {expected_strides} entries for channels={channels} (one per downsampling "
                f"between levels), got {strides}"
            )
        if strides and min(strides) < 1:
            raise ValueError(f"strides must be positive integers, got {strides}")
        get_group(group)  # clear error for unknown names
        return channels, strides

    def _make_input_check(self):
        """The validator of ``(B, in_channels, D, H, W)`` scalar inputs with sizes divisible by ``size_multiple``."""
        self.in_spec = FieldSpec.scalar(self.group, self.in_channels)
        return input_check(self.in_spec, self.size_multiple, type(self).__name__)

    @property
    def size_multiple(self) -> int:
        """Every spatial input size must be a multiple of this (product of strides) for exact equivariance."""
        return int(math.prod(self.strides))

    @property
    def tensor_channels(self) -> Tuple[int, ...]:
        """Tensor channels per level (``channels[i] * field_size``), for comparing widths with plain CNNs."""
        return tuple(c * get_group(self.group).field_size for c in self.channels)
