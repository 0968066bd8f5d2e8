"""equivox.testing: the voxel and field actions it uses are checked against torch.rot90 / flips and the group law
written here; assert_equivariant passes on equivariant modules (hidden outputs too) and fails, naming the element,
on a module that is not."""
import numpy as np
import pytest
import torch

from equivox.groups import get_group
from equivox.nn import EquivariantConv3d, EquivariantConvBlock, FieldNormAct, FieldSpec
from equivox.testing import TOLERANCES, assert_equivariant, equivariance_errors, field_action, voxel_action

X = torch.randn(1, 2, 4, 5, 6, generator=torch.Generator().manual_seed(0))
# a quarter turn in each plane and a reflection, written with torch.rot90 / torch.flip on (B, C, D, H, W)
INDEPENDENT = {
    "rot90_DH": lambda t: torch.rot90(t, 1, (2, 3)),
    "rot90_HW": lambda t: torch.rot90(t, 1, (3, 4)),
    "rot90_DW": lambda t: torch.rot90(t, 1, (2, 4)),
    "inversion": lambda t: torch.flip(t, (2, 3, 4)),
}


@pytest.mark.parametrize("name", sorted(INDEPENDENT))
def test_voxel_action_matches_rot90_and_flip_for_one_element_of_full_octa(name):
    want = INDEPENDENT[name](X)
    matches = [g.name for g in get_group("full_octa").grid_elements
               if voxel_action(g, X).shape == want.shape and torch.equal(voxel_action(g, X), want)]
    assert len(matches) == 1, matches


def test_voxel_action_agrees_with_grid_element_apply_on_every_element():
    for g in get_group("full_octa").grid_elements:
        assert torch.equal(voxel_action(g, X), g.apply(X)), g.name


@pytest.mark.parametrize("group", ["octa", "so3", "c4_axial_d"])
def test_field_action_is_a_representation_of_the_grid_elements(group):
    """rho(g) rho(h) == rho(gh), with gh found by multiplying the 3x3 matrices written here."""
    grp = get_group(group)
    spec = FieldSpec.hidden(group, 1) + FieldSpec.scalar(group, 1)
    els = grp.grid_elements
    by_matrix = {g.matrix: g for g in els}
    for g in els[1:4]:
        for h in els[2:5]:
            gh = by_matrix[tuple(tuple(int(v) for v in row) for row in np.array(g.matrix) @ np.array(h.matrix))]
            lhs = field_action(spec, g) @ field_action(spec, h)
            assert torch.allclose(lhs, field_action(spec, gh), atol=1e-6), (g.name, h.name)
    assert torch.allclose(field_action(spec, els[0]), torch.eye(spec.size, dtype=torch.float64), atol=1e-12)


def test_assert_equivariant_checks_hidden_outputs_and_float64_tolerance():
    conv = EquivariantConv3d(FieldSpec.hidden("octa", 1), FieldSpec.hidden("octa", 1))
    errors = assert_equivariant(conv)
    assert len(errors) == 24 and max(e.relative for e in errors) < TOLERANCES[torch.float32]
    errors = assert_equivariant(conv.double())
    assert max(e.relative for e in errors) < TOLERANCES[torch.float64]
    assert_equivariant(FieldNormAct("so3", 2))


def test_a_hidden_output_transformed_by_voxels_alone_would_fail():
    """The channel action matters: with rho(g) dropped the same conv is far from 'equivariant'."""
    conv = EquivariantConv3d(FieldSpec.scalar("octa", 1), FieldSpec.hidden("octa", 1))
    g = get_group("octa").grid_elements[3]
    x = torch.randn(1, 1, 6, 6, 6)
    with torch.no_grad():
        y, y_rot = conv(x), conv(voxel_action(g, x))
    assert (y_rot - voxel_action(g, y)).abs().max() > 1e-2 * y.abs().max()
    rho = field_action(conv.out_spec, g).float()
    assert torch.allclose(y_rot, torch.einsum("ij,bj...->bi...", rho, voxel_action(g, y)), atol=1e-5)


class PlainConvInside(EquivariantConvBlock):
    """An equivox block whose first convolution was swapped for a plain nn.Conv3d (not equivariant)."""

    def __init__(self):
        super().__init__(FieldSpec.scalar("octa", 1), 1, n_convs=1)
        self.layers[0] = torch.nn.Conv3d(1, 24, 3, padding=1)


def test_assert_equivariant_fails_naming_the_element_output_and_error():
    with pytest.raises(AssertionError, match=r"PlainConvInside is not equivariant under rotation \[[-dhw,]+\] of "
                                             r"group 'octa': output 0 .*relative .* > tolerance 1\.0e-04"):
        assert_equivariant(PlainConvInside())
    with pytest.raises(AssertionError, match="not equivariant"):
        PlainConvInside().check_equivariance()


def test_assert_equivariant_needs_field_types():
    with pytest.raises(ValueError, match="has no in_spec"):
        assert_equivariant(torch.nn.Conv3d(1, 1, 3))
    # a plain model on scalar fields is checked with the elements named: a random 3x3x3 kernel is not rotation
    # equivariant, a 1x1x1 one is
    x = torch.randn(1, 1, 6, 6, 6)
    with pytest.raises(AssertionError, match=r"Conv3d is not equivariant under rotation"):
        assert_equivariant(torch.nn.Conv3d(1, 1, 3, padding=1), x, "octa")
    assert_equivariant(torch.nn.Conv3d(1, 2, 1), x, "octa")


def test_equivariance_check_runs_without_tf32_and_restores_the_flags():
    """TF32 convolutions (cuDNN's default on recent GPUs) gave 4.7e-4 relative error on an H200: above the float32
    tolerance for an exactly equivariant model. The check turns TF32 off while the model runs, then restores it."""
    conv_flags = getattr(torch.backends.cudnn, "conv", None)
    new_api = conv_flags is not None and hasattr(conv_flags, "fp32_precision")
    obj, name, off = (conv_flags, "fp32_precision", "ieee") if new_api else (torch.backends.cudnn, "allow_tf32", False)
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, x):
            seen.append(getattr(obj, name))
            return x

    before = getattr(obj, name)
    assert before != off  # torch's default is TF32 for cuDNN convolutions
    errors = equivariance_errors(Recorder(), torch.randn(1, 1, 4, 4, 4))
    assert max(e.relative for e in errors) == 0
    assert seen and set(seen) == {off}
    assert getattr(obj, name) == before


def test_library_checker_agrees_on_irreps_layers():
    """assert_equivariant (escnn representations of the fields) passes on irreps layers too: the fields' escnn
    representations act as e3nn's D (tests/irreps/test_bridge.py checks that directly)."""
    torch.manual_seed(0)
    h = FieldSpec.hidden("o3_irreps", 2)
    assert_equivariant(EquivariantConv3d(FieldSpec.scalar("o3_irreps", 1), h, 3), size=5)
    assert_equivariant(FieldNormAct("o3_irreps", 2, "batch", "elu"), size=3)
