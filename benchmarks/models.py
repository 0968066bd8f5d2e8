"""Models compared in the benchmarks: the equivox U-Net and MONAI nets matched by tensor width or parameter count.

``build(spec) -> (model, info)``; ``spec`` is a plain dict so it can be passed to a fresh process; each kind of spec
names a model role of :mod:`equivox.models` (``_KINDS``), which builds it.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import nn


class PlainUNet(nn.Module):
    """The equivox U-Net's topology as a hand-written plain CNN at the equivox U-Net's *tensor widths* (the
    ``"plain (matched compute)"`` row of the harness, arch ``plain_compute``; not the parameter-matched
    ``matched_baseline``): per level 2 x (Conv3d 3^3 -> BatchNorm3d -> ELU), average-pool down, trilinear up,
    concatenated skips, 1x1x1 head. Same tensor widths and FLOPs as the equivox U-Net, no equivariance and no
    escnn code path: the ratio to it is the cost of the equivariant layers themselves."""

    def __init__(self, widths, in_channels: int = 1, out_channels: int = 2):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm3d(cout), nn.ELU(),
                                 nn.Conv3d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm3d(cout), nn.ELU())

        self.enc = nn.ModuleList()
        prev = in_channels
        for w in widths:
            self.enc.append(block(prev, w))
            prev = w
        self.dec = nn.ModuleList(block(widths[i + 1] + widths[i], widths[i]) for i in range(len(widths) - 2, -1, -1))
        self.head = nn.Conv3d(widths[0], out_channels, 1)

    def forward(self, x):
        feats = []
        for i, blk in enumerate(self.enc):
            x = blk(nn.functional.avg_pool3d(x, 2) if i else x)
            feats.append(x)
        y = feats[-1]
        for i, blk in enumerate(self.dec):
            up = nn.functional.interpolate(y, scale_factor=2, mode="trilinear", align_corners=False)
            y = blk(torch.cat([up, feats[len(feats) - 2 - i]], dim=1))
        return self.head(y)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _handwritten_plain_unet(request):
    return PlainUNet(request.options["widths"], request.in_channels, request.num_classes)


def _monai_basic_unet(request):
    from monai.networks.nets import BasicUNet

    return BasicUNet(3, request.in_channels, request.num_classes, features=request.options["features"], norm="batch")


#: the timing rows that are no role of equivox.models: registered here as user roles (PlainUNet is hand-written on
#: purpose, without the escnn code path of the registry's "plain_compute" role; BasicUNet is MONAI's other U-Net)
_OWN_ROLES = {"benchmark.plain_unet": _handwritten_plain_unet, "benchmark.monai_basicunet": _monai_basic_unet}

#: spec kind -> (model role of equivox.models, fixed constructor options, {option: the spec key giving it});
#: "equivox" with "layout": "monai" is the equivox network with MONAI UNet's layout and defaults (PReLU), batch norm
#: as the MONAI rows
_KINDS = {
    "equivox": ("equivariant", {}, {}),
    "equivox/monai": ("EquivariantMonaiUNet", {"num_res_units": 2, "norm": "batch"}, {}),
    "plain_compute": ("benchmark.plain_unet", {}, {"widths": "tensor_channels"}),
    "monai_unet": ("monai.UNet", {"num_res_units": 2, "norm": "batch"}, {}),
    "monai_basicunet": ("benchmark.monai_basicunet", {}, {"features": "features"}),
}

#: the spec key holding the widths reported for a model without ``tensor_channels``
_WIDTH_KEY = {"plain_compute": "tensor_channels", "monai_unet": "channels", "monai_basicunet": "features"}


def _register_roles() -> None:
    from equivox.models import ROLES, register_role

    for name, builder in _OWN_ROLES.items():
        if name not in ROLES:
            register_role(name, builder, tasks=("segment",))


def build(spec: Dict) -> Tuple[nn.Module, Dict]:
    """``(model, info)`` of a timing spec (:func:`matched_specs`): every model is built by the model role its kind
    names (:data:`_KINDS`, :func:`equivox.models.get_role`), for segmentation with 1 input channel and 2 classes,
    without reseeding (timings only); ``"export": True`` times an equivox network's plain export."""
    from equivox.models import ModelRequest, get_role

    _register_roles()
    kind = spec["kind"] + ("/monai" if spec["kind"] == "equivox" and spec.get("layout") == "monai" else "")
    if kind not in _KINDS:
        raise ValueError(f"unknown model kind {spec['kind']!r}")
    role, fixed, from_spec = _KINDS[kind]
    sizes = {k: spec[k] for k in ("channels", "strides") if k in spec}
    options = {**fixed, **{option: spec[key] for option, key in from_spec.items()}}
    request = ModelRequest("segment", 1, 2, spec.get("group", "trivial"), sizes, options, seed=None)
    model = get_role(role).build(request)
    if spec["kind"] == "equivox" and spec.get("export"):  # the plain export: no parameters of its own to count
        model = model.eval().export()
    width = list(model.tensor_channels) if hasattr(model, "tensor_channels") else (
        spec.get("tensor_channels") if spec["kind"] == "equivox" else list(spec[_WIDTH_KEY[spec["kind"]]]))
    exported = spec["kind"] == "equivox" and spec.get("export")
    info = {"name": spec["name"], "params": spec.get("params") if exported else n_params(model),
            "tensor_channels": str(width)}
    return model, info


