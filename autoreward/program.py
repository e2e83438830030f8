"""Reward programs: untrusted Python source, its static policy, and compilation.

The interface every reward program implements::

    def compute_reward(prev, action, state, memory) -> tuple[float, dict[str, float]]:
        '''prev/state: read-only state views (fields named in the env card), before and
        after the step; action: read-only numpy array; memory: a dict that lives for one
        episode (empty at its start) for multi-step bookkeeping. Returns the total reward
        and its named components.'''

This module owns the whole contract: the static policy (``check_source``, modelled on
gymnasium's ``env_checker``: small checks that return findings as data), compilation into a
restricted namespace, validation of what a call returns, and :class:`RewardCaller`, the one
way a compiled reward is called, shared by training, evaluation and the critic. Compilation and
calls happen only inside a sandboxed child (``autoreward.sandbox``); this module never executes
untrusted code on import.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from autoreward.errors import RewardProgramError
from autoreward.readonly import STATEFUL
from autoreward.sandbox.child import CallGuard

FUNCTION_NAME = "compute_reward"
PARAMS = ("prev", "action", "state", "memory")
ALLOWED_MODULES = frozenset({"numpy", "math"})
MAX_SOURCE_CHARS = 20_000
MAX_AST_NODES = 4_000
MAX_LITERAL_POWER = 64  # ``2 ** 10**9`` style bombs are refused statically

FORBIDDEN_NAMES = frozenset(
    {
        "open", "eval", "exec", "compile", "getattr", "setattr", "delattr", "globals", "locals",
        "vars", "__import__", "input", "breakpoint", "help", "exit", "quit", "memoryview",
        "type", "object", "super", "classmethod", "staticmethod", "property", "dir", "id",
        "hasattr", "__builtins__", "__loader__", "__spec__",
    }
)
# numpy functions that touch files, the OS or raw memory
FORBIDDEN_ATTRS = frozenset(
    {
        "load", "loadtxt", "save", "savez", "savez_compressed", "savetxt", "fromfile", "tofile",
        "memmap", "genfromtxt", "fromregex", "ctypeslib", "ctypes", "lib", "testing", "f2py",
        "distutils", "DataSource", "os", "sys", "set_printoptions", "seterr", "setbufsize",
        "frombuffer", "show_config", "show_runtime", "info", "source", "dump", "dumps", "loads",
        "pickle", "cffi", "ffi", "disp",
        # roads to the interpreter's internals without a dunder: frames and code of generators,
        # tracebacks, the class hierarchy, and the stdlib modules numpy's submodules import
        # (``np.ma.core.builtins.open``, ``np.ma.core.operator.attrgetter('__globals__')``)
        "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "ag_frame", "ag_code", "f_back",
        "f_globals", "f_locals", "f_builtins", "f_code", "tb_frame", "tb_next", "mro", "core", "ma",
        "matlib", "builtins", "inspect", "operator", "functools", "warnings", "importlib", "types",
        "abc", "re", "gc", "weakref", "threading", "signal", "subprocess", "socket", "io", "pathlib",
        "shutil", "tempfile", "mmap", "platform", "attrgetter", "methodcaller",
        # attribute access inside a format string: '{0.__class__}'.format(x); use an f-string
        "format", "format_map",
    }
)
FORBIDDEN_NODES: dict[type, str] = {
    ast.Global: "`global` statements",
    ast.Nonlocal: "`nonlocal` statements",
    ast.AsyncFunctionDef: "async functions",
    ast.Await: "await",
    ast.Yield: "generators (yield)",
    ast.YieldFrom: "generators (yield from)",
    ast.With: "`with` blocks",
    ast.AsyncWith: "`with` blocks",
    ast.ClassDef: "class definitions",
    ast.Try: "try/except blocks (they would hide errors and the time-limit interrupt)",
}
if hasattr(ast, "TryStar"):
    FORBIDDEN_NODES[ast.TryStar] = "try/except*"

SAFE_BUILTINS = (
    "abs all any bool dict divmod enumerate filter float int isinstance len list map max min "
    "pow range reversed round set sorted str sum tuple zip ValueError ZeroDivisionError "
    "True False None"
).split()

INTERFACE_DOC = (
    "def compute_reward(prev, action, state, memory) -> tuple[float, dict[str, float]]"
)

#: ``--shaping potential``: the program defines a potential over one state instead of a reward;
#: training adds gamma * phi(s') - phi(s) to the task's own reward (Ng, Harada & Russell 1999).
#: One state and nothing else (no memory, no action): a potential that depends on history would
#: no longer leave the optimal policy unchanged.
POTENTIAL_FUNCTION = "compute_potential"
POTENTIAL_INTERFACE_DOC = "def compute_potential(state) -> tuple[float, dict[str, float]]"
#: the arguments each function a program may be asked for must accept, and its documented form
SIGNATURES: dict[str, tuple[tuple[str, ...], str]] = {
    FUNCTION_NAME: (PARAMS, INTERFACE_DOC),
    POTENTIAL_FUNCTION: (("state",), POTENTIAL_INTERFACE_DOC),
}


@dataclass
class Finding:
    """One problem found in a program: where and what, phrased for an LLM to fix it."""

    check: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.message}"


@dataclass
class RewardProgram:
    """A reward program's source text and identity. Untrusted: never executed here."""

    source: str

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()[:12]

    @classmethod
    def from_file(cls, path: Path | str) -> "RewardProgram":
        """Read a reward file; a missing, unreadable, binary or empty file is a one-line error
        with the fix, before any run directory is made (a critic verdict on an empty file would
        blame the code for a wrong path)."""
        p = Path(path)
        fix = "give the .py file that defines compute_reward(prev, action, state, memory)"
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise RewardProgramError(f"reward file {p} does not exist", "check the path") from None
        except IsADirectoryError:
            raise RewardProgramError(f"reward file {p} is a directory", fix) from None
        except OSError as exc:
            raise RewardProgramError(f"cannot read reward file {p}: {exc.strerror or exc}", "check the file's permissions") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = "\x00"
        if "\x00" in text:
            raise RewardProgramError(f"reward file {p} is binary, not Python source (UTF-8 text)", fix)
        if not text.strip():
            raise RewardProgramError(f"reward file {p} is empty", fix)
        return cls(source=text)

    def normalized_ast(self) -> str:
        """A canonical dump used to drop duplicates that differ only in comments or layout."""
        tree = ast.parse(self.source)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef,)) and ast.get_docstring(node):
                node.body = node.body[1:] or [ast.Pass()]
        return ast.dump(tree, annotate_fields=False, include_attributes=False)


