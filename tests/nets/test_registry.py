"""equivox.nets.registry: every registered model builds from a spec, exports and keeps equivariance; unknown
names list the registered ones; user models register."""
from __future__ import annotations

import pytest
import torch

from equivox.baselines import SPEC_VERSION, build_from_spec

def _small_kwargs(builder):
    import inspect

    common = dict(spatial_dims=3, in_channels=1, out_channels=2, channels=[1, 2], strides=[2], group="octa",
                  hidden_features=[4])
    params = inspect.signature(builder).parameters
    return {k: v for k, v in common.items() if k in params}


def test_every_registered_model_builds_from_spec_exports_and_keeps_equivariance():
    """Every name in the model registry builds from a JSON spec; the equivox ones are equivariant under a quarter
    turn written with torch.rot90 here, and their exports compute the same function (TorchScript too)."""
    from equivox.nets.registry import MODELS, available_models

    assert {"EquivariantUNet", "EquivariantMonaiUNet", "InvariantClassifier", "EquivariantEncoder",
            "EquivariantFeatureExtractor", "monai.UNet"} <= set(available_models())
    x = torch.randn(2, 1, 8, 8, 8, generator=torch.Generator().manual_seed(3))
    turn = lambda t: torch.rot90(t, 1, (2, 4))  # noqa: E731  (a quarter turn in the (D, W) plane)
    for name in available_models():
        kwargs = _small_kwargs(MODELS[name])
        if name == "monai.UNet":
            kwargs["channels"] = [2, 4]
        if name == "Canonicalized":  # a plain (trivial-group) U-Net behind the canonicalizer: exact all the same
            kwargs.update(task="segment", input_size=8, model={"cls": "EquivariantUNet", "kwargs": dict(
                spatial_dims=3, in_channels=1, out_channels=2, channels=[2, 2], strides=[2], group="trivial")})
        torch.manual_seed(0)
        model = build_from_spec({"cls": name, "kwargs": kwargs}).eval()
        assert model.equivox_spec["cls"] == name
        plain = model.export() if hasattr(model, "export") else __import__("equivox.export").export.export(model)
        scripted = torch.jit.script(plain)
        with torch.no_grad():
            outs = [model(x), plain(x), scripted(x)]
            outs = [o if isinstance(o, (list, tuple)) else [o] for o in outs]
            for ref, a, b in zip(*outs):
                assert (a - ref).abs().max().item() < 1e-4, name
                assert (b - ref).abs().max().item() < 1e-4, name
            if name.startswith("monai."):
                continue
            moved = model(turn(x))
            moved = moved if isinstance(moved, (list, tuple)) else [moved]
            for ref, m in zip(outs[0], moved):
                want = ref if ref.dim() == 2 else turn(ref)
                if ref.shape[1] == 1 or ref.dim() == 2 or name != "EquivariantEncoder":
                    assert (m - want).abs().max().item() < 1e-4 * max(1.0, ref.abs().max().item()), name


def test_unknown_model_names_the_registered_ones_and_user_models_register():
    from torch import nn

    from equivox.nets.registry import MODELS, register_model

    with pytest.raises(ValueError, match=r"unknown model class 'Nope'.*EquivariantMonaiUNet"):
        build_from_spec({"cls": "Nope", "kwargs": {}})

    def tiny(width=3):
        return nn.Conv3d(1, int(width), 1)

    register_model("test_tiny", tiny)
    try:
        m = build_from_spec({"cls": "test_tiny", "kwargs": {"width": 5}})
        assert m.out_channels == 5 and m.equivox_spec == {"cls": "test_tiny", "kwargs": {"width": 5}, "version": SPEC_VERSION}
        with pytest.raises(ValueError, match="already registered"):
            register_model("test_tiny", lambda: None)
    finally:
        MODELS.pop("test_tiny")
