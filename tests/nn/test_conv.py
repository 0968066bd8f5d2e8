"""equivox.nn.conv: the filter follows every weight write, padding modes and field dropout keep equivariance."""
from __future__ import annotations

import copy

import torch



def test_eval_filter_follows_weight_writes_through_data(small_model, cube_input):
    model = copy.deepcopy(small_model("unet", "octa")).eval()
    gen = torch.Generator().manual_seed(1)

    def check(write):
        with torch.no_grad():
            before = model(cube_input)  # an eval forward (where a stale filter could be kept)
            write()
            after = model(cube_input)
        fresh = copy.deepcopy(small_model("unet", "octa"))
        fresh.load_state_dict(copy.deepcopy(model.state_dict()))
        with torch.no_grad():
            expected = fresh.eval()(cube_input)
        assert (expected - before).abs().max() > 1e-3  # the write did change the function
        torch.testing.assert_close(after, expected, rtol=0, atol=1e-6)

    def ema_through_data():  # EMA-style update: writes through .data do not bump the version counters
        for p in model.parameters():
            p.data.mul_(0.9).add_(0.05)

    def vector():
        vec = torch.nn.utils.parameters_to_vector(model.parameters())
        torch.nn.utils.vector_to_parameters(vec + 0.1 * torch.randn(vec.shape, generator=gen), model.parameters())

    check(ema_through_data)
    check(vector)


# ------------------------------------------------------------------------------------------- 4. mesh folders


def test_padding_mode_and_dropout():
    from equivox.nn import EquivariantConv3d, FieldSpec
    from equivox.nets import EquivariantUNet

    torch.manual_seed(0)
    conv = EquivariantConv3d(FieldSpec.scalar("octa", 1), FieldSpec.hidden("octa", 1), 3, padding_mode="replicate")
    x = torch.randn(1, 1, 8, 8, 8) + 5.0
    zeros = EquivariantConv3d(FieldSpec.scalar("octa", 1), FieldSpec.hidden("octa", 1), 3)
    zeros.load_state_dict(conv.state_dict())
    assert (conv(x) - zeros(x))[..., 0].abs().max() > 1e-3  # the border differs ...
    assert (conv(x) - zeros(x))[..., 3:5, 3:5, 3:5].abs().max() < 1e-5  # ... the interior does not
    net = EquivariantUNet(channels=(6, 6), strides=(2,), group="octa", dropout=0.3)
    net.train()
    x = torch.randn(1, 1, 8, 8, 8)
    assert not torch.equal(net(x), net(x))  # dropout active in training
    net.eval()
    assert torch.equal(net(x), net(x))
    y = net(x)
    assert (net(torch.rot90(x, 1, (2, 3))) - torch.rot90(y, 1, (2, 3))).abs().max() < 1e-4 * y.abs().max()
