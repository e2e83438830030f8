"""Static checks, in the parent (they only parse): the AST policy, and the prompt's example
handed back unchanged."""

from __future__ import annotations

import ast
from dataclasses import asdict

from autoreward.critic.verdict import CheckResult
from autoreward.program import FUNCTION_NAME, check_source


def check_static(source: str | None, example: str = "", function: str = FUNCTION_NAME) -> CheckResult:
    """The AST policy's findings (with line numbers), then the example-copy check; ``function``
    is the one the program must define (``compute_potential`` with ``--shaping potential``)."""
    if source is None:
        return CheckResult("static", False, "the answer contained no Python code", kind="no_code")
    findings = check_source(source, function)
    if findings:
        return CheckResult(
            "static", False, "; ".join(str(f) for f in findings), {"findings": [asdict(f) for f in findings]}, kind="static"
        )
    copied = example_copy_error(source, example, function) if example else ""
    if copied:
        return CheckResult("static", False, copied, kind="example_copy")
    return CheckResult("static", True)


def _function_body_dump(source: str, function: str = FUNCTION_NAME) -> str | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            body = node.body[1:] if ast.get_docstring(node) else node.body
            return ast.dump(ast.Module(body=body, type_ignores=[]), annotate_fields=False, include_attributes=False)
    return None


def example_copy_error(source: str | None, example: str, function: str = FUNCTION_NAME) -> str:
    """Small models hand back the prompt's example unchanged (seen with the 1.5B model on
    Crafter); it passes every check yet rewards nothing about the task, so it is sent back."""
    if not source:
        return ""
    mine = _function_body_dump(source, function)
    if mine is not None and mine == _function_body_dump(example, function):
        return (f"{function} is the example from the instructions, unchanged: it rewards nothing the task asks for. "
                "Keep its shape and add components that reward the task")
    return ""
