"""The package as a whole: no import cycle between equivox modules, and no group-name or field-kind switch outside
equivox.groups (group knowledge lives in the registry)."""
from __future__ import annotations

from pathlib import Path

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
