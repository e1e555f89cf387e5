"""The project's layering: no import circle anywhere, and no import from a lower layer to a
higher one. Every import counts, including those inside functions and under TYPE_CHECKING, so a
circle cannot hide behind a late import."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "methods", "tasks", "results", "reports")

# Lower numbers are lower layers; a module may import its own layer and any below it.
# Data flows one way: config -> grid -> cell -> record -> report; the CLI sits on top.
LAYERS = (
    ("harness.ground", 0),
    ("results", 1),
    ("tasks", 2),
    ("methods", 2),
    ("harness.models", 3),
    ("harness.config", 4),
    ("harness.processes", 5),
    ("harness.costs", 6),
    ("harness.run", 7),
    ("harness.lmeval", 8),
    ("reports", 9),
    ("harness.cli", 10),
    ("harness.__main__", 11),
)


def module_files() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_edges(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the project modules it imports (a ``from package import module`` counts as
    the module, as Python loads it)."""
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets = [
                    f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source
                    for a in node.names
                ]
            else:
                continue
            for target in targets:
                resolved = _resolve(target, modules)
                if resolved is not None and resolved != module:
                    edges[module].add(resolved)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> int | None:
    for prefix, layer in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None


def test_no_import_circle_in_the_project():
    assert cycles(import_edges(module_files())) == []


def test_every_module_has_a_layer():
    assert [m for m in module_files() if m != "harness" and layer_of(m) is None] == []


def test_no_import_reaches_up_a_layer():
    upward = [
        f"{a} -> {b}"
        for a, targets in import_edges(module_files()).items()
        for b in targets
        if b != "harness" and layer_of(a) is not None and layer_of(b) > layer_of(a)
    ]
    assert upward == []


def test_the_ground_imports_nothing_of_the_project():
    edges = import_edges(module_files())
    ground = {m: t for m, t in edges.items() if layer_of(m) == 0}
    assert all(t <= set(ground) for t in ground.values())


def test_the_walker_sees_a_circle_closed_inside_a_function(tmp_path):
    """The check itself: two modules importing each other, one of them lazily, is a circle."""
    a = tmp_path / "a.py"
    a.write_text("import b\n")
    b = tmp_path / "b.py"
    b.write_text("def f():\n    import a\n")
    edges = import_edges({"a": a, "b": b})
    assert cycles(edges) == [["a", "b"]]
