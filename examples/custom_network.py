"""A network of your own, made of equivox blocks, exported to plain PyTorch without touching equivox's code.

``TinySegmenter`` below is an ordinary ``nn.Module`` with its own ``forward``: equivariant conv blocks, exact
down- and upsampling, a skip connection, a per-voxel invariant pooling and a plain 1x1x1 ``Conv3d`` on the
invariant channels, plus a global rotation-invariant score. ``equivox.export.export`` walks it and replaces each
equivox block by plain ``torch.nn`` layers; the custom class stays, so its ``forward`` runs unchanged. Run:

    python examples/custom_network.py
"""
from typing import Tuple

import torch
from torch import nn

from equivox.core import PlainModule
from equivox.export import export
from equivox.groups import get_group
from equivox.nn import (EquivariantConvBlock, EquivariantDownsample, EquivariantUpsample, EquivarianceError,
                        FieldSpec, InvariantPooling)

GROUP = "octa"


class TinySegmenter(nn.Module):
    """``(B, 1, D, H, W)`` (sizes divisible by 2) -> ``(logits (B, 3, D, H, W), score (B, 1))``.

    Equivariant for the 24 cube rotations: the logits rotate with the input, the score is invariant.
    """

    def __init__(self, fields: int = 2):
        super().__init__()
        inp = FieldSpec.scalar(GROUP, 1)
        self.enc = EquivariantConvBlock(inp, fields, n_convs=1)
        self.down = EquivariantDownsample(2)
        self.mid = EquivariantConvBlock(self.enc.out_spec, fields, n_convs=1)
        self.up = EquivariantUpsample(2)
        self.dec = EquivariantConvBlock(self.mid.out_spec + self.enc.out_spec, fields, n_convs=1)
        self.pool = InvariantPooling(GROUP, fields)            # hidden fields -> invariant channels, per voxel
        self.classes = nn.Conv3d(self.pool.out_channels, 3, 1)  # any plain layer may read invariant channels
        self.score = nn.Linear(self.pool.out_channels, 1)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        skip = self.enc(x)
        y = self.dec(torch.cat([self.up(self.mid(self.down(skip))), skip], dim=1))
        inv = self.pool(y)
        return self.classes(inv), self.score(inv.mean(dim=(2, 3, 4)))


def main() -> dict:
    torch.manual_seed(0)
    net = TinySegmenter()
    with torch.no_grad():  # non-trivial batch-norm statistics, as after training
        net.train()(torch.randn(4, 1, 8, 8, 8) * 2 + 1)
    net.eval()
    plain = export(net)
    leaves = {type(m) for m in plain.modules() if not list(m.children())}
    assert all(t.__module__.startswith("torch.nn") or issubclass(t, PlainModule) for t in leaves), leaves
    x = torch.randn(2, 1, 8, 8, 8)
    with torch.no_grad():
        (ref_logits, ref_score), (logits, score) = net(x), plain(x)
        diff = max((logits - ref_logits).abs().max().item(), (score - ref_score).abs().max().item())
        scripted = torch.jit.script(plain)
        s_logits, s_score = scripted(x)
        script_diff = max((s_logits - ref_logits).abs().max().item(), (s_score - ref_score).abs().max().item())
        # a quarter turn in the (H, W) plane, written with torch.rot90 here: the logits follow, the score stays
        turn = lambda t: torch.rot90(t, 1, (3, 4))  # noqa: E731
        t_logits, t_score = plain(turn(x))
        eq = max((t_logits - turn(logits)).abs().max().item(), (t_score - score).abs().max().item())
        eq /= max(logits.abs().max().item(), score.abs().max().item())
        grid = get_group(GROUP).grid_elements
        worst = max((plain(g.apply(x))[0] - g.apply(logits)).abs().max().item() for g in grid)
        worst /= logits.abs().max().item()
    print(f"TinySegmenter exported to plain torch: max abs diff {diff:.2e} (TorchScript {script_diff:.2e}); "
          f"relative equivariance error: rot90 {eq:.2e}, worst of {len(grid)} cube rotations {worst:.2e}")
    assert diff < 1e-4 and script_diff < 1e-4, (diff, script_diff)
    assert eq < 1e-4 and worst < 1e-4, (eq, worst)
    try:  # the equivox blocks keep their size rules inside a custom network: 7 is not divisible by the stride 2
        net(torch.randn(1, 1, 8, 8, 7))
    except EquivarianceError as err:
        print("size check:", str(err).split(":")[0])
    return {"export_diff": diff, "script_diff": script_diff, "equivariance_error": max(eq, worst)}


if __name__ == "__main__":
    main()