# ---------------------------------------------------------------------------------------------
# Static policy


def _strip_annotations(tree: ast.AST) -> ast.AST:
    """Drop type annotations: they are evaluated at definition time and a missing ``Tuple``
    import crashed a peer tool's rewards; they carry no meaning for the reward."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            node.returns = None
            for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                a.annotation = None
            if node.args.vararg:
                node.args.vararg.annotation = None
            if node.args.kwarg:
                node.args.kwarg.annotation = None
    return tree


def _is_typing_import(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom) and node.module in ("typing", "__future__"):
        return True
    return isinstance(node, ast.Import) and all(a.name == "typing" for a in node.names)


def prepare_tree(source: str) -> ast.Module:
    """Parse and apply the harmless clean-ups (annotations, ``typing`` imports removed)."""
    tree = ast.parse(source)
    tree.body = [n for n in tree.body if not _is_typing_import(n)]
    # AnnAssign at module level (``X: float = 1``) becomes a plain assignment
    new_body: list[ast.stmt] = []
    for n in tree.body:
        if isinstance(n, ast.AnnAssign) and n.value is not None:
            new_body.append(ast.copy_location(ast.Assign(targets=[n.target], value=n.value), n))
        else:
            new_body.append(n)
    tree.body = new_body
    _strip_annotations(tree)
    return ast.fix_missing_locations(tree)


def check_source(source: str, function: str = FUNCTION_NAME) -> list[Finding]:
    """Apply the static policy; an empty list means the program may be compiled."""
    if len(source) > MAX_SOURCE_CHARS:
        return [Finding("size", f"the program is {len(source)} characters; keep it under {MAX_SOURCE_CHARS}")]
    try:
        tree = prepare_tree(source)
    except SyntaxError as exc:
        return [Finding("syntax", f"SyntaxError: {exc.msg}", exc.lineno)]
    findings: list[Finding] = []
    n_nodes = sum(1 for _ in ast.walk(tree))
    if n_nodes > MAX_AST_NODES:
        findings.append(Finding("size", f"the program has {n_nodes} syntax nodes; keep it under {MAX_AST_NODES}"))
    findings += _check_top_level(tree)
    findings += _check_nodes(tree)
    findings += _check_defaults(tree)
    findings += _check_module_state(tree)
    findings += _check_signature(tree, function)
    return findings


def _check_top_level(tree: ast.Module) -> list[Finding]:
    out: list[Finding] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # docstring
        if isinstance(node, ast.Assign) and _is_constant_expr(node.value):
            continue
        out.append(
            Finding(
                "top_level",
                "only imports, constant assignments and function definitions may appear at "
                f"module level, not {type(node).__name__}",
                node.lineno,
            )
        )
    return out


def _is_constant_expr(node: ast.expr) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            f = sub.func
            # allow numpy/math constructors like np.array([...]) at module level
            if not (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in ("np", "numpy", "math")):
                return False
        if isinstance(sub, (ast.Lambda, ast.ListComp, ast.GeneratorExp, ast.DictComp, ast.SetComp)):
            return False
    return True


def _check_nodes(tree: ast.Module) -> list[Finding]:
    out: list[Finding] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", None)
        kind = FORBIDDEN_NODES.get(type(node))
        if kind:
            out.append(Finding("forbidden_syntax", f"{kind} are not allowed in a reward program", line))
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name not in ALLOWED_MODULES:
                    out.append(Finding("import", f"import of {a.name!r} is not allowed; only numpy and math can be imported", line))
        elif isinstance(node, ast.ImportFrom):
            if node.module not in ALLOWED_MODULES or node.level:
                out.append(Finding("import", f"import from {node.module!r} is not allowed; only numpy and math can be imported", line))
            elif any(a.name == "*" for a in node.names):
                out.append(Finding("import", "`from ... import *` is not allowed; import numpy as np", line))
            else:
                for a in node.names:
                    if a.name.startswith("_") or a.name in FORBIDDEN_ATTRS or a.name in STATEFUL:
                        out.append(Finding("import", f"importing {a.name!r} is not allowed", line))
        elif isinstance(node, ast.Name):
            if node.id.startswith("__") or node.id in FORBIDDEN_NAMES:
                out.append(Finding("forbidden_name", f"use of {node.id!r} is not allowed", line))
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("_"):
                out.append(Finding("private_attribute", f"access to private or dunder attribute {node.attr!r} is not allowed", line))
            elif node.attr in FORBIDDEN_ATTRS:
                out.append(Finding("forbidden_attribute", f"attribute {node.attr!r} (file, OS or memory access) is not allowed", line))
            elif node.attr in STATEFUL:
                out.append(Finding("state", f"{ast.unparse(node)[:60]} is not allowed: it keeps process-wide state (a random generator, "
                                            "error or print settings); a reward is a deterministic function of prev, action, state and "
                                            "memory", line))
            if isinstance(node.ctx, (ast.Store, ast.Del)):
                out.append(Finding("mutation", f"assigning to {ast.unparse(node)} is not allowed: a reward sets no attribute of anything "
                                               "(modules, functions and state views are read-only); keep values in local variables, "
                                               "or in `memory` to carry them to the next step of the episode", line))
        elif isinstance(node, ast.arg) and node.arg.startswith("__"):
            out.append(Finding("forbidden_name", f"argument name {node.arg!r} is not allowed", line))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            if isinstance(node.right, ast.Constant) and isinstance(node.right.value, (int, float)):
                if abs(node.right.value) > MAX_LITERAL_POWER:
                    out.append(Finding("size", f"exponent {node.right.value} is too large", line))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) > 2000:
            out.append(Finding("size", "string constant longer than 2000 characters", line))
    return out


#: methods that change a list, dict, set or array in place
MUTATING_METHODS = frozenset(
    {
        "append", "extend", "insert", "pop", "remove", "clear", "update", "setdefault", "popitem", "add", "discard",
        "sort", "reverse", "fill", "put", "itemset", "resize", "setfield", "partition", "byteswap", "__setitem__",
        "__iadd__", "intersection_update", "difference_update", "symmetric_difference_update",
    }
)
_USE_MEMORY = "keep state in `memory` (a dict that lives for one episode), the only place a value may outlive a call"


def _is_literal(node: ast.expr) -> bool:
    """An immutable literal: a number, string, bool or None, a negated one, or a tuple of them."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _is_literal(node.operand)
    return isinstance(node, ast.Tuple) and all(_is_literal(e) for e in node.elts)


