"""equivox.export: plain-PyTorch export gives the same eval outputs, scripts, torch.exports, keeps input checks."""
import pytest
import torch
from torch import nn

from equivox.core import PlainModule
from equivox.export import ExportError, export
from equivox.groups import get_group
from equivox.testing import assert_equivariant
from equivox.nn import EquivariantConv3d, FieldNormAct

ATOL = 1e-4


def _leaf_types(module):
    return {type(m) for m in module.modules() if not list(m.children())}


@pytest.mark.parametrize("group", ["octa", "so3"])
@pytest.mark.parametrize("kind", ["unet", "clf"])
def test_export_matches_eval_outputs_and_is_plain_torch(group, kind, small_model, cube_input, trained):
    model = trained(small_model(kind, group))
    with torch.no_grad():
        ref = model(cube_input)  # eval mode
    model.train()
    plain = model.export()  # exported from a model in training mode: still computes the eval function
    assert model.training and all(m.training for m in model.modules())  # export does not change the source mode
    out = plain(cube_input)
    assert out.shape == ref.shape
    assert (out - ref).abs().max().item() < ATOL
    model.eval()
    for t in _leaf_types(plain):
        assert t.__module__.startswith("torch.nn") or issubclass(t, PlainModule), t
    assert not any(isinstance(m, (EquivariantConv3d, FieldNormAct)) for m in plain.modules())
    assert all(m.eps > 0 for m in plain.modules() if isinstance(m, nn.BatchNorm3d))  # torch < 2.13: eps > 0 always


@pytest.mark.parametrize("group", ["octa", "so3"])
def test_exported_unet_is_still_equivariant(group, small_model, cube_input, trained):
    plain = export(trained(small_model("unet", group)))
    assert_equivariant(plain, cube_input, get_group(group).grid_elements[1:6])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("group", ["octa", "so3"])
def test_export_scripts_and_torch_exports(group, small_model, cube_input, trained):
    model = trained(small_model("unet", group))
    plain = export(model)
    ref = model(cube_input)
    scripted = torch.jit.script(plain)
    assert (scripted(cube_input) - ref).abs().max().item() < ATOL
    program = torch.export.export(plain, (cube_input,))
    assert (program.module()(cube_input) - ref).abs().max().item() < ATOL


def test_export_keeps_input_checks(small_model, cube_input, trained):
    plain = export(trained(small_model("unet", "octa")))
    scripted = torch.jit.script(plain)
    for fn in (plain, scripted):
        with pytest.raises(Exception, match="divisible by 2"):
            fn(torch.randn(1, 1, 7, 8, 8))
        with pytest.raises(Exception, match="in_channels=1"):
            fn(torch.randn(1, 2, 8, 8, 8))
        with pytest.raises(Exception, match="5D"):
            fn(torch.randn(1, 8, 8, 8))


@pytest.mark.parametrize("norm,act", [("instance", "relu"), (None, ("prelu", {"num_parameters": 2})),
                                      ("batch", "gelu")])
def test_export_other_norms_and_activations(norm, act, cube_input, trained):
    from equivox.nets import EquivariantUNet

    torch.manual_seed(0)
    model = trained(EquivariantUNet(3, 1, 2, channels=(2, 2), strides=(2,), group="octa", norm=norm, act=act))
    if isinstance(model.encoder.levels[0].layers[1].act, nn.PReLU):
        with torch.no_grad():  # per-field slopes must be expanded per channel
            model.encoder.levels[0].layers[1].act.weight.copy_(torch.tensor([0.1, 0.7]))
    plain = export(model)
    assert (plain(cube_input) - model(cube_input)).abs().max().item() < ATOL
    if norm == "instance":
        assert any(isinstance(m, nn.GroupNorm) for m in plain.modules())


def test_export_monai_blocks_and_feature_extractor(cube_input, trained):
    from equivox.nets import (EquivariantConvolution, EquivariantFeatureExtractor, EquivariantHead,
                                           EquivariantResidualUnit)

    torch.manual_seed(0)
    net = nn.Sequential(EquivariantResidualUnit(3, 1, 2, group="octa"),
                        EquivariantConvolution(3, 2, 2, group="octa", in_fields="hidden", strides=2),
                        EquivariantHead(3, 2, 3, group="octa"))
    net = trained(net)
    plain = export(net)
    assert (plain(cube_input) - net(cube_input)).abs().max().item() < ATOL
    block = export(net[1])
    with pytest.raises(Exception, match="in_channels=48"):
        block(torch.randn(1, 1, 8, 8, 8))
    fx = trained(EquivariantFeatureExtractor(3, 1, (2, 2), (2,), group="octa"))
    outs, refs = torch.jit.script(export(fx))(cube_input), fx(cube_input)
    assert len(outs) == len(refs) == 2
    for a, b in zip(outs, refs):
        assert (a - b).abs().max().item() < ATOL


def test_unknown_module_is_refused():
    class Odd(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(ExportError, match="Odd"):
        export(nn.Sequential(Odd()))


def test_inference_benchmark_quick_smoke(tmp_path, monkeypatch):
    """benchmarks/inference.py --quick runs end to end (no timing assertions) and records the export error."""
    import json
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(bench))
    import bench_common
    import inference

    monkeypatch.setattr(bench_common, "RESULTS", tmp_path)
    monkeypatch.setattr(inference, "RESULTS", tmp_path)
    rows = inference.main(["--quick", "--name", "smoke"])
    data = json.loads((tmp_path / "smoke.json").read_text())
    assert data["machine"]["cpu_count"] >= 1 and data["machine"]["torch"] == torch.__version__
    assert len(data["export_max_abs_diff"]) == 2 and max(data["export_max_abs_diff"].values()) < ATOL
    assert {r["name"] for r in rows} >= {n for n in (r["name"] for r in data["rows"])}
    assert any("exported" in r["name"] for r in rows) and any("MONAI" in r["name"] for r in rows)
    assert (tmp_path / "smoke.png").stat().st_size > 0
    assert "inference" in sys.modules


def test_user_module_tree_exports_by_recursion_and_escnn_modules_are_refused():
    from torch import nn

    from equivox._escnn import enn
    from equivox.export import ExportError, export
    from equivox.groups import get_group
    from equivox.nn import EquivariantConv3d, EquivariantConvBlock, FieldSpec, InvariantPooling

    class Mine(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([EquivariantConvBlock(FieldSpec.scalar("octa", 1), 1, n_convs=1)])
            self.pool = InvariantPooling("octa", 1)
            self.scale = nn.Parameter(torch.tensor(2.0))

        def forward(self, x):
            for b in self.blocks:
                x = b(x)
            return self.pool(x) * self.scale

    torch.manual_seed(0)
    m = Mine().eval()
    plain = export(m)
    assert type(plain) is Mine and plain.scale.item() == 2.0
    assert not any(isinstance(c, (EquivariantConv3d, InvariantPooling)) for c in plain.modules())
    x = torch.randn(1, 1, 6, 6, 6)
    with torch.no_grad():
        assert (plain(x) - m(x)).abs().max().item() < 1e-5
        assert (torch.jit.script(plain)(x) - m(x)).abs().max().item() < 1e-5
    g = get_group("trivial")
    with pytest.raises(ExportError, match="escnn module"):
        export(nn.Sequential(enn.IdentityModule(g.scalar_type(1))))
