"""An exactly equivariant U-Net that nnU-Net v2 builds from its plans (``network_class_name`` in ``nnUNetPlans.json``).

Layout as ``dynamic_network_architectures``' ``PlainConvUNet`` (``encoder.stages``, ``decoder.stages``,
``decoder.transpconvs``, ``decoder.seg_layers``, ``decoder.deep_supervision``, which nnU-Net's trainer toggles),
made of equivox blocks: stage ``i`` average-pools by ``strides[i]`` and runs ``n_conv_per_stage[i]`` x
(equivariant conv -> field norm -> nonlinearity); each decoder stage maps the coarser fields to the skip's field
count with a 1x1x1 equivariant convolution and interpolates up by the stride (equivox's exact replacement for a
transposed convolution), concatenates the skip and runs ``n_conv_per_stage_decoder`` convolutions; each segmentation
layer is a 1x1x1 equivariant convolution to scalar (invariant) logits. This module does not import nnunetv2.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..core import InputCheck
from ..groups import get_group
from ..nn.blocks import EquivariantConvBlock
from ..nn.conv import EquivariantConv3d
from ..nn.fields import FieldSpec
from ..nn.module import EquivariantModule
from ..nn.sampling import EquivariantDownsample, EquivariantUpsample
from . import rules

__all__ = ["EquivariantNnUNet", "NnUNetDecoder", "NnUNetEncoder"]


class NnUNetEncoder(EquivariantModule):
    """nnU-Net's encoder layout: ``stages[i]`` = ``nn.Sequential([EquivariantDownsample(strides[i]),]
    EquivariantConvBlock)``. Forward: ``x`` -> list of skips, one per stage (bottleneck last).

    ``out_specs`` are the hidden fields of every stage; ``output_channels`` their tensor channels (as
    ``dynamic_network_architectures``' encoders)."""

    def __init__(self, in_spec: FieldSpec, fields: Sequence[int], kernel_sizes: Sequence[int],
                 strides: Sequence[Tuple[int, int, int]], n_convs: Sequence[int], norm, act, dropout: float):
        super().__init__()
        self.in_spec = spec = in_spec
        self.stages = nn.ModuleList()
        self.out_specs: List[FieldSpec] = []
        for i, n in enumerate(fields):
            block = EquivariantConvBlock(spec, n, kernel_sizes[i], norm, act, dropout, int(n_convs[i]))
            layers = ([EquivariantDownsample(strides[i], spec)] if max(strides[i]) > 1 else []) + [block]
            self.stages.append(nn.Sequential(*layers))
            spec = block.out_spec
            self.out_specs.append(spec)
        self.out_spec = spec
        self.strides = [list(s) for s in strides]
        self.output_channels = [s.size for s in self.out_specs]

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        skips: List[torch.Tensor] = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips


class NnUNetDecoder(EquivariantModule):
    """nnU-Net's ``UNetDecoder`` interface: ``transpconvs[s]`` (a 1x1x1 equivariant convolution to the skip's field
    count, then :class:`EquivariantUpsample` by the stride: equivox's exact replacement of a transposed
    convolution), ``stages[s]`` (an :class:`EquivariantConvBlock` on ``[up, skip]``), ``seg_layers[s]`` (a 1x1x1
    equivariant convolution to scalar logits). ``forward(skips)`` returns the full-resolution logits, or with
    ``deep_supervision`` a list of logits, one per decoder stage, highest resolution first."""

    def __init__(self, skip_specs: Sequence[FieldSpec], kernel_sizes: Sequence[int],
                 strides: Sequence[Tuple[int, int, int]], n_convs: Sequence[int], num_classes: int, conv_bias: bool,
                 norm, act, dropout: float, deep_supervision: bool):
        super().__init__()
        group = skip_specs[-1].group
        self.in_spec = skip_specs[-1]
        self.transpconvs, self.stages, self.seg_layers = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        below = skip_specs[-1]
        n = len(skip_specs)
        for s in range(1, n):
            skip = skip_specs[-(s + 1)]
            up_spec = FieldSpec.hidden(group, len(skip))
            self.transpconvs.append(nn.Sequential(EquivariantConv3d(below, up_spec, 1, bias=bool(conv_bias)),
                                                  EquivariantUpsample(strides[-s], "trilinear", up_spec)))
            block = EquivariantConvBlock(up_spec + skip, len(skip), kernel_sizes[-(s + 1)], norm, act, dropout,
                                         int(n_convs[s - 1]))
            self.stages.append(block)
            self.seg_layers.append(EquivariantConv3d(block.out_spec, FieldSpec.scalar(group, num_classes), 1,
                                                     bias=True))
            below = block.out_spec
        self.out_spec = FieldSpec.scalar(group, num_classes)
        self.deep_supervision = bool(deep_supervision)

    def forward(self, skips: List[torch.Tensor]) -> Union[torch.Tensor, List[torch.Tensor]]:
        x = skips[-1]
        outs: List[torch.Tensor] = []
        n = len(self.stages)
        for s, (up, stage, seg) in enumerate(zip(self.transpconvs, self.stages, self.seg_layers)):
            x = stage(torch.cat([up(x), skips[-(s + 2)]], dim=1))
            if self.deep_supervision or s == n - 1:
                outs.append(seg(x))
        outs = outs[::-1]
        if self.deep_supervision:
            return outs
        return outs[0]


class EquivariantNnUNet(EquivariantModule):
    """Rotation-equivariant U-Net built from nnU-Net v2 ``arch_kwargs`` (drop-in for ``PlainConvUNet``).

    Args (nnU-Net's, as in ``nnUNetPlans.json``; classes may be given as dotted names too):
        input_channels: scalar input channels (image modalities). num_classes: segmentation heads (logits).
        n_stages: resolution stages. features_per_stage: nnU-Net's channels per stage, mapped to hidden fields by
            ``keep`` (see :func:`equivox.nnunet.rules.fields_for_features`).
        conv_op: must be a 3D convolution (``torch.nn.Conv3d``; only its dimension is used).
        kernel_sizes, strides: per stage, ints or ``(d, h, w)`` lists; ``strides[0]`` is normally 1.
            Convolutions are odd cubic kernels (``max`` of the planned sizes); strides become average pooling.
        n_conv_per_stage, n_conv_per_stage_decoder: convolutions per encoder / decoder stage.
        conv_bias: learn invariant biases where no normalization follows (the 1x1x1 up-projections; the
            segmentation layers always have one).
        norm_op, norm_op_kwargs: ``InstanceNorm3d`` (nnU-Net's default), ``BatchNorm3d`` or ``None``, applied per
            field (statistics shared by a field's channels; affine per field; ``eps`` is the layer default).
        dropout_op, dropout_op_kwargs: ``None`` or a dropout class; ``p`` drops whole fields.
        nonlin, nonlin_kwargs: a pointwise activation (nnU-Net: ``LeakyReLU``), applied field-wise.
        deep_supervision: return one output per decoder stage (see Forward).
        nonlin_first: accepted for compatibility; must be False (norm before nonlinearity).
    equivox args (extra ``arch_kwargs`` keys written by ``equivox nnunet plans``):
        group: group name; ``None`` chooses from the plan (:func:`equivox.nnunet.rules.choose_group`): ``cube_group``
            for isotropic plans, an axial group for anisotropic ones (``ValueError`` naming the stage, kernel and
            stride when none fits).
        cube_group: group used for isotropic plans when ``group`` is None (default ``"octa"``).
        keep: ``"width"`` (default: nnU-Net's tensor width, so its memory plan holds) or ``"params"``.
        fields_per_stage: explicit hidden fields per stage (overrides ``keep``).

    Built from the shared blocks (:class:`NnUNetEncoder` / :class:`NnUNetDecoder` of
    :class:`~equivox.nn.EquivariantConvBlock`, per-axis :class:`~equivox.nn.EquivariantDownsample` /
    :class:`~equivox.nn.EquivariantUpsample`); ``export()`` gives the same network on plain ``torch.nn`` layers.

    Forward: ``(B, input_channels, D, H, W)`` -> logits ``(B, num_classes, D, H, W)``, or with deep supervision a
    list ``[(B, K, D, H, W), (B, K, D / s1, ...), ...]`` of ``n_stages - 1`` tensors (``s1`` the product of
    ``strides[:2]``, as nnU-Net's deep-supervision scales). Every spatial size must be a multiple of the product of
    the strides on its axis (:class:`~equivox.core.EquivarianceError` otherwise); nnU-Net's patch sizes are.

    Equivariance: every output is an invariant (scalar) field: for every grid-exact element ``g`` of ``group``
    (all 24 cube rotations for ``octa``), ``net(g x) == g net(x)`` to float rounding, deep-supervision outputs
    included. nnU-Net's ``initialize`` hook (He init of ``nn.Conv*`` weights) touches no layer of this network
    (equivox convolutions initialise their basis coefficients themselves), so it keeps equivariance.
    """

    __jit_unused_properties__ = ["out_tensor_channels", "out_specs", "deep_supervision"]

    def __init__(self, input_channels: int, n_stages: int, features_per_stage, conv_op, kernel_sizes, strides,
                 n_conv_per_stage, num_classes: int, n_conv_per_stage_decoder, conv_bias: bool = False,
                 norm_op=None, norm_op_kwargs: Optional[dict] = None, dropout_op=None,
                 dropout_op_kwargs: Optional[dict] = None, nonlin=None, nonlin_kwargs: Optional[dict] = None,
                 deep_supervision: bool = False, nonlin_first: bool = False, group: Optional[str] = None,
                 cube_group: str = "octa", keep: str = "width", fields_per_stage: Optional[Sequence[int]] = None):
        super().__init__()
        conv_name = getattr(conv_op, "__name__", str(conv_op))
        if "3d" not in conv_name.lower():
            raise ValueError(f"conv_op {conv_op!r} is not 3D: equivox networks are 3D (use a 3d_* configuration)")
        if nonlin_first:
            raise ValueError("nonlin_first=True (conv -> nonlin -> norm) is not supported; equivox blocks apply "
                             "norm then nonlinearity")
        n = int(n_stages)
        if n < 2:
            raise ValueError(f"n_stages must be >= 2, got {n_stages}")
        feats = [int(features_per_stage)] * n if isinstance(features_per_stage, int) else list(features_per_stage)
        if len(feats) != n:
            raise ValueError(f"features_per_stage has {len(feats)} entries, expected n_stages={n}")
        kernels = rules.as_triples(kernel_sizes, n, "kernel_sizes")
        strides_t = rules.as_triples(strides, n, "strides")
        enc_convs = [int(n_conv_per_stage)] * n if isinstance(n_conv_per_stage, int) else list(n_conv_per_stage)
        dec_convs = ([int(n_conv_per_stage_decoder)] * (n - 1) if isinstance(n_conv_per_stage_decoder, int)
                     else list(n_conv_per_stage_decoder))
        if len(enc_convs) != n or len(dec_convs) != n - 1:
            raise ValueError(f"n_conv_per_stage needs {n} entries and n_conv_per_stage_decoder {n - 1}, got "
                             f"{enc_convs} and {dec_convs}")
        self.group = rules.choose_group(kernels, strides_t, group, cube_group)
        g = get_group(self.group)
        fields = (tuple(int(f) for f in fields_per_stage) if fields_per_stage is not None
                  else rules.fields_for_features(feats, g.field_size, keep))
        if len(fields) != n or min(fields) < 1:
            raise ValueError(f"fields_per_stage must have {n} positive entries, got {list(fields)}")
        norm = rules.norm_kind(norm_op)
        act = rules.activation_spec(nonlin, nonlin_kwargs)
        p = rules.dropout_p(dropout_op, dropout_op_kwargs)

        self.input_channels, self.num_classes, self.n_stages = int(input_channels), int(num_classes), n
        self.keep, self.fields_per_stage, self.features_per_stage = keep, fields, feats
        self.kernel_sizes, self.strides = kernels, strides_t
        self.conv_kernel_sizes = [max(k) for k in kernels]  # odd cubic kernels actually used
        for i, k in enumerate(self.conv_kernel_sizes):
            if k % 2 == 0:
                raise ValueError(f"stage {i} kernel {list(kernels[i])}: even kernels have no centre voxel and cannot "
                                 f"be exactly equivariant")
        self.size_multiple = tuple(math.prod(s[a] for s in strides_t) for a in range(3))

        in_spec = FieldSpec.scalar(self.group, self.input_channels)
        self.encoder = NnUNetEncoder(in_spec, fields, self.conv_kernel_sizes, strides_t, enc_convs, norm, act, p)
        self.decoder = NnUNetDecoder(self.encoder.out_specs, self.conv_kernel_sizes, strides_t, dec_convs,
                                     self.num_classes, conv_bias, norm, act, p, deep_supervision)
        self.in_spec, self.out_spec = in_spec, self.decoder.out_spec
        self.input_check = InputCheck(self.input_channels, self.size_multiple, type(self).__name__)
        # keys dynamic_network_architectures' pretraining utilities look for
        self.key_to_encoder = "encoder.stages"
        self.key_to_stem = "encoder.stages.0"
        self.keys_to_in_proj = ("encoder.stages.0.0.layers.0",)

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, List[torch.Tensor]]:
        return self.decoder(self.encoder(self.input_check(x)))

    @property
    def out_specs(self) -> List[FieldSpec]:
        """Field types of the outputs: scalar logits, one per deep-supervision output when it is on."""
        return [self.out_spec] * (len(self.decoder.stages) if self.decoder.deep_supervision else 1)

    @property
    def deep_supervision(self) -> bool:
        """Whether ``forward`` returns the list of deep-supervision outputs (nnU-Net sets ``decoder.deep_supervision``)."""
        return self.decoder.deep_supervision

    @deep_supervision.setter
    def deep_supervision(self, value: bool) -> None:
        self.decoder.deep_supervision = bool(value)

    # ------------------------------------------------------------------ nnU-Net hooks
    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> int:
        """Number of feature-map elements of all convolution outputs for one ``(D, H, W)`` patch (nnU-Net's VRAM
        proxy, counted as ``PlainConvUNet`` does: each conv output, each up-projection, each segmentation output).
        """
        if len(input_size) != 3:
            raise ValueError(f"give the spatial size (D, H, W) only, got {list(input_size)}")
        size = [int(v) for v in input_size]
        sizes, total = [], 0
        for i, stage in enumerate(self.encoder.stages):
            size = [a // s for a, s in zip(size, self.strides[i])]
            sizes.append(size)
            n_convs = sum(isinstance(m, EquivariantConv3d) for m in stage.modules())
            total += n_convs * self.encoder.out_specs[i].size * math.prod(size)
        for s, stage in enumerate(self.decoder.stages):
            vox = math.prod(sizes[-(s + 2)])
            n_convs = sum(isinstance(m, EquivariantConv3d) for m in stage.modules())
            total += (n_convs + 1) * self.encoder.out_specs[-(s + 2)].size * vox
            if self.decoder.deep_supervision or s == len(self.decoder.stages) - 1:
                total += self.num_classes * vox
        return int(total)

    @staticmethod
    def initialize(module: nn.Module) -> None:
        """nnU-Net's weight-init hook (``network.apply(network.initialize)``): He init for any plain ``nn.Conv*``
        (there are none in this network; an equivariant layer never gets per-channel weights from it). equivox
        convolutions keep their own He-rule initialisation of the basis coefficients, which is equivariant."""
        if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
            nn.init.kaiming_normal_(module.weight, a=1e-2)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def extra_repr(self) -> str:
        return (f"group={self.group!r}, keep={self.keep!r}, fields_per_stage={list(self.fields_per_stage)} "
                f"(features {list(self.features_per_stage)}), strides={[list(s) for s in self.strides]}")
