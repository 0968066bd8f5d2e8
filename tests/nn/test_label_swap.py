"""equivox.nn.label_swap: label-permuting equivariance: left/right classes swap under reflections, exactly (actions
written here with torch.flip / torch.rot90), through the class-swap head of the U-Net; class swaps are validated;
the model exports to plain torch. (Evaluation under improper rotations: tests/evaluation/test_segmentation.py.)"""
import pytest
import torch

from equivox.nets import EquivariantUNet
from equivox.nn import class_permutation, permute_labels
from equivox.testing import assert_equivariant

SWAP = [0, 2, 1]  # background stays, classes 1 and 2 (left, right) swap

# improper elements written independently of equivox: mirror of one axis, inversion, rotation then mirror
IMPROPER = {
    "mirror W": lambda t: torch.flip(t, dims=[-1]),
    "mirror D": lambda t: torch.flip(t, dims=[-3]),
    "inversion": lambda t: torch.flip(t, dims=[-3, -2, -1]),
    "rot90(D,H) then mirror H": lambda t: torch.flip(torch.rot90(t, 1, dims=(-3, -2)), dims=[-2]),
}
PROPER = {
    "rot90(H,W)": lambda t: torch.rot90(t, 1, dims=(-2, -1)),
    "rot180(D,W)": lambda t: torch.rot90(t, 2, dims=(-3, -1)),
}


def _net(class_swaps, seed=0):
    torch.manual_seed(seed)
    return EquivariantUNet(in_channels=1, out_channels=3, channels=(2, 2), strides=(2,), group="full_octa",
                           class_swaps=class_swaps).eval()


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(1)
    return torch.randn(2, 1, 8, 8, 8)


@torch.no_grad()
def test_swap_model_permutes_classes_under_reflections_only(x):
    net = _net([(1, 2)])
    errors = assert_equivariant(net, x)  # all 48 elements; the head's class_permutation under improper ones
    assert len(errors) == 48
    ref = net(x)
    scale = ref.abs().max()
    for name, act in IMPROPER.items():  # the same, with the actions written here
        err = (net(act(x)) - act(ref)[:, SWAP]).abs().max() / scale
        assert err < 1e-4, f"{name}: {err}"
    for name, act in PROPER.items():
        err = (net(act(x)) - act(ref)).abs().max() / scale
        assert err < 1e-4, f"{name}: {err}"


@torch.no_grad()
def test_model_without_permutation_fails_the_swap_check(x):
    net = _net(None)  # invariant logits: a mirror image gets the same classes
    ref = net(x)
    flipped = IMPROPER["mirror W"]
    assert (net(flipped(x)) - flipped(ref)).abs().max() / ref.abs().max() < 1e-4
    assert (net(flipped(x)) - flipped(ref)[:, SWAP]).abs().max() / ref.abs().max() > 1e-2


@torch.no_grad()
def test_swap_model_distinguishes_a_structure_from_its_mirror_image():
    net = _net([(1, 2)])
    torch.manual_seed(3)
    x = torch.randn(1, 1, 8, 8, 8)
    y, ym = net(x), net(torch.flip(x, dims=[-1]))
    # left-vs-right evidence changes sign under the mirror: the pair's logit difference flips
    diff, diff_m = y[:, 1] - y[:, 2], torch.flip(ym[:, 2] - ym[:, 1], dims=[-1])
    assert torch.allclose(diff, diff_m, atol=1e-4 * y.abs().max())
    assert diff.abs().max() > 1e-3


def test_class_swap_validation():
    assert class_permutation([(1, 2)], 4) == (0, 2, 1, 3)
    assert torch.equal(permute_labels(torch.tensor([0, 1, 2, 3]), (0, 2, 1, 3)), torch.tensor([0, 2, 1, 3]))
    with pytest.raises(ValueError, match="disjoint"):
        class_permutation([(1, 2), (2, 3)], 4)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        class_permutation([(1, 3)], 3)
    with pytest.raises(ValueError, match="full_octa"):  # octa has no reflections: the error names groups that do
        EquivariantUNet(out_channels=3, channels=(2, 2), strides=(2,), group="octa", class_swaps=[(1, 2)])


def test_swap_model_exports_to_plain_torch(x):
    net = _net([(1, 2)])
    plain = net.export().eval()
    from equivox.core import PlainModule
    from equivox.nn import ClassSwapHead, EquivariantConv3d, FieldNormAct

    assert not any(isinstance(m, (ClassSwapHead, EquivariantConv3d, FieldNormAct)) for m in plain.modules())
    leaves = {type(m) for m in plain.modules() if not list(m.children())}
    assert all(t.__module__.startswith("torch.nn") or issubclass(t, PlainModule) for t in leaves), leaves
    with torch.no_grad():
        assert torch.allclose(plain(x), net(x), atol=1e-5)
        scripted = torch.jit.script(plain)
        assert torch.allclose(scripted(torch.flip(x, dims=[-1])), net(x).flip(-1)[:, SWAP], atol=1e-4)
