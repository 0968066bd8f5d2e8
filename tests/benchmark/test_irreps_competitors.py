"""equivox.benchmark.irreps_competitors: the irreps rows of the benchmark harness build through the competitor
registry at about the reference's parameter count, and the MELBA-layout U-Net is equivariant (cube elements written
with torch.rot90, channels moved by e3nn's Wigner D: conftest's ``e3nn_equivariance_error``)."""
from __future__ import annotations

import torch


def test_irreps_competitors_build_matched_and_equivariant(monkeypatch, e3nn_equivariance_error):
    """The harness rows: the MELBA-layout U-Net (kernel 5, fields 4x0e+2x1o+1x2e) and the so3_irreps classifier
    build through the competitor registry at about the reference's parameter count; the U-Net is equivariant."""
    from equivox import groups
    from equivox.baselines import count_parameters
    from equivox.benchmark import BuildContext, build_network, get_competitor
    from equivox.benchmark import competitors as registry
    from equivox.nets import EquivariantUNet, InvariantClassifier

    # the MELBA group stays out of other tests: neither registered nor built after this one
    monkeypatch.setattr(groups.registry, "GROUPS", dict(groups.GROUPS))
    monkeypatch.setattr(groups.registry, "_INSTANCES", dict(groups.registry._INSTANCES))
    monkeypatch.setattr(registry, "COMPETITORS", dict(registry.COMPETITORS))
    from equivox.benchmark import irreps_competitors as competitors

    competitors.register_irreps_competitors()
    base = dict(spatial_dims=3, in_channels=1, out_channels=2, channels=[2, 4], strides=[2])
    ref = EquivariantUNet(**base, group="octa")
    net = build_network(get_competitor(competitors.MELBA_UNET, "segment"),
                        BuildContext("segment", 1, 2, "octa", ref, base, 0)).eval()
    assert net.group == competitors.MELBA_GROUP and net.encoder.levels[0].layers[0].kernel_size == 5
    assert abs(count_parameters(net) / count_parameters(ref) - 1) < 0.35
    with torch.no_grad():  # its field is 4x0e + 3 gates + 2x1o + 1x2e
        x = torch.randn(1, 1, 8, 8, 8)
        assert e3nn_equivariance_error(net, x, "1x0e", "2x0e", "so3_irreps", every=4) < 1e-4
    ref = InvariantClassifier(**base, group="octa")
    clf = build_network(get_competitor(competitors.IRREPS_CLASSIFIER, "classify"),
                        BuildContext("classify", 1, 2, "octa", ref, base, 0, 16))
    assert clf.group == "so3_irreps" and abs(count_parameters(clf) / count_parameters(ref) - 1) < 0.35