def _check_defaults(tree: ast.Module) -> list[Finding]:
    """A default argument is made once and shared by every call: a list or dict there (``def
    compute_reward(prev, action, state, memory, seen=[])``) keeps state across calls and
    episodes, out of the critic's sight. Only immutable literals may be defaults."""
    out: list[Finding] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.Lambda)):
            for d in [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]:
                if not _is_literal(d):
                    name = getattr(node, "name", "lambda")
                    out.append(Finding("state", f"the default argument {ast.unparse(d)[:60]} of {name} is made once and shared by every "
                                                f"call, so it can keep state across calls and episodes; use a number, string, None or "
                                                f"a tuple of them as a default, and {_USE_MEMORY}", d.lineno))
    return out


_Fn = (ast.FunctionDef, ast.Lambda)


def _own_nodes(fn: ast.FunctionDef | ast.Lambda) -> list[ast.AST]:
    """The nodes of ``fn``'s body outside the functions and lambdas it defines (those are
    scopes of their own); the nested functions themselves are included, not their insides."""
    out: list[ast.AST] = []
    todo: list[ast.AST] = list(fn.body) if isinstance(fn.body, list) else [fn.body]
    while todo:
        n = todo.pop()
        out.append(n)
        if isinstance(n, _Fn):
            todo += [*n.args.defaults, *(d for d in n.args.kw_defaults if d is not None)]
            continue
        todo += ast.iter_child_nodes(n)
    return out


