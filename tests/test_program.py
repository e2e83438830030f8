"""The static policy on reward programs (program.py)."""

from __future__ import annotations

import pytest

from autoreward.errors import RewardProgramError
from autoreward.program import RewardProgram, check_source, compile_program, compile_expression

GOOD = """
import numpy as np
import math
SCALE = 2.0

def helper(x):
    return SCALE * x

def compute_reward(prev, action, state, memory):
    memory["n"] = memory.get("n", 0) + 1
    v = helper(state.x_velocity)
    return v, {"v": v}
"""


def checks(src: str) -> list[str]:
    return [f.check for f in check_source(src)]


def test_good_program_passes(backwards_source):
    assert check_source(GOOD) == []
    assert check_source(backwards_source) == []


@pytest.mark.parametrize(
    "snippet, check",
    [
        ("import os", "import"),
        ("import subprocess as np", "import"),
        ("from os import path", "import"),
        ("from numpy import *", "import"),
        ("from numpy import load", "import"),
        ("x = open('/etc/passwd')", "top_level"),
    ],
)
def test_forbidden_imports_and_top_level(snippet, check):
    assert check in checks(snippet + "\n" + GOOD)


@pytest.mark.parametrize(
    "body, check",
    [
        ("open('/etc/passwd')", "forbidden_name"),
        ("eval('1')", "forbidden_name"),
        ("exec('x=1')", "forbidden_name"),
        ("compile('1','','eval')", "forbidden_name"),
        ("getattr(state, 'x')", "forbidden_name"),
        ("globals()", "forbidden_name"),
        ("__import__('os')", "forbidden_name"),
        ("state.__class__", "private_attribute"),
        ("state._asdict()", "private_attribute"),
        ("np.load('x.npy')", "forbidden_attribute"),
        ("np.ctypeslib", "forbidden_attribute"),
        ("2 ** 100000", "size"),
    ],
)
def test_forbidden_expressions(body, check):
    src = f"import numpy as np\ndef compute_reward(prev, action, state, memory):\n    x = {body}\n    return 0.0, {{}}\n"
    assert check in checks(src)


def test_forbidden_statements():
    for stmt in ("global G", "with x: pass", "try:\n        pass\n    except Exception:\n        pass"):
        src = f"def compute_reward(prev, action, state, memory):\n    {stmt}\n    return 0.0, {{}}\n"
        assert "forbidden_syntax" in checks(src), stmt


def test_mutating_state_is_refused():
    src = "def compute_reward(prev, action, state, memory):\n    state.x_velocity = 5.0\n    return 0.0, {}\n"
    assert "mutation" in checks(src)


def test_signature_and_syntax_errors_are_precise():
    f = check_source("def reward(prev, action, state, memory):\n    return 0.0, {}\n")
    assert f[0].check == "signature" and "compute_reward" in f[0].message and "reward" in f[0].message
    f = check_source("def compute_reward(a, b):\n    return 0.0, {}\n")
    assert f[0].check == "signature" and "4 arguments" in f[0].message
    f = check_source("def compute_reward(prev, action, state, memory):\n    return 0.0, {\n")
    assert f[0].check == "syntax" and f[0].line is not None
    f = check_source("def compute_reward(prev, action, state, memory):\n    x = 1\n")
    assert f[0].check == "signature" and "never returns" in f[0].message


def test_size_limit():
    assert checks("x = 1\n" * 5000 + GOOD) == ["size"]


def test_annotations_and_typing_imports_are_harmless():
    """A peer tool's rewards crashed with NameError: Tuple; annotations are stripped instead."""
    src = (
        "from typing import Dict, Tuple\nimport numpy as np\n"
        "def compute_reward(prev, action, state, memory: Dict) -> Tuple[float, Dict[str, float]]:\n"
        "    r: float = 1.0\n    return r, {'r': r}\n"
    )
    assert check_source(src) == []
    fn = compile_program(src)
    assert fn(None, None, None, {}) == (1.0, {"r": 1.0})


def test_compiled_namespace_is_restricted():
    fn = compile_program(GOOD.replace("v = helper(state.x_velocity)", "v = float(len(list(iter([1]))))"))
    with pytest.raises(NameError):
        fn(None, None, None, {})
    with pytest.raises(RewardProgramError):
        compile_program("import os\n" + GOOD)


def test_duplicate_detection_ignores_comments_and_docstrings():
    a = RewardProgram(GOOD)
    b = RewardProgram(GOOD.replace("def helper(x):", "def helper(x):\n    '''doc'''  # comment"))
    assert a.normalized_ast() == b.normalized_ast()
    assert a.sha != b.sha


def test_fitness_expressions_use_the_same_policy():
    f = compile_expression("ep * 2", ("ep",))
    assert f(3) == 6
    with pytest.raises(RewardProgramError):
        compile_expression("ep.__class__", ("ep",))
    with pytest.raises(RewardProgramError):
        compile_expression("open('x')", ("ep",))


def test_reading_a_missing_file_is_one_line():
    with pytest.raises(RewardProgramError, match="does not exist"):
        RewardProgram.from_file("/nonexistent/reward.py")
