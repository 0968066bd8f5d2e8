"""Axial groups (rotations that keep one slice axis), group choice from voxel spacing, user-registered groups.

Group actions are written here with ``torch.rot90`` and ``torch.flip`` on tensor axes, independently of equivox.
"""
import warnings

import pytest
import torch

from equivox.groups import auto_group, check_spacing, exact_groups_for_spacing, get_group
from equivox.nets import EquivariantUNet, InvariantClassifier
from equivox.testing import assert_equivariant


def _quarter_turn(axis):
    """A 90-degree rotation about tensor axis ``axis`` (0 = D, 1 = H, 2 = W) of (B, C, D, H, W) tensors."""
    plane = tuple(2 + a for a in range(3) if a != axis)
    return lambda t: torch.rot90(t, 1, plane)


def _half_turn_in_plane(axis):
    """A half turn about an in-plane axis: reverses the slice axis and one in-plane axis."""
    other = next(a for a in range(3) if a != axis)
    return lambda t: torch.flip(t, (2 + axis, 2 + other))


CASES = [("c4_axial", 2, (16, 16, 8)), ("d4_axial", 2, (16, 16, 8)), ("c4_axial_d", 0, (8, 16, 16)),
         ("d4_axial_d", 0, (8, 16, 16)), ("d4_axial_h", 1, (16, 8, 16))]


@pytest.mark.parametrize("name,axis,shape", CASES)
def test_axial_unet_is_exact_on_anisotropic_shapes(name, axis, shape):
    torch.manual_seed(0)
    net = EquivariantUNet(channels=(2, 4), strides=(2,), group=name, out_channels=3).eval()
    x = torch.randn(2, 1, *shape)
    errors = assert_equivariant(net, x)  # every element of the group, on the anisotropic shape
    assert len(errors) == (8 if name.startswith("d4") else 4)
    # the group's elements are the turns about the slice axis written here with torch.rot90
    with torch.no_grad():
        turn, y = _quarter_turn(axis), net(x)
        assert (net(turn(x)) - turn(y)).abs().max() < 1e-4 * y.abs().max()
    # a quarter turn about another axis is not in the group: the check must fail there
    wrong = _quarter_turn((axis + 1) % 3)
    xc = torch.randn(2, 1, 16, 16, 16)
    yc = net(xc)
    assert (net(wrong(xc)) - wrong(yc)).abs().max() / yc.abs().max() > 1e-2


def test_axial_classifier_invariant_and_cheap():
    torch.manual_seed(0)
    clf = InvariantClassifier(channels=(2, 4), strides=(2,), group="d4_axial").eval()
    x = torch.randn(3, 1, 16, 16, 8)
    y = clf(x)
    assert_equivariant(clf, x)
    assert (clf(_half_turn_in_plane(2)(x)) - y).abs().max() < 1e-4 * y.abs().max()  # written here
    assert get_group("d4_axial").field_size == 8 and get_group("c4_axial").field_size == 4
    plain = clf.export()
    assert (plain(x) - y).abs().max() < 1e-4


def test_auto_group_and_spacing_checks():
    assert auto_group((1.0, 1.0, 1.0))[0] == "octa"
    name, why = auto_group((0.7, 0.7, 5.0))
    assert name == "d4_axial" and "W" in why
    assert auto_group((5.0, 0.7, 0.7))[0] == "d4_axial_d"
    assert auto_group((0.7, 5.0, 0.7))[0] == "d4_axial_h"
    assert auto_group((1.0, 2.0, 3.0))[0] == "trivial"
    exact = exact_groups_for_spacing((0.7, 0.7, 5.0))
    assert "octa" not in exact and "c4_axial" in exact and "c4_axial_d" not in exact
    with pytest.warns(UserWarning, match=r"octa.*0\.7, 0\.7, 5\.0.*d4_axial"):
        check_spacing("octa", (0.7, 0.7, 5.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_spacing("d4_axial", (0.7, 0.7, 5.0))
        check_spacing("octa", (2.0, 2.0, 2.0))


def test_custom_group_example_registers_builds_and_exports():
    import runpy
    from pathlib import Path

    from equivox.groups import GROUPS, _INSTANCES

    try:
        mod = runpy.run_path(str(Path(__file__).resolve().parents[1] / "examples" / "custom_group.py"))
        results = mod["main"]()
        assert "my_c2_about_w" in GROUPS  # the package source never names it: it came from the example
    finally:  # keep the registry as other tests expect it
        GROUPS.pop("my_c2_about_w", None)
        _INSTANCES.pop("my_c2_about_w", None)
    for name in ("EquivariantUNet", "InvariantClassifier"):
        assert results[name]["equivariance_error"] < 1e-4 and results[name]["export_diff"] < 1e-4


def test_training_config_group_auto_and_spacing_warning():
    from equivox.training import TrainConfig, build_model

    base = dict(task="segment", channels=(2, 2), strides=(2,))
    model = build_model(TrainConfig(**base, group="auto", spacing=(0.7, 0.7, 5.0)), 1, 3)
    assert model.group == "d4_axial"
    with pytest.raises(ValueError, match="spacing"):
        build_model(TrainConfig(**base, group="auto"), 1, 3)
    with pytest.warns(UserWarning, match=r"'octa' is not exact for voxel spacing \(0\.7, 0\.7, 5\.0\)"):
        build_model(TrainConfig(**base, group="octa", spacing=(0.7, 0.7, 5.0)), 1, 3)