def _local_names(fn: ast.FunctionDef | ast.Lambda, nodes: list[ast.AST]) -> set[str]:
    """The names a function binds itself (arguments, assignments, nested defs): not the module's."""
    a = fn.args
    names = {x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs, *(v for v in (a.vararg, a.kwarg) if v)]}
    for n in nodes:
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            names.add(n.id)
        elif isinstance(n, ast.FunctionDef):
            names.add(n.name)
    return names


def _check_module_state(tree: ast.Module) -> list[Finding]:
    """A module-level value changed by a function (``HISTORY.append(v)``, ``SEEN[0] += 1``,
    ``np.add(a, b, out=BUF)``, also from a nested function or a lambda) keeps state across
    calls, and across episodes were the program not made afresh for each one: a reward that
    counts its calls can behave one way in the critic's dry run and another in training.
    Module-level values are constants."""
    module_names = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    if not module_names:
        return []
    out: list[Finding] = []
    seen: set[tuple[str, int]] = set()

    def flag(root: str, shadowed: set[str], node: ast.AST, how: str) -> None:
        line = getattr(node, "lineno", 0)
        if root in module_names and root not in shadowed and (root, line) not in seen:
            seen.add((root, line))
            out.append(Finding("state", f"the module-level {root!r} is changed at run time ({how}), which keeps state across calls; "
                                        f"module-level values are constants: {_USE_MEMORY}, e.g. memory[{root.lower()!r}]", line))

    def visit(fn: ast.FunctionDef | ast.Lambda, enclosing: set[str]) -> None:
        nodes = _own_nodes(fn)
        own = enclosing | _local_names(fn, nodes)
        for n in nodes:
            if isinstance(n, _Fn):
                visit(n, own)
            elif isinstance(n, (ast.Subscript, ast.Attribute)) and isinstance(n.ctx, (ast.Store, ast.Del)):
                flag(_root_name(n), own, n, f"{ast.unparse(n)[:60]} is assigned")
            elif isinstance(n, ast.Call):
                f = n.func
                if isinstance(f, ast.Attribute) and f.attr in MUTATING_METHODS:
                    flag(_root_name(f.value), own, n, f".{f.attr}() changes it")
                for kw in n.keywords:
                    if kw.arg == "out":
                        flag(_root_name(kw.value), own, n, "it is written through out=")

    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            visit(node, set())
    return out


