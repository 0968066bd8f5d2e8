"""The module contract of issue 11: old checkpoints still load, every module exports by recursion, no import
cycles, registries drive everything group- and model-specific."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from equivox.baselines import SPEC_VERSION, build_from_spec, upgrade_spec

FIXTURES = Path(__file__).parent / "fixtures" / "pre_refactor"
MODELS = json.loads((FIXTURES / "models.json").read_text())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_pre_refactor_checkpoint_loads_and_gives_the_same_outputs(name):
    """State dicts written by the code before the refactor load strictly and reproduce the stored outputs, eager
    and exported."""
    model = build_from_spec(upgrade_spec(MODELS[name]))  # a saved spec: defaults of its time
    model.load_state_dict(torch.load(FIXTURES / f"{name}.pt"), strict=True)
    model.eval()
    x = torch.load(FIXTURES / "input.pt")
    want = torch.load(FIXTURES / f"{name}_out.pt")
    with torch.no_grad():
        got = model(x)
        exported = model.export()(x)
    assert got.shape == want.shape
    assert (got - want).abs().max().item() < 1e-5 * max(1.0, want.abs().max().item())
    assert (exported - want).abs().max().item() < 1e-4 * max(1.0, want.abs().max().item())


# ------------------------------------------------------------------ import graph
SRC = Path(__file__).resolve().parents[1] / "src" / "equivox"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph():
    """``module -> {equivox modules it imports}``, every import statement counted (module level, inside
    functions, under ``if TYPE_CHECKING``); ``from . import x`` resolves to the submodule ``x`` when it is one, and
    importing ``equivox.a.b`` also imports the package ``equivox.a``."""
    import ast

    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                parts = t.split(".")
                for i in range(2, len(parts) + 1):  # importing a.b.c runs the __init__ of a.b first
                    dep = ".".join(parts[:i])
                    if dep in modules and dep != name:
                        deps.add(dep)
        graph[name] = deps
    return graph


def _find_cycle(graph):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_import_graph_walker_finds_cycles():
    """The walker itself: a two-module cycle and a lazy (function-level) import are found."""
    assert _find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None
    graph = _import_graph()
    assert "equivox.nn.conv" in graph and "equivox.groups" in graph["equivox.nn.conv"]
    assert "equivox.export" in graph["equivox.nn.module"]


def _package_edge(a: str, b: str) -> bool:
    """``a`` imports from its own package's ``__init__`` (``from . import x`` of a sibling resolves to the
    sibling); a package importing its own submodules is not a cycle."""
    return a.startswith(b + ".")


def test_no_import_cycle_in_equivox():
    graph = {n: {m for m in deps if not _package_edge(n, m)} for n, deps in _import_graph().items()}
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_group_name_or_field_kind_switch_outside_groups():
    """Group knowledge lives in the registry: no ``kind == "fourier"``, ``name == "so3"``, dict keyed by group
    names, tuple / list literal of group names (``CUBE_GROUPS = ("octa", "full_octa")``) or substring test on a
    name (``"axial" in g``) in any other module of ``src/equivox``."""
    import re

    names = r"(trivial|octa|full_octa|ico|full_ico|so3|o3|[a-z0-9]*_axial\w*)"
    pattern = re.compile(r'kind\s*(==|!=)\s*"(fourier|regular)"|(name|group)\s*(==|!=|in)\s*\(?"(trivial|octa|'
                         r'full_octa|ico|full_ico|so3|o3)"|"(octa|full_octa|ico|full_ico|so3|o3)"\s*:\s*[a-z_]'
                         rf'|[(\[]\s*"{names}"\s*,\s*"{names}"|"(axial|octa|ico|so3|o3)"\s+(not\s+)?in\s+\w')
    hits = [f"{p.relative_to(SRC)}:{i}: {line.strip()}" for p in SRC.rglob("*.py") if p.name != "groups.py"
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, "\n".join(hits)


# ------------------------------------------------------------------ group registry: field-kind strategies
def _registry_groups():
    import os

    from equivox.groups import GROUPS

    heavy = set() if os.environ.get("EQUIVOX_TEST_FULL_ICO") == "1" else {"full_ico"}
    return [n for n in GROUPS if n not in heavy]


@pytest.mark.parametrize("name", _registry_groups())
def test_every_group_field_kind_supplies_norm_act_pooling_and_their_export(name):
    """For every registered group its field-kind strategy decides the hidden representation, the sampling
    matrices and the default pooling; FieldNormAct and InvariantPooling built from it export to plain layers
    computing the same eval function (batch norm with trained statistics)."""
    from torch import nn

    from equivox.groups import FieldKind, GROUPS, get_group, grid_elements_of_name
    from equivox.nn import FieldNormAct, InvariantPooling

    spec = GROUPS[name]
    assert isinstance(spec.fields, FieldKind) and spec.kind == spec.fields.name
    g = get_group(name)
    assert g.hidden_repr.size == g.field_size
    mats = g.sampling_matrices
    if mats is not None:
        a, a_inv = mats
        assert a.shape[1] == g.field_size and a_inv.shape == (g.field_size, a.shape[0])
        assert torch.allclose(a_inv @ a, torch.eye(g.field_size), atol=1e-4)
    assert {e.name for e in grid_elements_of_name(name)} == {e.name for e in g.grid_elements}
    torch.manual_seed(0)
    block = nn.Sequential(FieldNormAct(name, 2, "batch", "elu"), InvariantPooling(name, 2))
    assert block[1].mode == spec.fields.default_pooling
    with torch.no_grad():
        block.train()(torch.randn(4, 2 * g.field_size, 3, 3, 3) * 2 + 1)
        block[0].norm.weight.uniform_(0.5, 1.5)
    block.eval()
    x = torch.randn(2, 2 * g.field_size, 3, 3, 3)
    plain = block[0].export(), block[1].export()
    with torch.no_grad():
        assert (plain[0](x) - block[0](x)).abs().max().item() < 1e-4
        assert (plain[1](x) - block[1](x)).abs().max().item() < 1e-4


def test_register_group_refuses_a_spec_without_field_kind():
    from equivox._escnn import gspaces
    from equivox.groups import GroupSpec, register_group

    with pytest.raises(ValueError, match="GroupSpec.fields must be a FieldKind"):
        register_group(GroupSpec("bad_kind", "x", lambda: gspaces.trivialOnR3(), fields="fourier"))


# ------------------------------------------------------------------ model registry
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


# ------------------------------------------------------------------ one validator, recursion, MONAI-style builders
def test_every_network_and_block_validates_with_the_same_input_check():
    from equivox.core import InputCheck
    from equivox.nets import (EquivariantConvolution, EquivariantHead, EquivariantMonaiUNet, EquivariantResidualUnit,
                              EquivariantUNet, InvariantClassifier)

    torch.manual_seed(0)
    mods = [EquivariantUNet(channels=(1, 1), strides=(2,)), InvariantClassifier(channels=(1, 1), strides=(2,)),
            EquivariantMonaiUNet(channels=(1, 1), strides=(2,)), EquivariantConvolution(3, 1, 1),
            EquivariantResidualUnit(3, 1, 1), EquivariantHead(3, 1, 2)]
    for m in mods:
        first = next(c for c in m.modules() if isinstance(c, InputCheck))  # the network's own (the encoder's)
        assert first.name == type(m).__name__
        assert all(isinstance(c.input_check, InputCheck) for c in m.modules() if hasattr(c, "input_check"))
        assert not any(hasattr(c, "_validate") for c in m.modules())
        with pytest.raises(ValueError, match="expects a 5D tensor"):
            m(torch.zeros(1, 8, 8, 8))


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


def test_monai_unet_layers_come_from_overridable_methods():
    """A subclass replaces the bottom layer through ``_get_bottom_layer`` (as with MONAI's UNet); the network
    stays equivariant (torch.rot90 written here) and exports."""
    from equivox.nets import EquivariantConvolution, EquivariantMonaiUNet

    class PointwiseBottom(EquivariantMonaiUNet):
        def _get_bottom_layer(self, in_channels, out_channels):
            return EquivariantConvolution(3, in_channels, out_channels, kernel_size=1, in_fields="hidden",
                                          **self._common())

    torch.manual_seed(0)
    net = PointwiseBottom(channels=(1, 2), strides=(2,), norm=None).eval()
    bottom = net.model[1].submodule
    assert isinstance(bottom, EquivariantConvolution) and bottom.conv.kernel_size == 1
    x = torch.randn(1, 1, 8, 8, 8)
    turn = lambda t: torch.rot90(t, 1, (3, 4))  # noqa: E731
    with torch.no_grad():
        y = net(x)
        assert (net(turn(x)) - turn(y)).abs().max().item() < 1e-4 * max(1.0, y.abs().max().item())
        assert (net.export()(x) - y).abs().max().item() < 1e-4


def test_importing_equivox_leaves_escnn_unchanged_for_other_code():
    """equivox's escnn set-up (cache folder, fast Clebsch-Gordan solver, quiet numerics) is active only inside
    ``quiet()``; outside it escnn's own functions are in place, also after building models."""
    import subprocess
    import sys

    code = """
import escnn.group._clebsh_gordan as cg, escnn.group.groups.octa as octa, escnn.group._numerical as num
own = (cg._clebsh_gordan_tensor, octa._build_octa_irrep_picklable, getattr(num, "randomized_svd", None))
import equivox.nets
from equivox._escnn import quiet, setup
setup(); setup()
with quiet():
    inside = (cg._clebsh_gordan_tensor, octa._build_octa_irrep_picklable, getattr(num, "randomized_svd", None))
equivox.nets.InvariantClassifier(channels=(1,), strides=(), group="octa")
after = (cg._clebsh_gordan_tensor, octa._build_octa_irrep_picklable, getattr(num, "randomized_svd", None))
assert after == own, "escnn changed outside quiet()"
assert inside[0] is not own[0] and inside[1] is not own[1] and inside[2] is None
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


# ------------------------------------------------------------------ examples
@pytest.mark.parametrize("name", ["custom_network"])
def test_example_runs(name, monkeypatch):
    """examples/custom_network.py (user nn.Module of equivox blocks -> plain torch, same outputs); the
    custom_group example runs in test_axial_groups.py."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main()
    assert result["export_diff"] < 1e-4 and result["script_diff"] < 1e-4 and result["equivariance_error"] < 1e-4


def test_one_coercion_of_field_types_and_output_shapes():
    """``as_field_spec`` takes a FieldSpec or an escnn FieldType (every layer coerces through it);
    ``evaluate_output_shape`` as escnn's."""
    from equivox.groups import get_group
    from equivox.nets import EquivariantConvolution
    from equivox.nn import EquivariantConvBlock, FieldSpec, as_field_spec

    g = get_group("octa")
    assert as_field_spec(g.hidden_type(2)) == FieldSpec.hidden("octa", 2)
    assert as_field_spec(FieldSpec.scalar("octa", 1), "octa") == FieldSpec.scalar("octa", 1)
    with pytest.raises(TypeError, match="FieldSpec or an escnn FieldType"):
        as_field_spec("octa")
    with pytest.raises(TypeError, match="group 'so3' was expected"):
        as_field_spec(FieldSpec.scalar("octa", 1), "so3")
    block = EquivariantConvBlock(g.scalar_type(1), 2, n_convs=1)  # an escnn FieldType in
    assert block.in_spec == FieldSpec.scalar("octa", 1) and block.out_spec == FieldSpec.hidden("octa", 2)
    conv = EquivariantConvolution(3, 1, 2, group="octa", strides=2)
    assert conv.evaluate_output_shape((1, 1, 8, 8, 8)) == (1, 2 * g.field_size, 4, 4, 4)
    assert conv.out_tensor_channels == 2 * g.field_size
