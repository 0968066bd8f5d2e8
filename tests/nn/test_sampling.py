"""equivox.nn.sampling: down- and upsampling commute with the cube rotations (torch.rot90 / flip, written here) on
sizes that follow the size rules, per-axis factors with the rotations that keep them; sizes that break the rules
are refused instead of giving a non-equivariant result; the export computes the same function."""
from __future__ import annotations

import pytest
import torch

from equivox.nn import EquivarianceError, EquivariantDownsample, EquivariantUpsample
from equivox.nn.sampling import check_divisible


def test_downsampling_commutes_with_every_cube_symmetry(cube_symmetry_ops):
    down = EquivariantDownsample(2)
    x = torch.randn(1, 3, 8, 8, 8)
    y = down(x)
    assert y.shape == (1, 3, 4, 4, 4)
    for op, _ in cube_symmetry_ops:
        assert torch.allclose(down(op(x)), op(y), atol=1e-6)


@pytest.mark.parametrize("mode", ["trilinear", "nearest"])
def test_upsampling_commutes_with_every_cube_symmetry_for_any_size(mode, cube_symmetry_ops):
    up = EquivariantUpsample(2, mode)
    x = torch.randn(1, 2, 5, 5, 5)  # odd: interpolation is symmetric about the grid centre for every size
    y = up(x)
    assert y.shape == (1, 2, 10, 10, 10)
    for op, _ in cube_symmetry_ops:
        assert torch.allclose(up(op(x)), op(y), atol=1e-5)


def test_per_axis_factors_commute_with_the_turns_that_keep_them():
    """Factors (1, 2, 2): quarter turns in the (H, W) plane keep them; a quarter turn in (D, H) does not."""
    down, up = EquivariantDownsample((1, 2, 2)), EquivariantUpsample((1, 2, 2))
    x = torch.randn(1, 1, 4, 8, 8)
    turn = lambda t: torch.rot90(t, 1, (3, 4))  # noqa: E731
    assert down(x).shape == (1, 1, 4, 4, 4) and up(x).shape == (1, 1, 4, 16, 16)
    assert torch.allclose(down(turn(x)), turn(down(x)), atol=1e-6)
    assert torch.allclose(up(turn(x)), turn(up(x)), atol=1e-5)
    cube = torch.randn(1, 1, 8, 8, 8)
    wrong = lambda t: torch.rot90(t, 1, (2, 3))  # noqa: E731
    assert down(wrong(cube)).shape != wrong(down(cube)).shape


def test_sizes_that_break_the_rule_are_refused():
    with pytest.raises(EquivarianceError, match="not divisible by 2"):
        EquivariantDownsample(2)(torch.randn(1, 1, 8, 7, 8))
    with pytest.raises(EquivarianceError, match=r"\(3, 4, 6\) is not divisible by \(1, 2, 4\)"):
        check_divisible((3, 4, 6), (1, 2, 4))
    check_divisible((3, 4, 8), (1, 2, 4))  # divisible: no error
    with pytest.raises(ValueError, match="upsampling mode must be 'trilinear' or 'nearest'"):
        EquivariantUpsample(2, "bicubic")


def test_factor_one_is_the_identity_and_exports_compute_the_same():
    x = torch.randn(1, 2, 4, 6, 8)
    assert EquivariantDownsample(1)(x) is x and EquivariantUpsample(1)(x) is x
    for layer in (EquivariantDownsample(2), EquivariantDownsample((1, 2, 2)), EquivariantUpsample(2),
                  EquivariantUpsample((1, 2, 2), "nearest")):
        plain = layer.export()
        assert not isinstance(plain, (EquivariantDownsample, EquivariantUpsample))
        assert torch.allclose(plain(x), layer(x), atol=1e-6), layer
