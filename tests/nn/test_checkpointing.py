"""Activation checkpointing (equivox.nn.checkpointing): same outputs, gradients and running statistics as without,
the state_dict unchanged, undoable, and copies/pickles of a checkpointed model still work."""
import copy
import io

import pytest
import torch

from equivox.nn.checkpointing import (checkpointed_modules, disable_activation_checkpointing,
                                      enable_activation_checkpointing)


def _unet(dropout=0.0):
    from equivox.nets import EquivariantUNet

    torch.manual_seed(0)
    return EquivariantUNet(3, 1, 3, channels=(2, 2), strides=(2,), group="c4_axial", dropout=dropout)


def _monai_unet():
    from equivox.nets import EquivariantMonaiUNet

    torch.manual_seed(0)
    return EquivariantMonaiUNet(3, 1, 2, channels=(2, 2), strides=(2,), num_res_units=1, group="c4_axial")


def _step(model, x, seed=1):
    torch.manual_seed(seed)  # dropout draws
    model.zero_grad(set_to_none=True)
    y = model(x)
    (y.square().mean() + y.mean()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return y.detach(), grads


@pytest.mark.parametrize("make", [_unet, lambda: _unet(dropout=0.2), _monai_unet], ids=["unet", "unet-dropout",
                                                                                        "monai-unet"])
def test_same_outputs_gradients_and_running_stats(make):
    x = torch.randn(2, 1, 8, 8, 8, generator=torch.Generator().manual_seed(3))
    plain, ckpt = make(), make()
    ckpt.load_state_dict(plain.state_dict())
    enable_activation_checkpointing(ckpt)
    assert checkpointed_modules(ckpt), "nothing was checkpointed"
    assert set(ckpt.state_dict()) == set(plain.state_dict())
    y0, g0 = _step(plain.train(), x)
    y1, g1 = _step(ckpt.train(), x)
    assert torch.allclose(y0, y1, atol=1e-6)
    assert g0.keys() == g1.keys() and len(g0) > 0
    for n in g0:
        assert torch.allclose(g0[n], g1[n], atol=1e-5, rtol=1e-4), n
    s0, s1 = plain.state_dict(), ckpt.state_dict()
    for n in s0:  # running statistics counted once, not twice
        assert torch.allclose(s0[n].float(), s1[n].float(), atol=1e-6), n
    plain.eval(), ckpt.eval()
    with torch.no_grad():
        assert torch.allclose(plain(x), ckpt(x), atol=1e-6)


def test_disable_copy_and_pickle():
    model = enable_activation_checkpointing(_unet())
    names = checkpointed_modules(model)
    clone = copy.deepcopy(model)
    assert checkpointed_modules(clone) == names
    assert all(m.forward.module is m for m in clone.modules() if "forward" in m.__dict__)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert checkpointed_modules(loaded) == names
    x = torch.randn(1, 1, 8, 8, 8)
    loaded.train()
    loaded(x).sum().backward()
    disable_activation_checkpointing(model)
    assert checkpointed_modules(model) == []


def test_nothing_to_checkpoint_is_an_error():
    with pytest.raises(ValueError, match="no module"):
        enable_activation_checkpointing(torch.nn.Sequential(torch.nn.Linear(2, 2)))
    m = enable_activation_checkpointing(torch.nn.Sequential(torch.nn.Linear(2, 2)), blocks=[torch.nn.Linear])
    assert checkpointed_modules(m) == ["0"]
