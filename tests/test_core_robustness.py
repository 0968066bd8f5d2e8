"""Robust where escnn is fragile: train/eval state dicts, cross-process determinism, pickling, stale filters."""
import copy
import io
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch

from equivox.nets import EquivariantUNet


def _with_stats(model):
    model = copy.deepcopy(model).train()
    with torch.no_grad():
        model(torch.randn(2, 1, 8, 8, 8) * 2 + 1)
    return model


@pytest.mark.parametrize("group", ["octa", "so3"])
def test_state_dict_same_in_train_and_eval_and_loads_across_modes(group, small_model, cube_input):
    model = _with_stats(small_model("unet", group))
    train_sd = copy.deepcopy(model.train().state_dict())
    eval_sd = copy.deepcopy(model.eval().state_dict())
    assert list(train_sd) == list(eval_sd)
    assert not any(k.endswith(("filter", "expanded_bias", "basis_0")) for k in train_sd)
    reference = model.eval()(cube_input)
    for sd in (train_sd, eval_sd):
        for mode in (True, False):
            other = small_model("unet", group, seed=1)
            other = copy.deepcopy(other).train(mode)
            other.load_state_dict(sd, strict=True)
            assert torch.allclose(other.eval()(cube_input), reference, atol=1e-5)


def test_loading_weights_in_eval_mode_refreshes_the_filter(small_model, cube_input):
    a = copy.deepcopy(small_model("unet", "octa", seed=0)).eval()
    b = copy.deepcopy(small_model("unet", "octa", seed=1)).eval()
    a(cube_input)  # expands and caches a's filters
    a.load_state_dict(b.state_dict())
    assert torch.equal(a(cube_input), b(cube_input))


def test_pickle_and_torch_save_round_trip(small_model, cube_input):
    model = _with_stats(small_model("unet", "octa")).eval()
    ref = model(cube_input)
    clone = pickle.loads(pickle.dumps(model))
    assert torch.equal(clone(cube_input), ref)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    assert torch.equal(torch.load(buf, weights_only=False)(cube_input), ref)


def test_reordered_basis_in_checkpoint_is_remapped(small_model, cube_input):
    model = _with_stats(small_model("unet", "octa")).eval()
    ref = model(cube_input)
    sd = copy.deepcopy(model.state_dict())
    key = "encoder.levels.0.layers.0"
    n = sd[f"{key}.weight_0"].shape[-1]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    sign = torch.where(torch.arange(n) % 3 == 0, -1.0, 1.0)
    # simulate a process whose escnn basis had another element order and signs
    sd[f"{key}.weight_0"] = sd[f"{key}.weight_0"][..., perm] * sign
    sd[f"{key}.basis_fingerprint_0"] = sd[f"{key}.basis_fingerprint_0"][perm] * sign[:, None].double()
    other = copy.deepcopy(small_model("unet", "octa", seed=1)).eval()
    other.load_state_dict(sd)
    assert torch.allclose(other(cube_input), ref, atol=1e-5)
    sd[f"{key}.basis_fingerprint_0"] = torch.randn_like(sd[f"{key}.basis_fingerprint_0"])
    with pytest.raises(RuntimeError, match="does not match"):
        other.load_state_dict(sd)


_SAVE = textwrap.dedent("""
    import sys, torch
    from equivox.nets import EquivariantUNet
    torch.manual_seed(3)
    model = EquivariantUNet(3, 1, 3, channels=(2, 2), strides=(2,), group=sys.argv[2])
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 1, 8, 8, 8) * 2 + 1)
    torch.save(model.state_dict(), sys.argv[1] + "/sd.pt")          # saved in train mode
    x = torch.randn(1, 1, 8, 8, 8, generator=torch.Generator().manual_seed(11))
    torch.save(model.eval()(x), sys.argv[1] + "/out.pt")
""")
_LOAD = textwrap.dedent("""
    import sys, torch
    from equivox.nets import EquivariantUNet
    torch.manual_seed(99)
    model = EquivariantUNet(3, 1, 3, channels=(2, 2), strides=(2,), group=sys.argv[2]).eval()
    model.load_state_dict(torch.load(sys.argv[1] + "/sd.pt"))       # loaded in eval mode
    x = torch.randn(1, 1, 8, 8, 8, generator=torch.Generator().manual_seed(11))
    diff = (model(x) - torch.load(sys.argv[1] + "/out.pt")).abs().max().item()
    print("DIFF", diff)
    assert diff < 1e-5, diff
""")


@pytest.mark.parametrize("group", ["octa", "so3"])
def test_checkpoint_loads_in_fresh_process_with_other_hash_seed(group, tmp_path):
    for script, seed in ((_SAVE, "1"), (_LOAD, "12345")):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run([sys.executable, "-c", script, str(tmp_path), group], env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DIFF" in proc.stdout