def _root_name(node: ast.expr) -> str:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else ""


def _check_signature(tree: ast.Module, function: str) -> list[Finding]:
    params, doc = SIGNATURES.get(function, (PARAMS, INTERFACE_DOC))
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    if function not in funcs:
        names = ", ".join(funcs) or "none"
        return [Finding("signature", f"no top-level function named {function}; functions found: {names}. Define {doc}")]
    fn = funcs[function]
    args = [a.arg for a in fn.args.posonlyargs + fn.args.args]
    required = len(args) - len(fn.args.defaults)
    n = len(params)
    if len(args) < n and not fn.args.vararg or required > n:
        return [Finding("signature", f"{function} takes ({', '.join(args)}); it must accept {n} argument{'s' if n > 1 else ''} ({', '.join(params)})", fn.lineno)]
    has_return_value = any(isinstance(n, ast.Return) and n.value is not None for n in ast.walk(fn))
    if not has_return_value:
        return [Finding("signature", f"{function} never returns a value; return (total, {{name: value, ...}})", fn.lineno)]
    return []


# ---------------------------------------------------------------------------------------------
# Compilation (called only inside a sandboxed child)


def _modules() -> dict[str, Any]:
    """The read-only copies of numpy and math every program sees (``autoreward.readonly``)."""
    from autoreward.readonly import reward_modules

    return reward_modules(FORBIDDEN_ATTRS)


def _safe_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
    """The reward's ``__import__``: the read-only copies of numpy and math, however they are
    imported (``import numpy as N``, ``from numpy import linalg``); no submodule by its dotted
    name (``numpy.ctypeslib``) and nothing the static policy forbids by name."""
    if level or name not in ALLOWED_MODULES or any(str(a).startswith("_") or a in FORBIDDEN_ATTRS or a in STATEFUL for a in fromlist or ()):
        raise ImportError(f"import of {name!r} is not allowed; only numpy and math")
    return _modules()[name]


def _no_print(*args: Any, **kwargs: Any) -> None:
    """``print`` is accepted and ignored: the worker's stdout carries progress messages."""


def restricted_globals() -> dict[str, Any]:
    """The namespace a reward program runs in: a small builtin set, numpy and math."""
    safe = {name: getattr(builtins, name) for name in SAFE_BUILTINS if hasattr(builtins, name)}
    safe["print"] = _no_print
    safe["__import__"] = _safe_import
    mods = _modules()
    return {"__builtins__": safe, "np": mods["numpy"], "numpy": mods["numpy"], "math": mods["math"], "__name__": "reward_program"}


class Instantiator:
    """A checked program's code, made into a fresh function on demand.

    Each instance runs the module-level code again in a new namespace: new module-level values,
    new default arguments, module-level arrays frozen read-only. Training, evaluation and the
    dry run take a fresh instance for every episode, so whatever the static policy misses, no
    value outlives its episode: what the critic's dry run saw is what training gets.
    ``guard`` bounds the module-level code too (a constant like ``np.ones(10**9).cumsum()`` is
    one long C call the parent must be able to see and stop)."""

    def __init__(self, source: str, function: str = FUNCTION_NAME, guard: CallGuard | None = None) -> None:
        findings = check_source(source, function)
        if findings:
            raise RewardProgramError("; ".join(str(f) for f in findings))
        self.code = compile(prepare_tree(source), "<reward>", "exec")
        self.function, self.guard = function, guard

    def __call__(self) -> Callable[..., Any]:
        ns = restricted_globals()
        if self.guard is not None:
            self.guard.define(exec, self.code, ns)
        else:
            exec(self.code, ns)  # noqa: S102 - sandboxed child only, after the static policy
        for k, v in ns.items():
            if type(v) is np.ndarray:
                ns[k] = frozen_array(v)
        return ns[self.function]


