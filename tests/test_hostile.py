"""A corpus of hostile and broken reward programs: every one is rejected by the static policy or
contained at run time (``check_program`` on the HalfCheetah recording), and no secret of the
parent's environment ever shows up in anything the check wrote.

Where a case got past the static policy and escaped, the policy or the runtime was fixed (see
``program.FORBIDDEN_ATTRS``, ``program.frozen_array``, the parent's heartbeat); the OS-level
confinement beneath both is tested on its own in ``test_confinement.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from autoreward.critic import check_program
from autoreward.program import MAX_SOURCE_CHARS, RewardProgram, check_source

SECRET = "sk-hostile-corpus-secret-4242"
HEAD = "import numpy as np\nimport math\n\ndef compute_reward(prev, action, state, memory):\n"
OK_RETURN = "    return -state.x_velocity, {}\n"


def body(*lines: str) -> str:
    """A reward whose body is ``lines`` (indented) and which otherwise returns a valid reward."""
    return HEAD + "".join(f"    {ln}\n" for ln in lines) + OK_RETURN


# (case id, program, a phrase the static finding must contain)
STATIC = [
    # object-graph escapes
    ("subclasses", body("x = ().__class__.__bases__[0].__subclasses__()"), "dunder"),
    ("mro-method", body("x = np.ndarray.mro()[-1]"), "'mro'"),
    ("object-name", body("x = object.__subclasses__()"), "'object'"),
    ("type-name", body("x = type(state)"), "'type'"),
    ("lambda-globals", body("g = (lambda: 0).__globals__"), "dunder"),
    ("function-globals", body("g = compute_reward.__globals__['np']"), "dunder"),
    ("builtin-self", body("b = print.__self__"), "dunder"),
    ("init-globals", body("g = state.__init__.__globals__"), "dunder"),
    ("genexp-gi-frame", body("f = (x for x in [1]).gi_frame"), "'gi_frame'"),
    ("frame-walk", body("memory['g'] = (memory['g'].gi_frame.f_back.f_globals for _ in [0])", "x = list(memory['g'])"), "'gi_frame'"),
    ("f-back", body("f = memory['frame'].f_back"), "'f_back'"),
    ("traceback-frame", body("t = memory['tb'].tb_frame.f_globals"), "'tb_frame'"),
    ("gi-code", body("c = (x for x in [1]).gi_code"), "'gi_code'"),
    ("exception-traceback", body("t = ValueError().__traceback__"), "dunder"),
    # numpy internals: memory, ctypes, files as functions and as array methods, pickles
    ("ctypeslib", body("p = np.ctypeslib.as_array"), "'ctypeslib'"),
    ("array-ctypes", body("p = np.zeros(3).ctypes.data"), "'ctypes'"),
    ("bitgen-ctypes", body("p = np.random.default_rng().bit_generator.ctypes"), "'ctypes'"),
    ("bitgen-cffi", body("p = np.random.default_rng().bit_generator.cffi"), "'cffi'"),
    ("np-lib", body("m = np.lib.format.open_memmap('x.npy', mode='w+', shape=(3,))"), "'lib'"),
    ("stride-tricks", body("v = np.lib.stride_tricks.as_strided(action)"), "'lib'"),
    ("memmap", body("m = np.memmap('x', mode='w+', shape=(3,))"), "'memmap'"),
    ("np-save", body("np.save('/tmp/x.npy', action)"), "'save'"),
    ("np-savez", body("np.savez('/tmp/x.npz', a=action)"), "'savez'"),
    ("np-savetxt", body("np.savetxt('/tmp/x.txt', action)"), "'savetxt'"),
    ("np-load", body("x = np.load('/etc/passwd')"), "'load'"),
    ("np-loadtxt", body("x = np.loadtxt('/etc/passwd')"), "'loadtxt'"),
    ("np-genfromtxt", body("x = np.genfromtxt('/etc/passwd')"), "'genfromtxt'"),
    ("np-fromfile", body("x = np.fromfile('/etc/passwd')"), "'fromfile'"),
    ("np-fromregex", body("x = np.fromregex('/etc/passwd', 'r', [('a', 'S5')])"), "'fromregex'"),
    ("np-frombuffer", body("x = np.frombuffer(b'abcdefgh')"), "'frombuffer'"),
    ("datasource", body("f = np.DataSource().open('/etc/passwd')"), "'DataSource'"),
    ("array-tofile", body("action.tofile('/tmp/escape')"), "'tofile'"),
    ("array-dump", body("np.zeros(3).dump('/tmp/escape.pkl')"), "'dump'"),
    ("array-dumps", body("b = np.zeros(3).dumps()"), "'dumps'"),
    ("save-via-getattr", body("getattr(np, 'sa' + 've')('/tmp/x.npy', action)"), "'getattr'"),
    ("save-via-dict", body("np.__dict__['save']('/tmp/x.npy', action)"), "dunder"),
    ("save-via-vars", body("vars(np)['save']('/tmp/x.npy', action)"), "'vars'"),
    ("np-testing", body("np.testing.assert_equal(1, 1)"), "'testing'"),
    ("ma-builtins-open", body("np.ma.core.builtins.open('/tmp/escape', 'w')"), "'ma'"),
    ("ma-attrgetter", body("g = np.ma.core.operator.attrgetter('__globals__')(compute_reward)"), "'ma'"),
    ("ma-inspect-env", body("e = np.ma.core.inspect.sys.modules['os'].environ"), "'ma'"),
    ("np-core", body("m = np.core.multiarray"), "'core'"),
    ("matlib-warnings", body("w = np.matlib.warnings"), "'matlib'"),
    ("bitgen-re", body("r = np.random.bit_generator.re"), "'re'"),
    ("pickle-loads", body("x = np.ma.loads(b'cos\\nsystem\\n(S\"id\"\\ntR.')"), "'ma'"),
    ("vectorize-open", body("f = np.vectorize(open)"), "'open'"),
    ("show-runtime-flood", body("np.show_runtime()"), "'show_runtime'"),
    ("printoptions", body("np.set_printoptions(threshold=10**9)"), "'set_printoptions'"),
    ("seterr", body("np.seterr(all='ignore')"), "'seterr'"),
    ("memoryview", body("m = memoryview(action)"), "'memoryview'"),
    # format strings reaching attributes
    ("format-attr", body("s = '{0.__class__.__mro__}'.format(state)"), "'format'"),
    ("format-map", body("s = '{x.f_globals}'.format_map(memory)"), "'format_map'"),
    # import tricks
    ("import-os", "import os\n" + body(), "only numpy and math"),
    ("import-socket", "import socket\n" + body(), "only numpy and math"),
    ("import-signal", "import signal\n" + body("pass"), "only numpy and math"),
    ("import-submodule", "import numpy.ctypeslib\n" + body(), "only numpy and math"),
    ("from-numpy-lib", "from numpy import lib\n" + body(), "'lib'"),
    ("from-numpy-star", "from numpy import *\n" + body(), "import *"),
    ("from-numpy-private", "from numpy import _core\n" + body(), "'_core'"),
    ("relative-import", "from . import secrets\n" + body(), "not allowed"),
    ("importlib", "import importlib\n" + body(), "only numpy and math"),
    ("dunder-import", body("os = __import__('os')"), "'__import__'"),
    ("import-in-function", body("import subprocess"), "only numpy and math"),
    # builtins tampering, dynamic code
    ("builtins-dict", body("o = __builtins__['open']"), "'__builtins__'"),
    ("globals", body("g = globals()"), "'globals'"),
    ("eval", body("x = eval('1 + 1')"), "'eval'"),
    ("exec", body("exec('x = 1')"), "'exec'"),
    ("compile", body("c = compile('1', 'f', 'eval')"), "'compile'"),
    ("breakpoint", body("breakpoint()"), "'breakpoint'"),
    ("open", body("open('/tmp/escape', 'w').write('x')"), "'open'"),
    ("env-through-np", body("e = np.os.environ['OPENAI_API_KEY']"), "'os'"),
    # syntax that hides errors or state
    ("try-swallows-timeout", body("try:", "    x = 1", "except BaseException:", "    pass"), "try/except"),
    ("with-block", body("with np.errstate(all='ignore'):", "    pass"), "`with`"),
    ("class", "class A:\n    pass\n" + body(), "class definitions"),
    ("global", body("global counter"), "`global`"),
    ("generator", HEAD + "    yield 1\n", "generators"),
    ("async", "async def compute_reward(prev, action, state, memory):\n    return 0.0, {}\n", "async"),
    ("mutate-state", body("state.x_position = 0.0"), "read-only"),
    ("mutate-np", body("np.pi = 3"), "not allowed"),
    ("module-level-call", "import numpy as np\nprint('hi')\n" + body(), "module level"),
    ("flags-object", body("f = state.joint_angles.flags", "f.writeable = True"), "read-only"),
    # patching what judges the reward (issue 21): modules through any alias, submodules, functions
    ("alias-patch", "import numpy as N\n\ndef fake_mean(*args, **kwargs):\n    return 1000.0\n\n" + body("N.mean = fake_mean"), "assigning to N.mean"),
    ("alias-delete", "import numpy as N\n" + body("del N.mean"), "assigning to N.mean"),
    ("math-alias-patch", "import math as M\n" + body("M.sqrt = abs"), "assigning to M.sqrt"),
    ("submodule-patch", "from numpy import linalg\n" + body("linalg.norm = abs"), "assigning to linalg.norm"),
    ("submodule-alias-patch", "import numpy as np\nL = np.linalg\n" + body("L.norm = abs"), "assigning to L.norm"),
    ("reexport-patch", "from numpy import fft\n" + body("fft.fft = np.abs"), "assigning to fft.fft"),
    ("memory-alias-patch", body("memory['m'] = np", "m = memory['m']", "m.mean = abs"), "assigning to m.mean"),
    ("function-attribute-state", "from numpy import mean\n" + body("mean.calls = 1"), "assigning to mean.calls"),
    ("own-attribute-state", body("compute_reward.calls = 1"), "assigning to compute_reward.calls"),
    ("random-seed-state", body("np.random.seed(memory.get('k', 0))"), "process-wide state"),
    ("from-random", "from numpy import random\n" + body(), "'random'"),
    ("seterrcall-state", body("np.seterrcall(abs)"), "process-wide state"),
    # state across calls and episodes outside memory: defaults, module-level containers, closures
    ("default-list", HEAD.replace("memory):", "memory, seen=[]):") + "    seen.append(1)\n" + OK_RETURN, "default argument []"),
    ("default-dict", HEAD.replace("memory):", "memory, cache={}):") + "    cache['n'] = cache.get('n', 0) + 1\n" + OK_RETURN, "keep state in `memory`"),
    ("default-array", HEAD.replace("memory):", "memory, buf=np.zeros(1)):") + "    buf[0] += 1\n" + OK_RETURN, "shared by every call"),
    ("helper-default", "def count(x, acc={'n': 0}):\n    acc['n'] += x\n    return acc['n']\n\n" + body("n = count(1)"), "default argument"),
    ("lambda-default", body("f = lambda v, c=[]: c.append(v)", "f(1)"), "default argument []"),
    ("module-list-append", "HISTORY = []\n" + body("HISTORY.append(state.x_velocity)"), "module-level 'HISTORY' is changed"),
    ("module-dict-item", "SEEN = {}\n" + body("SEEN['n'] = SEEN.get('n', 0) + 1"), "module-level 'SEEN' is changed"),
    ("module-array-item", "import numpy as np\nBUF = np.zeros(1)\n" + body("BUF[0] += 1.0"), "module-level 'BUF' is changed"),
    ("module-array-out", "import numpy as np\nBUF = np.zeros(1)\n" + body("np.add(BUF, 1.0, out=BUF)"), "written through out="),
    ("module-array-fill", "import numpy as np\nBUF = np.zeros(1)\n" + body("BUF.fill(memory.get('k', 0))"), ".fill() changes it"),
    ("module-set-add", "SEEN = {0}\n" + body("SEEN.add(len(SEEN))"), "module-level 'SEEN' is changed"),
    ("module-nested-list", "BOX = ([0],)\n" + body("BOX[0].append(1)"), "module-level 'BOX' is changed"),
    ("helper-changes-module", "LOG = []\n\ndef log(v):\n    LOG.extend([v])\n    return len(LOG)\n\n" + body("n = log(1)"), "module-level 'LOG' is changed"),
    ("closure-changes-module", "LOG = []\n" + body("def remember(v):", "    LOG.append(v)", "remember(1)"), "module-level 'LOG' is changed"),
    ("lambda-closure-changes-module", "LOG = []\n" + body("push = lambda v: LOG.append(v)", "push(1)"), "module-level 'LOG' is changed"),
    ("closure-default-state", body("def counter(c=[0]):", "    c[0] += 1", "    return c[0]", "n = counter()"), "default argument [0]"),
    # bombs the policy sees
    ("power-bomb", body("x = 2 ** 1000000"), "too large"),
    ("huge-program", body("x = 1") + "#" * MAX_SOURCE_CHARS, "characters"),
    ("huge-string", body("s = '" + "x" * 2500 + "'"), "2000 characters"),
]


@pytest.fixture(autouse=True)
def _secret_in_the_parent(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def no_secret_in(workdir: Path) -> None:
    for p in workdir.rglob("*"):
        if p.is_file():
            assert SECRET.encode() not in p.read_bytes(), f"the secret leaked into {p}"


@pytest.mark.parametrize("src, phrase", [pytest.param(s, ph, id=i) for i, s, ph in STATIC])
def test_rejected_by_the_static_policy(src, phrase, cheetah, cheetah_recording, tmp_path):
    findings = check_source(src)
    assert findings and phrase in "; ".join(str(f) for f in findings), findings
    v = check_program(RewardProgram(src), cheetah, "run_backwards", tmp_path, cheetah_recording)
    assert not v.accepted and [c.name for c in v.checks] == ["static"]
    assert not (tmp_path / "job.json").exists()  # no sandbox was even started
    no_secret_in(tmp_path)


C_LONG = "np.convolve(np.ones(10**6), np.ones(10**6))"  # one C call of ~10**12 multiply-adds

# (case id, program, phrases of which the verdict's message must contain one)
RUNTIME = [
    # C-level long calls the in-child guard cannot interrupt: the parent kills the job
    ("c-convolve", body(f"x = {C_LONG}"), ["transition 0", "could not be interrupted"]),
    ("c-convolve-late", body("memory['t'] = memory.get('t', 0) + 1", "if memory['t'] == 6:", f"    x = {C_LONG}"), ["transition 5"]),
    ("c-module-level", f"import numpy as np\nBIG = {C_LONG}\n\ndef compute_reward(prev, action, state, memory):\n" + OK_RETURN, ["being defined"]),
    ("c-sum-range", body("x = sum(range(10**12))"), ["longer than"]),
    ("c-vectorize", body("x = np.vectorize(lambda v: sum(range(10**12)))(np.ones(2))"), ["longer than"]),
    # Python-level CPU bombs: the in-child guard interrupts them
    ("while-true", body("while True:", "    pass"), ["transition 0", "longer than"]),
    ("matrix-power", body("x = np.linalg.matrix_power(np.ones((600, 600)) / 600, 10**9)"), ["longer than"]),
    # memory bombs
    ("memory-array", body("x = np.ones((1 << 33,))"), ["memory", "MemoryError"]),
    ("memory-string", body("s = 'x' * 10**11"), ["memory", "MemoryError"]),
    # 320 MB more each call: the limit is hit within a few calls (at 80 MB a call the dry run's
    # slowness rule, 50 ms a call on average, stopped it first)
    ("memory-growth", body("memory['junk'] = memory.get('junk', []) + [np.ones(4 * 10**7)]"), ["memory", "MemoryError"]),
    # deep recursion
    ("recursion", "def f(n):\n    return f(n + 1)\n\n" + body("x = f(0)"), ["RecursionError"]),
    ("mutual-recursion", "def f(n):\n    return g(n)\n\ndef g(n):\n    return f(n)\n\n" + body("x = f(0)"), ["RecursionError"]),
    # read-only state and action, even after setflags
    ("setflags-state", body("state.joint_angles.setflags(write=True)", "state.joint_angles[0] = 1.0"), ["WRITEABLE"]),
    ("setflags-action-base", body("action.base.setflags(write=True)"), ["WRITEABLE"]),
    ("setflags-prev-base", body("b = prev.joint_velocities.base", "b.setflags(write=True)"), ["WRITEABLE"]),
    ("copyto-action", body("np.copyto(action, 0.0)"), ["read-only"]),
    ("put-state", body("np.put(state.joint_angles, [0], [1.0])"), ["read-only"]),
    # NaN / inf in the total or a component, late exceptions
    ("nan-total", HEAD + "    return float(np.log(-1.0 + 0 * state.x_velocity)), {}\n", ["the total reward is nan"]),
    ("inf-total", HEAD + "    return float(np.exp(1000.0 + state.x_velocity)), {}\n", ["the total reward is inf"]),
    ("nan-component", HEAD + "    v = -state.x_velocity\n    return v, {'v': v, 'bad': float('nan')}\n", ["component 'bad' is nan"]),
    ("inf-component", HEAD + "    v = -state.x_velocity\n    return v, {'v': v, 'bad': -float('inf')}\n", ["component 'bad' is -inf"]),
    ("late-exception", body("memory['t'] = memory.get('t', 0) + 1", "if memory['t'] == 150:", "    raise ValueError('late')"), ["transition 149", "ValueError: late"]),
    ("late-zero-division", body("memory['t'] = memory.get('t', 0) + 1", "x = 1 / (memory['t'] - 90)"), ["ZeroDivisionError", "transition 89"]),
    # builtins tampering stays inside the program's own namespace
    ("shadow-builtin", "len = None\n\n" + body("n = len([1])"), ["TypeError"]),
    ("unknown-name", body("x = os.environ"), ["NameError"]),
]


SLOW = {"memory-growth"}  # ~8 s: a few dozen calls before the limit


@pytest.mark.parametrize("src, phrases", [pytest.param(s, ph, id=i, marks=[pytest.mark.slow] if i in SLOW else []) for i, s, ph in RUNTIME])
def test_contained_at_run_time(src, phrases, cheetah, cheetah_recording, tmp_path):
    assert not check_source(src), "this case must get past the static policy to test the runtime"
    v = check_program(RewardProgram(src), cheetah, "run_backwards", tmp_path, cheetah_recording)
    assert not v.accepted and v.failed.name == "dry_run", v.message
    assert any(p in v.failed.message for p in phrases), v.failed.message
    assert "wall-clock limit" not in v.failed.message  # contained within its own budget
    no_secret_in(tmp_path)


def test_an_output_flood_stays_out_of_the_parents_events(cheetah, cheetah_recording, tmp_path):
    """``print`` is a no-op for rewards; whatever reaches fd 1 goes to the worker's log, never
    to the parent's event pipe; the verdict is unaffected."""
    src = body("print('{\"event\": \"fake\"}' * 1000)", "x = f'{state.x_velocity:.3f}' * 1000")
    v = check_program(RewardProgram(src), cheetah, "run_backwards", tmp_path, cheetah_recording)
    assert v.failed is None or v.failed.name == "probe", v.message  # the dry run itself passes
    assert (tmp_path / "worker.log").stat().st_size < 100_000
    no_secret_in(tmp_path)


def test_other_candidates_are_unaffected(cheetah, cheetah_recording, tmp_path, backwards_source):
    """After a hostile program was killed in C code, the next candidate checks normally."""
    bad = check_program(RewardProgram(body(f"x = {C_LONG}")), cheetah, "run_backwards", tmp_path / "bad", cheetah_recording)
    good = check_program(RewardProgram(backwards_source), cheetah, "run_backwards", tmp_path / "good", cheetah_recording)
    assert not bad.accepted and good.accepted, good.message
    assert good.confinement and good.confinement["netns"] is not None


def test_the_corpus_is_large_enough():
    assert len(STATIC) + len(RUNTIME) >= 60
