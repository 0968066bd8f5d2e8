"""The package as a whole: the equivox modules import each other along one direction (the layers below), without a
cycle, counting every import statement and every ``importlib.import_module`` / ``__import__`` call on an equivox
module; only package ``__init__`` files load equivox modules through importlib (PEP 562 lazy attributes); no
group-name or field-kind switch outside equivox.groups (group knowledge lives in the registry); and equivox.data's
voxel modules hold one job each, re-exported by equivox.data."""
from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "equivox"

#: the layers, lowest first: a module may import its own layer and the ones below, never one above. A name stands
#: for the module or package and everything under it (the longest name that matches decides), ``equivox`` for the
#: root ``__init__`` only. (equivox.console, .config and .models are placed by what they import today.)
LAYERS = [
    ("equivox.core", "equivox.cache", "equivox.statistics", "equivox.console", "equivox._escnn_cg",
     "equivox._escnn_tables", "equivox._escnn"),
    ("equivox.export",),
    ("equivox.groups",),
    ("equivox.testing",),
    ("equivox.nn",),
    ("equivox.irreps",),
    ("equivox.nets", "equivox.data"),
    ("equivox.canonicalization",),
    ("equivox.baselines", "equivox.config"),
    ("equivox.evaluation", "equivox.training", "equivox.nnunet", "equivox.models"),
    # equivox.irreps.competitors: the old name of equivox.benchmark.irreps_competitors (a harness module)
    ("equivox.benchmark", "equivox.prediction", "equivox.irreps.competitors"),
    ("equivox.demo", "equivox.cli", "equivox.__main__", "equivox"),
]

#: the known arrows against the layers, each only inside function bodies (run when a group or layer is built, never
#: at import): IrrepsFields is a field kind of the registry, its hooks call its e3nn implementation in
#: equivox.irreps (Wigner frame and escnn representation, kernel basis, gate / norm layers), which imports
#: equivox.groups and equivox.nn. Removing them means moving that implementation below equivox.groups.
DEFERRED_UPWARD = {
    ("equivox.groups.fields", "equivox.irreps"): "IrrepsFields hooks: importing equivox.irreps.* runs its __init__",
    ("equivox.groups.fields", "equivox.irreps.bridge"): "IrrepsFields.hidden_repr / sampling_matrices",
    ("equivox.groups.fields", "equivox.irreps.kernel"): "IrrepsFields.kernel_basis",
    ("equivox.groups.fields", "equivox.irreps.layers"): "IrrepsFields.norm_act",
}

_IMPORTLIB_CALLS = {"import_module", "__import__"}