def compile_program(source: str, function: str = FUNCTION_NAME, guard: CallGuard | None = None) -> Callable[..., Any]:
    """Check, then compile into the restricted namespace and return the reward function.

    Raises RewardProgramError with every static finding. Must only run in a sandboxed child.
    """
    return Instantiator(source, function, guard)()


def compile_expression(expr: str, names: tuple[str, ...]) -> Callable[..., Any]:
    """Compile a fitness expression (``ep`` → float) under the same policy as reward code.

    Preset fitness expressions come from trusted cards, but a designer may propose one for a
    free-form task; both go through this one path, inside the sandboxed child.
    """
    src = f"def _expr({', '.join(names)}):\n    return ({expr})\n"
    try:
        tree = ast.parse(src)
    except SyntaxError as exc:
        raise RewardProgramError(f"fitness expression is not valid Python: {exc.msg}") from None
    findings = _check_nodes(tree)
    if findings:
        raise RewardProgramError("fitness expression: " + "; ".join(str(f) for f in findings))
    ns = restricted_globals()
    exec(compile(tree, "<fitness>", "exec"), ns)  # noqa: S102
    return ns["_expr"]


# ---------------------------------------------------------------------------------------------
# Calling a compiled reward (inside a sandboxed child)


class RewardOutputError(ValueError):
    """The reward function returned something that is not (finite float, {name: finite float})."""


class RewardError(RuntimeError):
    """A reward call failed during training or evaluation: the message says where (step, env,
    episode), ``__cause__`` is what the program raised."""


def _as_float(x: Any) -> Any:
    """A one-element array, a numpy scalar or a bool as a Python number; anything else as is.
    A bool is a 0/1 indicator (``{"upright": state.is_healthy}``): it trains the same as 1.0/0.0,
    so rejecting it (as we once did) sent a working reward back for style, not behaviour."""
    if isinstance(x, np.ndarray) and x.size == 1:
        x = x.reshape(()).item()
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, bool):
        x = float(x)
    return x


def validate_output(out: Any, function: str = FUNCTION_NAME) -> tuple[float, dict[str, float]]:
    """Turn a reward (or potential) function's return value into (total, components) or raise
    RewardOutputError with a message saying exactly what was wrong."""
    # fast path for the common, well-formed answer: this runs once per training step
    if type(out) is tuple and len(out) == 2 and type(out[0]) is float and type(out[1]) is dict and math.isfinite(out[0]):
        comps = out[1]
        if all(type(k) is str and type(v) is float and math.isfinite(v) for k, v in comps.items()):
            return out[0], comps
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise RewardOutputError(
            f"{function} must return a pair (total, components_dict), got {type(out).__name__}"
            + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "")
        )
    total, comps = _as_float(out[0]), out[1]
    if not isinstance(total, (int, float)):
        raise RewardOutputError(f"the total reward must be a float, got {type(total).__name__}")
    if not math.isfinite(total):
        raise RewardOutputError(f"the total reward is {total}")
    if not isinstance(comps, dict):
        raise RewardOutputError(f"the components must be a dict of name -> float, got {type(comps).__name__}")
    clean: dict[str, float] = {}
    for k, v in comps.items():
        v = _as_float(v)
        if not isinstance(k, str):
            raise RewardOutputError(f"component names must be strings, got {k!r}")
        if not isinstance(v, (int, float)):
            raise RewardOutputError(f"component {k!r} must be a float, got {type(v).__name__}")
        if not math.isfinite(v):
            raise RewardOutputError(f"component {k!r} is {v}")
        clean[k] = float(v)
    return float(total), clean


#: the component name under which a total's difference from the sum of its components is shown
#: (a total like ``exp(0.15 * sum(terms))`` trains; the analyzer, ``show`` and the refine prompt
#: present what the components do not explain as this term of its own)
NOT_IN_COMPONENTS = "(not in components)"


