"""Cheaper hidden fields: quotient representations of octa (6 face / 8 vertex directions per field)."""
import pytest
import torch

from equivox.groups import get_group
from equivox.nets import EquivariantUNet, InvariantClassifier
from equivox.testing import assert_equivariant

ROT = [lambda t: torch.rot90(t, 1, dims=(-2, -1)), lambda t: torch.rot90(t, 1, dims=(-3, -2)),
       lambda t: torch.rot90(torch.rot90(t, 1, dims=(-3, -1)), 2, dims=(-2, -1))]


@pytest.mark.parametrize("group, size", [("octa_faces", 6), ("octa_vertices", 8)])
def test_quotient_fields_are_exact_cheaper_and_export(group, size):
    g = get_group(group)
    assert g.field_size == size and len(g.grid_elements) == 24
    torch.manual_seed(0)
    unet = EquivariantUNet(in_channels=1, out_channels=3, channels=(2, 2), strides=(2,), group=group).eval()
    clf = InvariantClassifier(in_channels=1, out_channels=3, channels=(2, 2), strides=(2,), group=group).eval()
    assert unet.tensor_channels == (2 * size, 2 * size)
    x = torch.randn(2, 1, 8, 8, 8)
    assert_equivariant(unet, x)  # all 24 grid elements
    assert_equivariant(clf, x)
    with torch.no_grad():
        y, p = unet(x), clf(x)
        assert torch.allclose(unet.export()(x), y, atol=1e-5) and torch.allclose(clf.export()(x), p, atol=1e-5)


def test_quotient_fields_are_not_invariant_to_what_the_octa_field_sees():
    """A plain-trained net on the same code path is not equivariant: the check above can fail."""
    torch.manual_seed(0)
    net = EquivariantUNet(in_channels=1, out_channels=3, channels=(2, 2), strides=(2,), group="trivial").eval()
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        y = net(x)
        assert (net(ROT[0](x)) - ROT[0](y)).abs().max() / y.abs().max() > 1e-2
