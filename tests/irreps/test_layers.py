"""equivox.irreps.layers: the irreps batch / instance norm and the gate are equivariant in train and eval, agree
with e3nn's Gate and BatchNorm, and a gate with its roles swapped is caught.

The cube elements act on voxels by compositions of ``torch.rot90`` (and the inversion ``flip``), on hidden
features by ``e3nn.o3.Irreps.D_from_matrix`` with e3nn's (x, y, z) = the tensor axes (D, H, W): conftest's
``e3nn_equivariance_error``; ``irreps_hidden(n)``: n hidden fields ``2x0e+2x0e+1x1o+1x2e``.
"""
from __future__ import annotations

import pytest
import torch

from equivox.nn import FieldNormAct

#: one hidden field of both irreps groups, written out: 2 scalars, 2 gates, a vector, an l=2 irrep
FIELD = "2x0e+2x0e+1x1o+1x2e"
GROUPS = ["so3_irreps", "o3_irreps"]


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("norm", ["batch", "instance", None])
def test_norm_and_gate_are_equivariant_in_train_and_eval(group, norm, e3nn_equivariance_error, irreps_hidden):
    torch.manual_seed(0)
    layer = FieldNormAct(group, 2, norm, "elu")
    x = torch.randn(2, irreps_hidden(2).dim, 3, 3, 3) * 2 + 0.5
    with torch.no_grad():
        for train in (True, False):
            layer.train(train)
            assert e3nn_equivariance_error(layer, x, irreps_hidden(2), irreps_hidden(2), group) < 1e-4
        if norm == "batch":  # running statistics were used in eval: they moved away from their initial values
            assert layer.norm.running_var.sub(1).abs().max() > 1e-3


def test_gate_equals_e3nn_gate():
    """Our gate on (B, C, D, H, W) gives e3nn.nn.Gate's output (channels last), plus the sigmoid gates. e3nn scales
    each activation to unit second moment (``normalize2mom``); ours does not (a norm follows): constants divided out."""
    from e3nn.math import normalize2mom
    from e3nn.nn import Gate

    torch.manual_seed(0)
    layer = FieldNormAct("so3_irreps", 1, None, "elu")
    gate = Gate("2x0e", [torch.nn.functional.elu], "2x0e", [torch.sigmoid], "1x1o+1x2e")
    c_act, c_gate = normalize2mom(torch.nn.functional.elu).cst, normalize2mom(torch.sigmoid).cst
    x = torch.randn(2, 12, 3, 3, 3)
    with torch.no_grad():
        ours = layer(x).permute(0, 2, 3, 4, 1)
        theirs = gate(x.permute(0, 2, 3, 4, 1))
    assert torch.allclose(ours[..., :2] * c_act, theirs[..., :2], atol=1e-5)
    assert torch.allclose(ours[..., 4:] * c_gate, theirs[..., 2:], atol=1e-5)
    assert torch.allclose(ours[..., 2:4], torch.sigmoid(x.permute(0, 2, 3, 4, 1)[..., 2:4]), atol=1e-6)


def test_batch_norm_equals_e3nn_batch_norm(irreps_hidden):
    from e3nn.nn import BatchNorm

    torch.manual_seed(0)
    layer = FieldNormAct("o3_irreps", 2, "batch", None).train()
    ref = BatchNorm(irreps_hidden(2), normalization="component").train()
    x = torch.randn(2, irreps_hidden(2).dim, 4, 4, 4) * 3 + 1
    with torch.no_grad():
        ours = layer(x)
        theirs = ref(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()


@pytest.mark.parametrize("group", GROUPS)
def test_gate_with_roles_swapped_fails_the_check(group, e3nn_equivariance_error, irreps_hidden):
    """The activation on the l>0 channels and the gates on the scalars: not equivariant, and the check says so."""
    from equivox.irreps.layers import FieldLayout, IrrepsGate, field_layout

    good = field_layout(FIELD)
    swapped = FieldLayout(good.dim, good.instance, good.instance_dims, good.scalars, act=good.gated,
                          gates=good.gates, gated=good.act, gate_of=[0] * len(good.act))
    x = torch.randn(2, 2 * good.dim, 3, 3, 3)
    h = irreps_hidden(2)
    with torch.no_grad():
        assert e3nn_equivariance_error(IrrepsGate(good, 2, "elu"), x, h, h, group) < 1e-5
        assert e3nn_equivariance_error(IrrepsGate(swapped, 2, "elu"), x, h, h, group) > 1e-2
