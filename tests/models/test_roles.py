"""equivox.models.roles: one registry of model roles; each role builds a network of the right kind, group and task
shapes; training, the harness and the timing scripts build the same network for the same recipe."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from equivox.baselines import count_parameters
from equivox.models import (ARCH_CHOICES, ModelRequest, arch_names, get_role, is_arch, network_class, register_role,
                            unregister_role)

SIZES = {"classify": dict(channels=[1, 2], strides=[2], convs_per_level=1, hidden_features=[4]),
         "segment": dict(channels=[1, 2], strides=[2], convs_per_level=1)}
X = torch.randn(2, 1, 8, 8, 8, generator=torch.Generator().manual_seed(0))


def _request(task, **kw):
    return ModelRequest(task, 1, 3, kw.pop("group", "octa"), SIZES[task], seed=kw.pop("seed", 0), **kw)


def _shape_ok(task, y):
    return tuple(y.shape) == ((2, 3) if task == "classify" else (2, 3, 8, 8, 8))


def test_network_class_answers_classifier_or_unet_once():
    assert network_class("classify") == "InvariantClassifier"
    assert network_class("segment") == "EquivariantUNet"
    with pytest.raises(ValueError, match="task must be one of classify, segment"):
        network_class("detect")
    with pytest.raises(ValueError, match="task must be one of"):
        ModelRequest("detect", 1, 2)


@pytest.mark.parametrize("task", ["classify", "segment"])
def test_equivariant_plain_twin_and_matched_compute_roles(task):
    """equivariant: the task's equivox network on the group; baseline: the same class on the trivial group at about
    its parameters; plain_compute: the same class on the trivial group at its tensor widths. All give the task's
    output shape."""
    ref = get_role("equivariant").build(_request(task))
    assert type(ref).__name__ == network_class(task) and ref.group == "octa"
    twin = get_role("baseline").build(_request(task))
    assert type(twin).__name__ == network_class(task) and twin.group == "trivial"
    assert abs(count_parameters(twin) - count_parameters(ref)) <= 0.1 * count_parameters(ref)
    compute = get_role("plain_compute").build(_request(task))
    assert compute.group == "trivial" and compute.tensor_channels == ref.tensor_channels
    assert count_parameters(compute) > 3 * count_parameters(twin)  # wider tensors, no weight sharing
    with torch.no_grad():
        for m in (ref, twin, compute):
            assert _shape_ok(task, m.eval()(X)), type(m).__name__


@pytest.mark.parametrize("task, kind", [("classify", "ResNet"), ("segment", "UNet")])
def test_monai_role_matches_the_reference_parameters(task, kind):
    ref = get_role("equivariant").build(_request(task))
    net = get_role("monai_unet" if task == "segment" else "monai").build(_request(task))
    assert type(net).__name__ == kind and type(net).__module__.startswith("monai.")
    assert abs(count_parameters(net) - count_parameters(ref)) <= 0.25 * count_parameters(ref)
    with torch.no_grad():
        assert _shape_ok(task, net.eval()(X))


def test_canonicalized_role_puts_the_plain_twin_behind_a_canonicalizer():
    from equivox.canonicalization import Canonicalized

    net = get_role("canonicalized").build(_request("classify", options=dict(channels=(1, 1), strides=(2,),
                                                                             input_size=8)))
    assert isinstance(net, Canonicalized) and net.model.group == "trivial"
    with torch.no_grad():
        assert _shape_ok("classify", net.eval()(X))
    assert not get_role("canonicalized").arch and "canonicalized" not in ARCH_CHOICES


def test_registered_model_and_user_roles():
    """A registered model's name is a role (constructor arguments filtered, options passed); a user role builds
    with its builder, after seeding; names of built-in roles cannot be taken."""
    net = get_role("EquivariantMonaiUNet").build(_request("segment", options={"num_res_units": 1}))
    assert type(net).__name__ == "EquivariantMonaiUNet" and net.equivox_spec["kwargs"]["num_res_units"] == 1
    assert "hidden_features" not in net.equivox_spec["kwargs"] and "convs_per_level" not in net.equivox_spec["kwargs"]
    seen = []

    def builder(request):
        seen.append(request)
        return nn.Conv3d(request.in_channels, request.num_classes, 1)

    register_role("test_tiny_role", builder, tasks=("segment",))
    try:
        assert is_arch("test_tiny_role") and "test_tiny_role" not in ARCH_CHOICES
        a = get_role("test_tiny_role").build(_request("segment", seed=3))
        b = get_role("test_tiny_role").build(_request("segment", seed=3))
        assert torch.equal(a.weight, b.weight) and len(seen) == 2
        with pytest.raises(ValueError, match="builds for segment"):
            get_role("test_tiny_role").build(_request("classify"))
        with pytest.raises(ValueError, match="already registered"):
            register_role("test_tiny_role", builder)
    finally:
        unregister_role("test_tiny_role")
    with pytest.raises(ValueError, match="built-in role"):
        register_role("baseline", builder)
    with pytest.raises(ValueError, match=r"unknown model role 'nope'; roles: equivariant, baseline"):
        get_role("nope")


def test_arch_vocabulary():
    """The role names and aliases are the arch values; every arch the config accepts has a role."""
    from equivox.training.config import ARCH_CHOICES as CONFIG_ARCHS

    # the built-in roles (user roles, e.g. those benchmarks/models.py registers, come after them)
    assert ARCH_CHOICES == arch_names()[:len(ARCH_CHOICES)] == ("equivariant", "baseline", "plain_compute", "monai",
                                                               "monai_unet")
    assert CONFIG_ARCHS == ARCH_CHOICES  # one vocabulary: the config accepts exactly the roles
    assert get_role("monai_unet") is get_role("monai")
    assert get_role("equivariant").model_group("so3") == "so3" and get_role("baseline").model_group("so3") == "trivial"


def test_match_params_matches_the_reference_of_another_group():
    ref = get_role("equivariant").build(_request("segment"))
    other = get_role("equivariant").build(_request("segment", group="trivial", reference=ref, match_params=True))
    assert other.group == "trivial" and list(other.channels) != [1, 2]
    assert abs(count_parameters(other) - count_parameters(ref)) <= 0.1 * count_parameters(ref)
    same = get_role("equivariant").build(_request("segment", reference=ref, match_params=True))
    assert list(same.channels) == [1, 2]  # the reference's own group: nothing to match
    with pytest.raises(ValueError, match="match_params needs the reference"):
        get_role("equivariant").build(_request("segment", group="trivial", match_params=True))


def test_same_request_same_weights_and_training_and_harness_agree():
    """A role seeds itself: the same request builds the same weights; TrainConfig(arch="baseline") and the harness
    row "plain (matched params)" build the same network from the same reference sizes and seed."""
    from equivox.benchmark.competitors import BuildContext, build_network, get_competitor
    from equivox.training import TrainConfig, build_model

    a, b = (get_role("baseline").build(_request("segment", seed=5)) for _ in range(2))
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    cfg = TrainConfig(task="segment", arch="baseline", channels=(1, 2), strides=(2,), convs_per_level=1, seed=5)
    trained = build_model(cfg, 1, 3)
    sizes = dict(channels=[1, 2], strides=[2], convs_per_level=1, kernel_size=3)
    with pytest.raises(ValueError, match="sizes must not hold in_channels"):
        ModelRequest("segment", 1, 3, "octa", {**sizes, "in_channels": 1})
    reference = get_role("equivariant").build(ModelRequest("segment", 1, 3, "octa", sizes, seed=5))
    base = dict(spatial_dims=3, in_channels=1, out_channels=3, **sizes)
    harness = build_network(get_competitor("plain (matched params)", "segment"),
                            BuildContext("segment", 1, 3, "octa", reference, base, 5))
    assert trained.equivox_spec == harness.equivox_spec
    assert all(torch.equal(harness.state_dict()[k], v) for k, v in trained.state_dict().items())
