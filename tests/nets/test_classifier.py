"""equivox.nets.classifier: InvariantClassifier's logits are exactly invariant under every grid element of every
group (axial groups on anisotropic shapes too; rotations also written here with torch.rot90 / torch.flip), with
both pooling modes, under MONAI's eval_mode; it exports, and refuses inputs of the wrong shape. A trivial-group
classifier is not invariant (the check can fail)."""
import pytest
import torch
from monai.networks import eval_mode

from equivox.groups import GROUPS as REGISTRY, cube_rotations, get_group
from equivox.nets import InvariantClassifier
from equivox.testing import assert_equivariant, equivariance_errors, format_error_table

# Relative error bound (max |f(gx) - f(x)| / max |f(x)|); measured ~1e-6 (float32 rounding) for every group.
EXACT_BOUND = 1e-4
# every registered isotropic group (octa, full_octa, ico, full_ico, so3, o3)
ISOTROPIC = [n for n, s in REGISTRY.items() if s.exact_spacing == "isotropic"]


def _half_turn_in_plane(axis):
    """A half turn about an in-plane axis: reverses the slice axis and one in-plane axis."""
    other = next(a for a in range(3) if a != axis)
    return lambda t: torch.flip(t, (2 + axis, 2 + other))


@pytest.mark.parametrize("pooling", ["group", "norm"])
def test_classifier_pooling_modes_export(pooling):
    torch.manual_seed(0)
    clf = InvariantClassifier(channels=(2, 2), strides=(2,), group="octa", pooling=pooling).eval()
    x = torch.randn(2, 1, 8, 8, 8)
    y = clf(x)
    assert (clf(torch.rot90(x, 1, (2, 4))) - y).abs().max() < 1e-4 * y.abs().max()
    assert (clf.export()(x) - y).abs().max() < 1e-4


@pytest.mark.parametrize("group", ISOTROPIC)
def test_classifier_logits_invariant_under_every_grid_element(group, small_model, cube_input, trained):
    model = trained(small_model("clf", group))
    errors = assert_equivariant(model, cube_input, rtol=EXACT_BOUND)
    print(format_error_table(errors, f"InvariantClassifier[{group}]"))


def test_trivial_group_classifier_is_not_invariant(small_model, cube_input, trained):
    model = trained(small_model("clf", "trivial"))
    errors = equivariance_errors(model, cube_input, elements=cube_rotations())
    assert errors[0].relative == 0.0  # identity
    assert max(e.relative for e in errors[1:]) > 1e-2


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


def test_classifier_invariant_under_eval_mode(small_model, cube_input):
    net = small_model("clf", "octa")
    with eval_mode(net):
        y = net(cube_input)
        assert y.shape == (2, 3)
    assert_equivariant(net, cube_input, get_group("octa").grid_elements[::5])  # (B, K): invariant logits


def test_wrong_input_shapes_are_refused(small_model):
    model = small_model("clf", "octa").eval()
    with pytest.raises(ValueError, match="in_channels=1"):
        model(torch.randn(1, 2, 8, 8, 8))
    with pytest.raises(ValueError, match="5D tensor"):
        model(torch.randn(1, 8, 8, 8))
