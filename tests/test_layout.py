"""The package's shape: no import cycles (function-level imports included), so each folder can
be read, tested and moved on its own, and nothing below imports upward."""

from __future__ import annotations

import ast
import graphlib
import sys
from pathlib import Path

PKG = Path(__file__).parents[1] / "autoreward"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the autoreward modules it imports anywhere in its body (function level too)."""
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # `from pkg import sub` imports the submodule when there is one
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for t in targets:
                while t and t not in files:  # `import autoreward.x.y` where y is a name, not a module
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    graph[mod].add(t)
    return graph


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 30 and "autoreward.sandbox.worker" in graph  # the graph is real
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_the_sandbox_imports_nothing_above_it():
    """The sandbox is the floor: jobs register into it, it never imports them."""
    graph = import_graph()
    allowed = {"autoreward.errors", "autoreward.rundir"}
    for mod, deps in graph.items():
        if mod.startswith("autoreward.sandbox"):
            above = {d for d in deps if not d.startswith("autoreward.sandbox") and d not in allowed}
            assert not above, f"{mod} imports {sorted(above)}"


def test_the_cycle_finder_finds_a_planted_cycle(tmp_path, monkeypatch):
    pkg = tmp_path / "autoreward"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from autoreward import b\n")
    (pkg / "b.py").write_text("def f():\n    from autoreward.a import x\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", pkg)
    g = import_graph()
    assert g["autoreward.a"] == {"autoreward.b"} and g["autoreward.b"] == {"autoreward.a"}
