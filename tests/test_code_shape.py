"""The package stays readable in pieces: no function in ``autoreward/`` is longer than 80 lines
(split a longer one into named steps whose docstrings say why)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).parents[1] / "autoreward"
MAX_LINES = 80


def long_functions(root: Path, limit: int = MAX_LINES) -> list[str]:
    """``path:line name (n lines)`` for every function or method under ``root`` longer than ``limit``
    lines, from its ``def`` to its last line (nested functions are measured too)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if n > limit:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({n} lines)")
    return found


def test_no_function_in_the_package_is_over_80_lines():
    assert len(list(PKG.rglob("*.py"))) > 30  # the package is really there
    assert long_functions(PKG) == []


def test_the_length_check_finds_a_long_function(tmp_path):
    pkg = tmp_path / "autoreward"
    pkg.mkdir()
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES - 1))
    (pkg / "ok.py").write_text("def fits():\n" + body)  # exactly 80 lines
    (pkg / "long.py").write_text("class C:\n    async def too_long(self):\n" + "    " + body.replace("\n    ", "\n        ") + "        y = 0\n")
    assert long_functions(pkg) == ["autoreward/long.py:2 too_long (81 lines)"]
