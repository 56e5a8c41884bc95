"""The layering of docs/architecture.md, checked on the source: no import cycle, no upward import.

Every ``import`` statement counts, at module level or inside a function: a function-level import
hides an edge from the import-time graph but not from the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "samlens"
MAX_LINES = 450

# Floors, ground first. A module may import its own floor's other rooms only where listed in
# SIDE_BY_SIDE_OK, and any lower floor; never a higher one.
FLOORS: list[set[str]] = [
    {"errors", "registry", "_optional", "validate", "rundir", "__init__"},
    {"data", "models"},
    {"optim"},
    {"probe"},
    {"train", "report", "integrations"},
    {"reproduce"},
    {"cli", "__main__"},
]
# Rooms on one floor that stand side by side and may not import each other.
SIDE_BY_SIDE = {"train", "report", "integrations", "data", "models"}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _floor(room: str) -> int:
    for level, rooms in enumerate(FLOORS):
        if room in rooms:
            return level
    raise AssertionError(f"samlens.{room} is on no floor of the architecture; add it to FLOORS")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """samlens modules that ``module`` imports anywhere in its file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from pkg import sub` imports the submodule when there is one, else a name of pkg.
            names = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in known else prefix for a in node.names]
        else:
            continue
        for name in names:
            if not name.startswith("samlens"):
                continue
            while name not in known and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in known and name != module:
                out.add(name)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {m: _imports(m, p, known) for m, p in modules.items()}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _upward(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in graph.items():
        room = _room(module)
        for target in targets:
            other = _room(target)
            if other == room or other == "__init__":
                continue
            if _floor(other) > _floor(room) or (_floor(other) == _floor(room) and other in SIDE_BY_SIDE):
                bad.append(f"{module} -> {target}")
    return sorted(bad)


def test_no_import_cycle_counting_function_level_imports():
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_module_imports_a_higher_floor_or_a_room_beside_it():
    assert _upward(_graph()) == []


def test_no_source_file_is_over_the_size_limit():
    long = {
        str(p.relative_to(SRC)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_checks_can_fail():
    # A cycle, an upward edge and a sideways edge on a made-up graph.
    graph = {"samlens.optim.a": {"samlens.optim.b"}, "samlens.optim.b": {"samlens.optim.a"}}
    assert _find_cycle(graph) == ["samlens.optim.a", "samlens.optim.b", "samlens.optim.a"]
    graph = {
        "samlens.data.x": {"samlens.train.y"},
        "samlens.train.y": {"samlens.report.z"},
        "samlens.report.z": set(),
    }
    assert _upward(graph) == ["samlens.data.x -> samlens.train.y", "samlens.train.y -> samlens.report.z"]
    with pytest.raises(AssertionError, match="no floor"):
        _floor("newroom")


def test_function_level_and_relative_imports_are_edges(tmp_path, monkeypatch):
    pkg = tmp_path / "samlens"
    (pkg / "optim").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "optim" / "__init__.py").write_text("from .a import f\n")
    (pkg / "optim" / "a.py").write_text("def f():\n    from samlens.optim import b\n")
    (pkg / "optim" / "b.py").write_text("from . import a\n")
    monkeypatch.setitem(globals(), "SRC", tmp_path)
    monkeypatch.setitem(globals(), "PACKAGE", pkg)
    graph = _graph()
    assert graph["samlens.optim.a"] == {"samlens.optim.b"}
    assert graph["samlens.optim.b"] == {"samlens.optim.a"}
    assert graph["samlens.optim"] == {"samlens.optim.a"}
