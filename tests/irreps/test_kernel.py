"""equivox.irreps.kernel: the spherical-harmonic kernel basis makes EquivariantConv3d equivariant between scalar
and irreps fields for every kernel size, and holds exactly the allowed Clebsch-Gordan paths (parity under O(3)).

The cube elements act on voxels by compositions of ``torch.rot90`` (and the inversion ``flip``), on hidden
features by ``e3nn.o3.Irreps.D_from_matrix`` with e3nn's (x, y, z) = the tensor axes (D, H, W): conftest's
``e3nn_equivariance_error``; ``irreps_hidden(n)``: n hidden fields ``2x0e+2x0e+1x1o+1x2e``.
"""
from __future__ import annotations

import pytest
import torch
from e3nn import o3

from equivox.nn import EquivariantConv3d, FieldSpec

GROUPS = ["so3_irreps", "o3_irreps"]


def test_written_elements_are_the_cube_group(cube_ops_with_matrices):
    """The elements the e3nn checks use (conftest): 48 distinct orthogonal integer matrices."""
    els = cube_ops_with_matrices(True)
    mats = {tuple(m.flatten().tolist()) for _, m in els}
    assert len(mats) == 48 and all(abs(abs(torch.linalg.det(m)) - 1) < 1e-9 for _, m in els)


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("pair,k", [("scalar-hidden", 3), ("hidden-hidden", 3), ("hidden-scalar", 3),
                                    ("hidden-hidden", 5), ("hidden-hidden", 1)])
def test_conv_is_equivariant(group, pair, k, e3nn_equivariance_error, irreps_hidden):
    torch.manual_seed(0)
    a, b = pair.split("-")
    spec = {"scalar": lambda n: FieldSpec.scalar(group, n), "hidden": lambda n: FieldSpec.hidden(group, n)}
    irreps = {"scalar": lambda n: o3.Irreps(f"{n}x0e"), "hidden": irreps_hidden}
    conv = EquivariantConv3d(spec[a](2), spec[b](2), k)
    assert conv.in_channels == irreps[a](2).dim and conv.out_channels == irreps[b](2).dim
    x = torch.randn(1, conv.in_channels, 5, 5, 5)
    with torch.no_grad():
        assert e3nn_equivariance_error(conv, x, irreps[a](2), irreps[b](2), group) < 1e-4


def test_kernel_basis_paths():
    """1x1x1 kernels hold only l_filter = 0 paths (no vector -> scalar), 3x3x3 ones the Clebsch-Gordan paths;
    O(3) drops the parity-violating ones (e.g. a vector to a vector through l_filter = 1)."""
    from equivox.groups import get_group
    from equivox.nn.conv import pair_basis

    for name in GROUPS:
        g = get_group(name)
        one = pair_basis(name, g.hidden_repr, g.hidden_repr, 1)["basis"]
        assert one.shape[1:] == (12, 12, 1)
        assert one[:, :4, 4:7].abs().max() == 0 and one[:, 4:7, 7:].abs().max() == 0
    so3 = pair_basis("so3_irreps", get_group("so3_irreps").hidden_repr, get_group("so3_irreps").hidden_repr, 3)
    o3_ = pair_basis("o3_irreps", get_group("o3_irreps").hidden_repr, get_group("o3_irreps").hidden_repr, 3)
    assert so3["basis"].shape[0] > o3_["basis"].shape[0] > 0
    vv = o3_["basis"][:, 4:7, 4:7]  # vector -> vector: only l_filter 0 and 2 under O(3): even in the offset
    k = vv.reshape(-1, 3, 3, 3, 3, 3)
    assert torch.allclose(k, k.flip(3, 4, 5), atol=1e-6)
    assert so3["bias"].shape == (12, 4)  # bias on the four 0e channels (scalars and gates)
