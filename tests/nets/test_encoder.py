"""equivox.nets.encoder: EquivariantFeatureExtractor gives multiscale invariant (scalar) or hidden features at the
encoder's resolutions, equivariant under real group elements, and scripts after export."""
from __future__ import annotations

import torch

from equivox.nets import EquivariantFeatureExtractor
from equivox.testing import assert_equivariant


def test_feature_extractor_multiscale_invariant_features(cube_input, non_identity_element):
    torch.manual_seed(0)
    fx = EquivariantFeatureExtractor(3, 1, channels=(2, 2), strides=(2,), group="octa").eval()
    feats = fx(cube_input)
    assert [type(f) for f in feats] == [torch.Tensor, torch.Tensor]
    assert [tuple(f.shape) for f in feats] == [(2, fx.feature_channels[0], 8, 8, 8),
                                               (2, fx.feature_channels[1], 4, 4, 4)]
    assert fx.reductions == (1, 2)
    # invariant features: only the voxels move under a rotation, so any ordinary layer may consume them
    assert [s.reprs for s in fx.out_specs] == [("irrep_0",) * c for c in fx.feature_channels]  # scalar fields
    assert_equivariant(fx, cube_input, [non_identity_element("octa")])
    hidden = EquivariantFeatureExtractor(3, 1, channels=(2, 2), strides=(2,), group="octa", output="hidden")
    assert hidden.feature_channels == (48, 48)


def test_torchscript_of_exported_feature_extractor(tmp_path, script_save_and_compare):
    from equivox import export

    torch.manual_seed(0)
    fx = EquivariantFeatureExtractor(3, 1, channels=(2, 2), strides=(2,), group="octa").eval()
    plain = export.export(fx).eval()
    x = torch.randn(1, 1, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    loaded = script_save_and_compare(plain, x, tmp_path=tmp_path)
    with torch.no_grad():
        for a, b in zip(loaded(x), fx(x)):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