def not_in_components(total: float, comps: dict[str, float]) -> float:
    """``total - sum(components)``, or 0.0 when they agree to rounding (or there are none)."""
    if not comps:
        return 0.0
    s = math.fsum(comps.values())
    return 0.0 if abs(s - total) <= 1e-6 * max(1.0, abs(total), abs(s)) else total - s


def frozen_array(value: Any, dtype: Any = None) -> np.ndarray:
    """A read-only copy of ``value`` whose memory is a ``bytes`` object.

    ``arr.flags.writeable = False`` alone is not enough: an array that owns its data (or whose
    ``.base`` does) can be made writable again with ``setflags(write=True)``. Neither this
    array nor any view of it can, because the memory it views is immutable."""
    a = np.asarray(value, dtype=dtype)
    return np.frombuffer(a.tobytes(), dtype=a.dtype).reshape(a.shape)


def is_frozen(a: np.ndarray) -> bool:
    """Whether ``a`` views immutable memory (made by :func:`frozen_array`, or a view of it)."""
    base = a.base
    while type(base) is np.ndarray:
        base = base.base
    return type(base) is bytes


def readonly_action(action: Any) -> np.ndarray:
    """The action as the reward sees it: a numpy array it cannot write or make writable again
    (discrete actions become 0-d arrays), so a reward cannot change what the env is about to
    receive or has received."""
    if type(action) is np.ndarray and is_frozen(action):
        return action  # rows of a batch the caller already froze: no copy per step
    return frozen_array(action)


_C = TypeVar("_C", bound="_Caller")


class _Caller:
    """What both callers share: the compiled program, its guard, a fresh instance per episode."""

    function = FUNCTION_NAME

    def __init__(self, fn: Callable[..., Any], guard: CallGuard | None = None, make: Instantiator | None = None) -> None:
        self.fn = fn
        self.guard = guard
        self.make = make

    @classmethod
    def compile(cls: type[_C], source: str, call_seconds: float | None = None) -> _C:
        """Compile ``source`` (static policy first) and guard each call, and the program's
        module-level code, with ``call_seconds``."""
        guard = CallGuard(call_seconds) if call_seconds else None
        make = Instantiator(source, cls.function, guard)
        return cls(make(), guard, make)

    def episode(self: _C) -> _C:
        """The caller for a new episode: the program made afresh (:class:`Instantiator`), so
        nothing it kept outside ``memory`` reaches the next episode."""
        return self if self.make is None else type(self)(self.make(), self.guard, self.make)


class RewardCaller(_Caller):
    """The one way a compiled reward is called: read-only action, the per-call time guard,
    output validation. Training, evaluation and the critic's dry run all go through it, so a
    reward behaves the same wherever it is judged.

    Exceptions are the caller's to place: :class:`~autoreward.sandbox.child.CallTimeout` when
    the guard fires, :class:`RewardOutputError` for a malformed return value, and whatever the
    program itself raised.
    """

    def __call__(self, prev: Any, action: Any, state: Any, memory: dict[str, Any]) -> tuple[float, dict[str, float]]:
        a = readonly_action(action)
        if self.guard is not None:
            return validate_output(self.guard.call(self.fn, prev, a, state, memory))
        return validate_output(self.fn(prev, a, state, memory))


class PotentialCaller(_Caller):
    """The one way a compiled potential is called (``--shaping potential``): ``phi(state)`` with
    the same per-call guard, output validation and per-episode instances as :class:`RewardCaller`."""

    function = POTENTIAL_FUNCTION

    def __call__(self, state: Any) -> tuple[float, dict[str, float]]:
        out = self.guard.call(self.fn, state) if self.guard is not None else self.fn(state)
        return validate_output(out, POTENTIAL_FUNCTION)


def shaping_term(phi: float, phi_next: float, gamma: float, terminal: bool) -> float:
    """``gamma * phi(s') - phi(s)``, with ``phi(s') = 0`` when ``s'`` is terminal (Ng, Harada &
    Russell 1999): the shaped return then differs from the task's by ``-phi(s_0)`` only, so the
    optimal policy is the task's. At a time-limit truncation ``s'`` is not terminal and keeps its
    potential: the value bootstrapped there stands for the episode going on."""
    return gamma * (0.0 if terminal else phi_next) - phi