@dataclass(frozen=True)
class Edge:
    line: int
    deferred: bool  # inside a function body (runs on call, not at import)
    via: str  # "import" or "importlib"
    in_getattr: bool = False  # inside a module-level ``def __getattr__`` (PEP 562)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _literal(node, consts):
    """The strings an importlib argument can be: literals, f-strings of ``__name__`` and literals, names of
    module-level string constants, or ``D[key]`` of a module-level dict literal ``D`` (all its values); ``None``
    for anything else (unreadable)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name) and node.id in consts:
        return consts[node.id]
    if isinstance(node, ast.JoinedStr):
        out = ""
        for part in node.values:
            if isinstance(part, ast.Constant):
                out += str(part.value)
            elif isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name) and \
                    part.value.id in consts and len(consts[part.value.id]) == 1:
                out += consts[part.value.id][0]
            else:
                return None
        return [out]
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in consts:
        return consts[node.value.id]
    return None


def _module_constants(tree, name: str, package: str):
    """``{name: [strings]}`` of module-level string constants, tuple / list / dict literals of strings (their
    values) and module-level ``for`` loop variables over those."""
    consts = {"__name__": [name], "__package__": [package]}

    def strings(value):
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return [value.value]
        items = value.values if isinstance(value, ast.Dict) else value.elts if isinstance(
            value, (ast.Tuple, ast.List)) else None
        if items is not None and all(isinstance(v, ast.Constant) and isinstance(v.value, str) for v in items):
            return [v.value for v in items]
        return None

    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            found = strings(node.value)
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(t, ast.Name) and found is not None:
                    consts[t.id] = found
        elif isinstance(node, ast.For) and isinstance(node.target, ast.Name) and isinstance(node.iter, ast.Name) \
                and node.iter.id in consts:
            consts[node.target.id] = consts[node.iter.id]
    return consts


def _importlib_calls(tree, name: str, package: str):
    """``[(lineno, [targets] or None, deferred, in_getattr)]`` for every ``import_module`` / ``__import__`` call
    (``importlib.import_module``, ``import_module`` imported under any name, ``__import__``)."""
    consts = _module_constants(tree, name, package)
    aliases = set(_IMPORTLIB_CALLS)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "importlib":
            aliases |= {a.asname or a.name for a in node.names if a.name == "import_module"}
    out = []

    def visit(node, deferred, in_getattr):
        if isinstance(node, ast.Call):
            f = node.func
            called = f.attr if isinstance(f, ast.Attribute) and f.attr == "import_module" else \
                f.id if isinstance(f, ast.Name) and f.id in aliases else None
            if called is not None and node.args:
                targets = _literal(node.args[0], consts)
                pkg_node = node.args[1] if len(node.args) > 1 and called != "__import__" else \
                    next((k.value for k in node.keywords if k.arg == "package"), None)
                pkg = _literal(pkg_node, consts) if pkg_node is not None else [None]
                if targets is not None and pkg is not None:
                    try:
                        targets = [importlib.util.resolve_name(t, p) if t.startswith(".") else t
                                   for t in targets for p in pkg]
                    except (ImportError, ValueError):
                        targets = None
                elif pkg is None:
                    targets = None
                out.append((node.lineno, targets, deferred, in_getattr))
        for child in ast.iter_child_nodes(node):
            inner = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            getattr_ = in_getattr or (isinstance(child, ast.FunctionDef) and child.name == "__getattr__"
                                      and node is tree)
            visit(child, deferred or inner, getattr_)

    visit(tree, False, False)
    return out


def _source_edges(name: str, is_package: bool, source: str, modules) -> dict:
    """``{equivox module: [Edge]}`` that module ``name`` imports: every import statement (module level, inside
    functions, under ``if TYPE_CHECKING``) and every importlib call on an equivox module. ``from . import x``
    resolves to the submodule ``x`` when it is one, and importing ``equivox.a.b`` also imports the package
    ``equivox.a``."""
    package = name if is_package else name.rpartition(".")[0]
    tree = ast.parse(source)
    found = []  # (target, Edge)

    def visit(node, deferred):
        targets = None
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        if targets:
            found.extend((t, Edge(node.lineno, deferred, "import")) for t in targets)
        for child in ast.iter_child_nodes(node):
            visit(child, deferred or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    for line, targets, deferred, in_getattr in _importlib_calls(tree, name, package):
        found.extend((t, Edge(line, deferred, "importlib", in_getattr)) for t in targets or ())
    deps = {}
    for t, edge in found:
        parts = t.split(".")
        for i in range(2, len(parts) + 1):  # importing a.b.c runs the __init__ of a.b first
            dep = ".".join(parts[:i])
            if dep in modules and dep != name:
                deps.setdefault(dep, []).append(edge)
    return deps


def _modules():
    return {_module_name(p): p for p in SRC.rglob("*.py")}


def _import_edges():
    """``module -> {equivox module it imports: [Edge]}`` over ``src/equivox``."""
    modules = _modules()
    return {name: _source_edges(name, path.name == "__init__.py", path.read_text(), modules)
            for name, path in modules.items()}


def _import_graph():
    """``module -> {equivox modules it imports}`` (see :func:`_source_edges`)."""
    return {name: set(deps) for name, deps in _import_edges().items()}


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


def _package_edge(a: str, b: str) -> bool:
    """``a`` imports from its own package's ``__init__`` (``from . import x`` of a sibling resolves to the
    sibling); a package importing its own submodules is not a cycle."""
    return a.startswith(b + ".")


def _layer(module: str):
    best = None
    for i, names in enumerate(LAYERS):
        for n in names:
            if module == n or (n != "equivox" and module.startswith(n + ".")):
                if best is None or len(n) > len(best[1]):
                    best = (i, n)
    return None if best is None else best[0]


def _checked_graph():
    """The import graph less package edges and the listed :data:`DEFERRED_UPWARD` arrows."""
    return {n: {m for m in deps if not _package_edge(n, m) and (n, m) not in DEFERRED_UPWARD}
            for n, deps in _import_graph().items()}


# ---------------------------------------------------------------------------------------------- the walker itself
_MODULES = {"equivox", "equivox.a", "equivox.b", "equivox.c", "equivox.pkg", "equivox.pkg.sub"}


def test_import_graph_walker_finds_cycles():
    """The walker itself: a two-module cycle and a lazy (function-level) import are found."""
    assert _find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None
    graph = _import_graph()
    assert "equivox.nn.conv" in graph and "equivox.groups" in graph["equivox.nn.conv"]
    assert "equivox.export" in graph["equivox.nn.module"]


@pytest.mark.parametrize("source, target, deferred", [
    ("import importlib\nimportlib.import_module('equivox.b')\n", "equivox.b", False),
    ("import importlib\ndef f():\n    return importlib.import_module('equivox.b')\n", "equivox.b", True),
    ("from importlib import import_module as load\nload('.c', 'equivox')\n", "equivox.c", False),
    ("def f():\n    __import__('equivox.pkg.sub')\n", "equivox.pkg.sub", True),
    ("import importlib\nX = 'equivox.c'\nimportlib.import_module(X)\n", "equivox.c", False),
    ("import importlib\nPLUGINS = ('equivox.c',)\nfor p in PLUGINS:\n    importlib.import_module(p)\n", "equivox.c",
     False),  # how equivox/groups.py loaded equivox.irreps.fields before it became a package
    ("import importlib\nf = lambda: importlib.import_module(f'{__package__}.b')\n", "equivox.b", True),
])
def test_walker_counts_importlib_calls_as_edges(source, target, deferred):
    edges = _source_edges("equivox.a", False, source, _MODULES)
    assert target in edges and all(e.via == "importlib" and e.deferred == deferred for e in edges[target])
    if target == "equivox.pkg.sub":
        assert "equivox.pkg" in edges  # its package's __init__ runs first


def test_walker_resolves_lazy_attributes_of_a_package_init():
    """``importlib.import_module(_LAZY[name], __name__)`` in a package ``__init__``: every value of the module-level
    dict is an edge, relative to the package, inside ``__getattr__``."""
    source = ("import importlib\n_LAZY = {'x': '.sub', 'y': '.sub'}\n\n\ndef __getattr__(name):\n"
              "    return importlib.import_module(_LAZY[name], __name__)\n")
    edges = _source_edges("equivox.pkg", True, source, _MODULES)
    assert set(edges) == {"equivox.pkg.sub"}
    assert all(e.in_getattr and e.deferred for e in edges["equivox.pkg.sub"])
    calls = _importlib_calls(ast.parse("import importlib\ndef f(n):\n    importlib.import_module(n)\n"), "equivox.a",
                             "equivox")
    assert calls == [(3, None, True, False)]  # a target that cannot be read


def test_cycle_and_layer_checks_fail_on_importlib_edges():
    """An importlib edge closes a cycle the import statements alone do not (``groups`` loading ``irreps`` by name,
    as equivox.groups did before it became a package), and it is an arrow against the layers."""
    modules = {"equivox.groups", "equivox.irreps"}
    down = _source_edges("equivox.irreps", True, "from ..groups import GROUPS\n", modules)
    up = _source_edges("equivox.groups", True, "import importlib\nimportlib.import_module('equivox.irreps')\n",
                       modules)
    assert _find_cycle({"equivox.irreps": set(down), "equivox.groups": set(up)}) is not None
    assert _layer("equivox.groups") < _layer("equivox.irreps")


# ---------------------------------------------------------------------------------------------- the package
def test_no_import_cycle_in_equivox():
    cycle = _find_cycle(_checked_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_module_has_a_layer():
    missing = sorted(m for m in _modules() if _layer(m) is None)
    assert not missing, f"add these modules to LAYERS: {missing}"


def _upward_arrows(edges_by_module):
    return [f"{a} (layer {_layer(a)}) -> {b} (layer {_layer(b)}), line {edges[0].line}"
            for a, deps in edges_by_module.items() for b, edges in deps.items()
            if not _package_edge(a, b) and (a, b) not in DEFERRED_UPWARD
            and None not in (_layer(a), _layer(b)) and _layer(b) > _layer(a)]  # no layer: test_every_module_has_a_layer


def test_no_import_points_up_the_layers():
    """Every import (statement or importlib call, at module level or inside a function) goes to the importer's own
    layer or a lower one, except the listed :data:`DEFERRED_UPWARD` arrows."""
    assert _upward_arrows({"equivox.irreps.fields": {"equivox.benchmark": [Edge(1, True, "import")]}})
    assert _upward_arrows({"equivox.nn.conv": {"equivox.irreps.kernel": [Edge(1, True, "importlib")]}})
    assert not _upward_arrows({"equivox.irreps.fields": {"equivox.groups": [Edge(1, False, "import")]}})
    up = _upward_arrows(_import_edges())
    assert not up, "imports against the layers:\n" + "\n".join(up)


def test_listed_upward_arrows_exist_and_run_only_inside_functions():
    """Each :data:`DEFERRED_UPWARD` arrow is still there (drop it from the list once it is gone), points up, and is
    never imported at module level (it can close no cycle at import time)."""
    edges = _import_edges()
    for (a, b) in DEFERRED_UPWARD:
        assert b in edges.get(a, {}), f"{a} -> {b} is gone: remove it from DEFERRED_UPWARD"
        assert _layer(b) > _layer(a), f"{a} -> {b} does not point up: remove it from DEFERRED_UPWARD"
        at_import = [e.line for e in edges[a][b] if not e.deferred]
        assert not at_import, f"{a} imports {b} at module level (line {at_import})"


def _importlib_problems(name: str, is_package: bool, source: str):
    """importlib calls of one module that load an equivox module outside a package ``__init__``'s ``__getattr__``,
    or whose target cannot be read."""
    package = name if is_package else name.rpartition(".")[0]
    bad = []
    for line, targets, _, in_getattr in _importlib_calls(ast.parse(source), name, package):
        if targets is None:
            bad.append(f"line {line}: importlib target that cannot be read (write it as a literal or a module-level "
                       "dict of literals)")
        elif any(t == "equivox" or t.startswith("equivox.") for t in targets) and not (is_package and in_getattr):
            bad.append(f"line {line}: loads {targets} through importlib outside a package __init__'s __getattr__ "
                       "(import it, or make it a lazy attribute of the package)")
    return bad


def test_importlib_rule_flags_modules_and_eager_package_code():
    lazy = "import importlib\n\n\ndef __getattr__(name):\n    return importlib.import_module('.sub', __name__)\n"
    assert _importlib_problems("equivox.pkg", True, lazy) == []
    assert _importlib_problems("equivox.a", False, lazy)  # a module, not a package __init__
    eager = "import importlib\nimportlib.import_module('equivox.irreps.fields')\n"  # what groups.py ended with
    assert _importlib_problems("equivox.pkg", True, eager)  # a package, but at import, not a lazy attribute
    assert _importlib_problems("equivox.a", False, "import importlib\nimportlib.import_module(NAME)\n")
    assert _importlib_problems("equivox.a", False, "from importlib.metadata import version\nversion('escnn')\n") == []


def test_only_package_inits_load_equivox_modules_through_importlib():
    """importlib on an equivox module only in a package ``__init__``'s ``__getattr__`` (PEP 562 lazy attributes);
    every importlib target in src/equivox is readable (a literal, or a module-level dict of literals)."""
    bad = [f"{path.relative_to(SRC)}: {problem}" for name, path in _modules().items()
           for problem in _importlib_problems(name, path.name == "__init__.py", path.read_text())]
    assert not bad, "\n".join(bad)


def test_no_group_name_or_field_kind_switch_outside_groups():
    """Group knowledge lives in the registry: no ``kind == "fourier"``, ``name == "so3"``, dict keyed by group
    names, tuple / list literal of group names (``CUBE_GROUPS = ("octa", "full_octa")``) or substring test on a
    name (``"axial" in g``) in any other module of ``src/equivox``."""
    import re

    names = r"(trivial|octa|full_octa|ico|full_ico|so3|o3|[a-z0-9]*_axial\w*)"
    pattern = re.compile(r'kind\s*(==|!=)\s*"(fourier|regular)"|(name|group)\s*(==|!=|in)\s*\(?"(trivial|octa|'
                         r'full_octa|ico|full_ico|so3|o3)"|"(octa|full_octa|ico|full_ico|so3|o3)"\s*:\s*[a-z_]'
                         rf'|[(\[]\s*"{names}"\s*,\s*"{names}"|"(axial|octa|ico|so3|o3)"\s+(not\s+)?in\s+\w')
    hits = [f"{p.relative_to(SRC)}:{i}: {line.strip()}" for p in SRC.rglob("*.py")
            if p.relative_to(SRC).parts[0] != "groups"
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, "\n".join(hits)


# equivox.data's voxel modules: one job each (meshes, arrays, MedMNIST, mesh folders)
MODULE_JOBS = {
    "meshes": {"MESH_EXTENSIONS", "load_mesh", "parse_vrml", "parse_vrml_shapes", "mesh_to_grid_coordinates",
               "voxelize_mesh"},
    "arrays": {"load_array", "load_voxel_file"},
    "medmnist": {"load_medmnist3d", "MedMNIST3D"},
    "mesh_folders": {"mesh_folder_items", "voxelize_files", "MeshFolderVoxels", "ModelNetVoxels"},
}


@pytest.mark.parametrize("module", sorted(MODULE_JOBS))
def test_voxel_modules_hold_one_job_each_and_are_reexported(module):
    import importlib

    import equivox.data as data

    mod = importlib.import_module(f"equivox.data.{module}")
    assert set(mod.__all__) == MODULE_JOBS[module]
    for name in mod.__all__:
        obj = getattr(mod, name)
        assert getattr(data, name) is obj and name in data.__all__
        if callable(obj) and not isinstance(obj, tuple):
            assert obj.__module__ == mod.__name__ and obj.__doc__, name  # defined here, documented
    other = set().union(*(v for k, v in MODULE_JOBS.items() if k != module))
    # nothing of another job lives here (arrays and mesh folders use the mesh basics)
    assert not other & (set(vars(mod)) - {"MESH_EXTENSIONS", "load_mesh", "voxelize_mesh"})
