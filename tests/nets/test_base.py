"""equivox.nets.base: EquivariantNetwork, the base of every equivox network: MONAI-style constructor checks with
clear messages, the constructor arguments recorded (so a directly built network can be checkpointed and rebuilt),
size_multiple and tensor_channels, and one input validator."""
from __future__ import annotations

import pytest
import torch

from equivox.nets import EquivariantMonaiUNet, EquivariantUNet, InvariantClassifier
from equivox.nets.base import EquivariantNetwork


@pytest.mark.parametrize("cls", [EquivariantUNet, InvariantClassifier, EquivariantMonaiUNet])
def test_every_network_is_one_and_records_its_constructor_arguments(cls):
    """A network built directly (positional and keyword arguments) gives a spec that rebuilds the same network."""
    from equivox.nets.registry import build_from_spec, spec_of

    torch.manual_seed(0)
    net = cls(3, 1, 2, channels=(1, 2), strides=(2,), group="c4_axial").eval()
    assert isinstance(net, EquivariantNetwork)
    spec = spec_of(net)
    assert spec["cls"] == cls.__name__
    assert {k: spec["kwargs"][k] for k in ("in_channels", "out_channels", "channels", "group")} == dict(
        in_channels=1, out_channels=2, channels=[1, 2], group="c4_axial")
    rebuilt = build_from_spec(spec)
    rebuilt.load_state_dict(net.state_dict())
    x = torch.randn(1, 1, 4, 4, 4)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), net(x))


def test_size_multiple_and_tensor_channels():
    net = EquivariantUNet(3, 1, 2, channels=(1, 2, 3), strides=(2, 3), group="octa")
    assert net.size_multiple == 6
    assert net.tensor_channels == (24, 48, 72)
    with pytest.raises(ValueError, match="not divisible by 6"):
        net(torch.zeros(1, 1, 6, 6, 8))


@pytest.mark.parametrize("kwargs, match", [
    (dict(spatial_dims=2), "spatial_dims must be 3, got 2"),
    (dict(in_channels=0), "in_channels must be a positive int, got 0"),
    (dict(out_channels=1.5), "out_channels must be a positive int, got 1.5"),
    (dict(channels=()), "channels must be a non-empty sequence of positive field counts"),
    (dict(channels=(2, 0)), "channels must be a non-empty sequence of positive field counts"),
    (dict(strides=(2, 2)), r"strides must have 1 entries for channels=\(2, 2\)"),
    (dict(strides=(0,)), "strides must be positive integers"),
    (dict(group="octahedral"), "unknown group"),
])
def test_constructor_checks_name_the_argument(kwargs, match):
    args = dict(spatial_dims=3, in_channels=1, out_channels=2, channels=(2, 2), strides=(2,), group="octa",
                expected_strides=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        EquivariantNetwork._check_args(**args)


def test_checks_return_the_arguments_as_int_tuples():
    channels, strides = EquivariantNetwork._check_args(3, 1, 2, [2.0, 3], [2], "octa", expected_strides=1)
    assert channels == (2, 3) and strides == (2,)
