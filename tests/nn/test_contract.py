"""The module contract, for every public class of equivox.nn and equivox.nets: an EquivariantModule with field
types in and out, whose own check_equivariance() passes (hidden outputs transformed by their representation) and
whose export() computes the same outputs in plain torch."""
import inspect

import pytest
import torch

import equivox.nets
import equivox.nn
from equivox.core import PlainModule
from equivox.nn import EquivariantModule, FieldSpec

G = "c4_axial"  # 4 elements: cheap; the group-specific tests live in the files of each module
H = FieldSpec.hidden(G, 2)
NET = dict(channels=(1, 2), strides=(2,), group=G)

#: how to build each public class small; a new public class without an entry fails the walk
BUILD = {
    "EquivariantConv3d": lambda: equivox.nn.EquivariantConv3d(FieldSpec.scalar(G, 1), H),
    "EquivariantConvBlock": lambda: equivox.nn.EquivariantConvBlock(FieldSpec.scalar(G, 1), 2),
    "FieldResidualUnit": lambda: equivox.nn.FieldResidualUnit(H, 3),
    "EquivariantDownsample": lambda: equivox.nn.EquivariantDownsample(2, H),
    "EquivariantUpsample": lambda: equivox.nn.EquivariantUpsample(2, "trilinear", H),
    "FieldNormAct": lambda: equivox.nn.FieldNormAct(G, 2, "instance", "elu"),
    "InvariantPooling": lambda: equivox.nn.InvariantPooling(G, 2),
    "GroupStatsHead": lambda: equivox.nn.GroupStatsHead(H, 3),
    "ClassSwapHead": lambda: equivox.nn.ClassSwapHead(FieldSpec.hidden("full_octa", 1), 3, [(1, 2)], 2),
    "EquivariantEncoder": lambda: equivox.nets.EquivariantEncoder(**NET),
    "EquivariantFeatureExtractor": lambda: equivox.nets.EquivariantFeatureExtractor(**NET),
    "EquivariantUNet": lambda: equivox.nets.EquivariantUNet(out_channels=3, **NET),
    "EquivariantMonaiUNet": lambda: equivox.nets.EquivariantMonaiUNet(out_channels=3, num_res_units=1, **NET),
    "InvariantClassifier": lambda: equivox.nets.InvariantClassifier(out_channels=3, **NET),
    "EquivariantConvolution": lambda: equivox.nets.EquivariantConvolution(3, 1, 2, group=G, strides=2),
    "EquivariantResidualUnit": lambda: equivox.nets.EquivariantResidualUnit(3, 2, 2, group=G, in_fields="hidden"),
    "EquivariantHead": lambda: equivox.nets.EquivariantHead(3, 2, 3, group=G),
}
#: public classes that are not layers, with the reason
NOT_LAYERS = {
    "FieldSpec": "a field type (data)",
    "EquivarianceError": "an error",
    "EquivariantModule": "the base class itself",
    "CanonicalPose": "a pose normaliser: its output is the same only up to a cube rotation, so no group action "
                     "on its output exists to check (tested in tests/nn/test_canonical.py)",
}

#: layers that hold escnn bases or field bookkeeping and must not survive an export
ESCNN_LAYERS = (equivox.nn.EquivariantConv3d, equivox.nn.FieldNormAct, equivox.nn.InvariantPooling,
                equivox.nn.GroupStatsHead, equivox.nn.ClassSwapHead)


def _public_classes():
    out = {}
    for mod in (equivox.nn, equivox.nets):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isclass(obj):
                out[name] = obj
    return out


def test_every_public_class_has_a_builder_or_a_reason():
    missing = sorted(set(_public_classes()) - set(BUILD) - set(NOT_LAYERS))
    assert not missing, f"public classes without a contract test: {missing}"


def _as_list(y):
    return list(y) if isinstance(y, (list, tuple)) else [y]


@pytest.mark.parametrize("name", sorted(BUILD))
def test_public_class_keeps_the_contract(name, trained):
    torch.manual_seed(0)
    m = BUILD[name]()
    assert isinstance(m, _public_classes()[name]) and isinstance(m, EquivariantModule)
    assert m.in_spec is not None and (m.out_spec is not None or getattr(m, "out_specs", None))
    m = trained(m, seed=1, copy=False)
    errors = m.check_equivariance()
    assert len(errors) >= len(m.in_spec.group_obj.grid_elements)
    x = torch.randn(2, m.in_spec.size, 8, 8, 8, generator=torch.Generator().manual_seed(2))
    plain = m.export()
    assert not any(isinstance(p, ESCNN_LAYERS) for p in plain.modules())
    leaves = {type(p) for p in plain.modules() if not list(p.children())}
    assert all(t.__module__.startswith("torch.nn") or issubclass(t, PlainModule) for t in leaves), leaves
    with torch.no_grad():
        ref, out = _as_list(m(x)), _as_list(plain(x))
    assert len(ref) == len(out)
    for a, b in zip(ref, out):
        assert a.shape == b.shape
        assert (a - b).abs().max() <= 1e-5 * max(1.0, float(a.abs().max())), name
    shape = m.evaluate_output_shape(x.shape)
    assert shape == (tuple(ref[0].shape) if len(ref) == 1 else tuple(tuple(r.shape) for r in ref))