def _unet_params(c: int, strides) -> int:
    from monai.networks.nets import UNet

    return n_params(UNet(3, 1, 2, channels=(c, 2 * c, 4 * c), strides=strides, num_res_units=2, norm="batch"))


def _basic_params(c: int) -> int:
    from monai.networks.nets import BasicUNet

    return n_params(BasicUNet(3, 1, 2, features=(c, c, 2 * c, 4 * c, 8 * c, c), norm="batch"))


def _match(fn, target: int) -> int:
    best, best_err = 1, float("inf")
    for c in range(1, 129):
        err = abs(fn(c) - target)
        if err < best_err:
            best, best_err = c, err
        elif fn(c) > target:
            break
    return best


def matched_specs(quick: bool = False, group: str = "octa") -> List[Dict]:
    """The two equivox U-Nets (default width, or tiny in quick mode) and the nets they are compared with.

    Each non-equivox spec names in ``"ref"`` the equivox model of the same layout: the plain matched-compute U-Net and MONAI
    ``BasicUNet`` (full-resolution first level) compare with ``EquivariantUNet``; MONAI ``UNet`` (every level
    strided) with ``EquivariantMonaiUNet``. Ratios in the tables are ``ref / this``.
    """
    from equivox.nets import EquivariantUNet

    channels, strides = ((1, 2), (2,)) if quick else ((4, 8, 16), (2, 2))
    ref = EquivariantUNet(3, 1, 2, channels=channels, strides=strides, group=group)
    width, params = list(ref.tensor_channels), n_params(ref)
    c_unet = _match(lambda c: _unet_params(c, strides if len(strides) == 2 else (2, 2)), params)
    c_basic = _match(_basic_params, params)
    s = list(strides)
    unet_strides = s if len(width) == len(s) + 1 else [2] * (len(width) - 1)
    classic = f"equivox {group} UNet {list(channels)}"
    monai = f"equivox {group} MonaiUNet {list(channels)}"
    return [
        {"kind": "equivox", "name": classic, "channels": list(channels), "strides": s, "group": group},
        {"kind": "plain_compute", "name": f"plain (matched compute) UNet {width}", "tensor_channels": width,
         "ref": classic},
        {"kind": "monai_basicunet", "name": f"MONAI BasicUNet same params c={c_basic}",
         "features": [c_basic, c_basic, 2 * c_basic, 4 * c_basic, 8 * c_basic, c_basic], "ref": classic},
        {"kind": "equivox", "layout": "monai", "name": monai, "channels": list(channels), "strides": unet_strides,
         "group": group},
        {"kind": "monai_unet", "name": f"MONAI UNet same width {width}", "channels": width, "strides": unet_strides,
         "ref": monai},
        {"kind": "monai_unet", "name": f"MONAI UNet same params c={c_unet}",
         "channels": [c_unet, 2 * c_unet, 4 * c_unet], "strides": [2, 2], "ref": monai},
    ]
