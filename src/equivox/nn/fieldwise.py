"""Field-wise normalization, nonlinearity and dropout for hidden fields (plain torch; export as they are).

For ``regular`` groups a hidden field is a function on the group's elements (its channels are permuted by the
group), so a pointwise nonlinearity and a normalization whose statistics are shared by the field's channels are
exactly equivariant (escnn's ``InnerBatchNorm`` + ``PointwiseNonLinearity``).

For ``fourier`` groups (SO(3), O(3)) a hidden field holds band-limited Fourier coefficients. The block samples the
field on a grid of group elements (``A``), normalizes and applies the nonlinearity on the samples, and maps back
(``A_inv``), as escnn's ``FourierELU``. The grid is closed under the grid-exact elements, so this is exact for
them and approximate for other rotations. Which of the two a group uses is its field kind's business
(:class:`equivox.groups.FieldKind`: ``sampling_matrices`` is ``None`` or ``(A, A_inv)``); this module only reads it.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Union

import copy

import torch
from monai.networks.layers.factories import Act, Norm
from torch import nn

from ..core import ExportError, affine_batchnorm, bn_affine, grouped_1x1
from ..groups import get_group
from .fields import FieldSpec
from .module import EquivariantModule

__all__ = ["ActSpec", "FieldNormAct", "NormSpec", "make_activation", "make_norm", "per_field_activation"]

#: a MONAI-style activation: a name of MONAI's ``Act`` factory (``"elu"``), ``(name, kwargs)`` or ``None``
ActSpec = Union[str, Tuple[str, Dict[str, Any]], None]
#: a MONAI-style norm: ``"batch"``, ``"instance"``, ``"group"``, ``(name, kwargs)`` or ``None``
NormSpec = Union[str, Tuple[str, Dict[str, Any]], None]
#: norms whose statistics can be shared by a field's channels (per channel over space, or over groups of them)
FIELD_NORMS = ("batch", "instance", "group")


def _split_spec(spec) -> Tuple[str, Dict[str, Any]]:
    if isinstance(spec, str):
        return spec.lower(), {}
    if isinstance(spec, (tuple, list)) and len(spec) in (1, 2) and isinstance(spec[0], str):
        return spec[0].lower(), dict(spec[1]) if len(spec) > 1 else {}
    raise ValueError(f"expected a name or (name, kwargs), got {spec!r}")


def make_norm(norm: NormSpec, channels: int) -> nn.Module:
    """A MONAI-style norm spec -> a 3D norm over ``channels`` through MONAI's ``Norm`` factory (``nn.Identity``
    for ``None``). ``"instance"`` is affine unless its kwargs say otherwise; ``("group", {"num_groups": g})``
    normalizes groups of ``channels / g`` channels.

    >>> make_norm(("batch", {"momentum": 0.01}), 4).momentum
    0.01
    >>> make_norm("instance", 4).affine
    True
    """
    if norm is None:
        return nn.Identity()
    name, kwargs = _split_spec(norm)
    if name not in FIELD_NORMS:
        raise ValueError(f"norm must be one of {FIELD_NORMS} (or (name, kwargs)) or None, got {norm!r}")
    if name == "instance":
        kwargs.setdefault("affine", True)
    try:
        if name == "group":
            return Norm[name, 3](num_channels=channels, **kwargs)
        return Norm[name, 3](channels, **kwargs)
    except TypeError as err:
        raise ValueError(f"norm {norm!r}: {err}") from err


def per_field_activation(act, n_fields: int):
    """``act`` for a layer of ``n_fields`` fields: a MONAI-style spec with ``num_parameters > 1`` (per-field PReLU
    slopes) gets one slope per field of this layer; any other spec is returned unchanged."""
    if isinstance(act, (tuple, list)) and len(act) > 1 and int(dict(act[1]).get("num_parameters", 1)) > 1:
        return (act[0], {**dict(act[1]), "num_parameters": n_fields})
    return act


def make_activation(act: ActSpec) -> nn.Module:
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


class FieldNormAct(EquivariantModule):
    """Normalization -> activation -> field dropout on ``n_fields`` hidden fields of ``group``.

    Args:
        group: registered group name.
        n_fields: number of hidden fields (tensor channels ``n_fields * field_size``).
        norm: ``"batch"`` (statistics per field over batch, space and the field's channels/samples),
            ``"instance"`` (per sample), ``"group"`` (groups of whole fields, ``("group", {"num_groups": g})``),
            any of them as ``(name, kwargs)`` for MONAI's ``Norm`` factory, or ``None``.
        act: MONAI-style activation spec; ``None`` for none.
        dropout: probability of zeroing a whole field (keeps equivariance in distribution).

    Shapes: ``(B, n_fields * field_size, D, H, W)`` -> same.

    Export: ``BatchNorm3d`` (per channel, the field's statistics repeated) or ``GroupNorm`` (one group per field)
    and the activation; for sampled fields a grouped 1x1x1 ``Conv3d`` to the samples (batch norm folded in), the
    norm / activation, and one back.
    """

    def __init__(self, group: str, n_fields: int, norm: NormSpec = "batch", act: ActSpec = "elu",
                 dropout: float = 0.0):
        super().__init__()
        g = get_group(group)
        self.group = g.name
        self.n_fields = n_fields
        self.field_size = g.field_size
        self.in_spec = self.out_spec = FieldSpec.hidden(g, n_fields)
        mats = g.sampling_matrices
        if mats is not None:
            a, a_inv = mats
            self.register_buffer("A", a.clone(), persistent=False)
            self.register_buffer("A_inv", a_inv.clone(), persistent=False)
        else:
            self.A = None
            self.A_inv = None
        self.norm = make_norm(norm, n_fields)
        self.act = make_activation(act)
        self.dropout = nn.Dropout3d(dropout) if dropout else nn.Identity()
        # a field kind with its own norm and nonlinearity on whole tensors (gated irreps fields) replaces both
        custom = g.spec.fields.norm_act(g, n_fields, norm, act)
        self.whole_fields = custom is not None
        if custom is not None:
            self.norm, self.act = custom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, d, h, w = x.shape
        if c != self.n_fields * self.field_size:
            raise ValueError(f"expected {self.n_fields} fields x {self.field_size} channels = "
                             f"{self.n_fields * self.field_size} channels, got {c}")
        if self.whole_fields:
            y = self.act(self.norm(x))
            if isinstance(self.dropout, nn.Identity):
                return y
            return self.dropout(y.reshape(b, self.n_fields, self.field_size, d * h, w)).reshape(b, c, d, h, w)
        if self.A is None:
            # regular fields: (B, F, field_size * D, H, W) is a view of the input in which norm (statistics per
            # field), activation and field dropout (channel F) act on whole fields; one view in, one view out
            y = self.dropout(self.act(self.norm(_view(x, (b, self.n_fields, self.field_size * d, h, w)))))
            return _view(y, (b, c, d, h, w))
        # sampled fields: every field's coefficients to its grid samples (one batched product, the sampling matrix
        # broadcast over batch and fields), norm / activation / dropout on (B, F, samples * D, H, W), and back
        bf, samples = b * self.n_fields, self.A.shape[0]
        y = torch.bmm(self.A.expand(bf, samples, self.field_size), _view(x, (bf, self.field_size, d * h * w)))
        y = self.dropout(self.act(self.norm(y.view(b, self.n_fields, samples * d, h, w))))
        y = torch.bmm(self.A_inv.expand(bf, self.field_size, samples), _view(y, (bf, samples, d * h * w)))
        return y.view(b, c, d, h, w)

    def _export(self) -> nn.Module:
        if self.whole_fields:
            from ..export import to_plain

            return nn.Sequential(to_plain(self.norm), to_plain(self.act))
        n = self.n_fields
        sampled = self.A is not None
        per_field = self.A.shape[0] if sampled else self.field_size
        layers = []
        norm = self.norm
        if sampled:
            if isinstance(norm, nn.BatchNorm3d):  # per-field affine map folded into the sampling convolution
                scale, shift = bn_affine(norm)
                layers.append(grouped_1x1(self.A, n, bias=shift.repeat_interleave(per_field)))
                with torch.no_grad():
                    layers[-1].weight.mul_(scale.repeat_interleave(per_field)[:, None, None, None, None])
            else:
                layers.append(grouped_1x1(self.A, n))
        if isinstance(norm, nn.BatchNorm3d) and not sampled:
            scale, shift = bn_affine(norm)
            layers.append(affine_batchnorm(scale.repeat_interleave(per_field), shift.repeat_interleave(per_field)))
        elif isinstance(norm, nn.InstanceNorm3d):
            if norm.track_running_stats:
                raise ExportError("instance norm with running statistics is not supported by export")
            gn = nn.GroupNorm(n, n * per_field, eps=norm.eps, affine=True)
            with torch.no_grad():
                w = norm.weight.detach() if norm.affine else torch.ones(n)
                b = norm.bias.detach() if norm.affine else torch.zeros(n)
                gn.weight.copy_(w.repeat_interleave(per_field))
                gn.bias.copy_(b.repeat_interleave(per_field))
            layers.append(gn)
        elif isinstance(norm, nn.GroupNorm):  # groups of whole fields: the same statistics on the channels
            gn = nn.GroupNorm(norm.num_groups, n * per_field, eps=norm.eps, affine=True)
            with torch.no_grad():
                gn.weight.copy_(norm.weight.detach().repeat_interleave(per_field) if norm.affine else 1.0)
                gn.bias.copy_(norm.bias.detach().repeat_interleave(per_field) if norm.affine else 0.0)
            layers.append(gn)
        elif not isinstance(norm, (nn.Identity, nn.BatchNorm3d)):
            raise ExportError(f"unsupported normalization {type(norm).__name__} in {self}")
        if not isinstance(self.act, nn.Identity):
            layers.append(_per_channel_activation(self.act, n, per_field))
        if sampled:
            layers.append(grouped_1x1(self.A_inv, n))
        return nn.Sequential(*layers)

    def extra_repr(self) -> str:
        return f"{self.group}: {self.n_fields} fields x {self.field_size}"


def _view(x: torch.Tensor, shape: Tuple[int, ...]) -> torch.Tensor:
    """``x.reshape(shape)`` as one ``view`` when ``x`` is contiguous (the usual case; ``reshape`` would dispatch a
    ``view`` inside it)."""
    return x.view(shape) if x.is_contiguous() else x.reshape(shape)


def _per_channel_activation(act: nn.Module, n_fields: int, per_field: int) -> nn.Module:
    """A copy of ``act``; a per-field ``PReLU`` becomes a per-channel one (slopes repeated)."""
    act = copy.deepcopy(act)
    if isinstance(act, nn.PReLU) and act.num_parameters > 1:
        new = nn.PReLU(n_fields * per_field).to(act.weight)
        with torch.no_grad():
            new.weight.copy_(act.weight.detach().repeat_interleave(per_field))
        return new
    return act
