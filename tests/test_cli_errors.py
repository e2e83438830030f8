"""Bad input through the real command line (issue 15 part 5): each mistake is one line on
stderr naming what was wrong and how to fix it, with the documented exit code (README: "Exit
codes"), no traceback, and no run directory left behind.

Every case runs ``python -m autoreward.cli`` in a subprocess, as a user would. Options a hint
names must be options the command really has.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from autoreward.errors import ExitCode

GOOD = (Path(__file__).parents[1] / "examples" / "halfcheetah_backwards.py").read_text()
NO_CODE = "scripted:no_code.yaml"  # a scripted model that is never reached: input is checked first

#: (id, argv, stdin, exit code, what the message must say, what the hint must say)
CASES: list[tuple[str, list[str], str | None, int, str, str]] = [
    ("unknown-env-run", ["run", "x", "--env", "Nope-v0", "--model", NO_CODE], None, 2, "no env card for 'Nope-v0'", "known envs: Ant-v5"),
    ("unknown-env-check", ["check", "good.py", "--env", "Nope-v0"], None, 2, "no env card for 'Nope-v0'", "known envs:"),
    ("unknown-preset-run", ["run", "x", "--env", "HalfCheetah-v5", "--preset", "nope", "--model", NO_CODE], None, 2,
     "has no preset task 'nope'", "choose one of: default, run_backwards"),
    ("unknown-preset-check", ["check", "good.py", "--env", "HalfCheetah-v5", "--task", "nope"], None, 2, "has no preset task 'nope'", "choose one of:"),
    ("no-task", ["run", "--env", "HalfCheetah-v5", "--model", NO_CODE], None, 2, "run needs TASK and --env", "--config"),
    ("empty-task", ["run", "", "--env", "HalfCheetah-v5", "--model", NO_CODE], None, 2, "the task text is empty", "--task-file"),
    ("blank-task", ["run", "  \n\t ", "--env", "HalfCheetah-v5", "--model", NO_CODE], None, 2, "the task text is empty", "describe the behaviour"),
    ("huge-task", ["run", "run backwards " * 300, "--env", "HalfCheetah-v5", "--model", NO_CODE], None, 2,
     "the task text is 4,199 characters, over the limit of 4,000", "env card (--cards)"),
    ("task-file-missing", ["run", "--task-file", "nope.txt", "--env", "HalfCheetah-v5", "--model", NO_CODE], None, 2,
     "--task-file nope.txt does not exist", "check the path"),
    ("task-file-directory", ["run", "--task-file", "adir", "--env", "HalfCheetah-v5", "--model", NO_CODE], None, 2,
     "--task-file adir is a directory", "text file"),
    ("task-file-binary", ["run", "--task-file", "binary.bin", "--env", "HalfCheetah-v5", "--model", NO_CODE], None, 2,
     "the task in binary.bin is binary", "text file"),
    ("task-file-empty", ["run", "--task-file", "empty.py", "--env", "HalfCheetah-v5", "--model", NO_CODE], None, 2, "the task text is empty", "--task-file"),
    ("task-file-huge", ["run", "--task-file", "huge.txt", "--env", "HalfCheetah-v5", "--model", NO_CODE], None, 2, "over the limit of 4,000", "env card"),
    ("task-stdin-empty", ["run", "-", "--env", "HalfCheetah-v5", "--model", NO_CODE], "\n", 2, "the task text is empty", "--task-file"),
    ("task-and-task-file", ["run", "x", "--task-file", "task.txt", "--env", "HalfCheetah-v5", "--model", NO_CODE], None, 2,
     "either as TASK or with --task-file, not both", "drop one"),
    ("model-unknown", ["run", "x", "--env", "HalfCheetah-v5", "--model", "gpt-nonsense-9"], None, 2, "unknown model 'gpt-nonsense-9'", "openai/gpt-4o-mini"),
    ("model-scripted-missing", ["run", "x", "--env", "HalfCheetah-v5", "--model", "scripted:/nonexistent.yaml"], None, 2,
     "scripted responses file /nonexistent.yaml not found", "scripted:PATH"),
    ("model-local-missing-file", ["run", "x", "--env", "HalfCheetah-v5", "--model", "local:/nonexistent.gguf"], None, 2,
     "model file /nonexistent.gguf not found", "local:PATH"),
    ("missing-openai-key", ["run", "x", "--env", "HalfCheetah-v5", "--model", "openai/gpt-4o-mini"], None, 2,
     "openai/gpt-4o-mini needs OPENAI_API_KEY", "export OPENAI_API_KEY=... or put OPENAI_API_KEY=... in a .env file"),
    ("missing-anthropic-key", ["run", "x", "--env", "HalfCheetah-v5", "--model", "anthropic/claude-3-5-haiku-latest"], None, 2,
     "needs ANTHROPIC_API_KEY", "--model"),
    ("missing-local-extra", ["run", "x", "--env", "HalfCheetah-v5", "--preset", "run_backwards"], None, 2,
     "llama-cpp-python is not installed", "pip install 'autoreward[local]'"),
    ("reward-missing", ["check", "nope.py", "--env", "HalfCheetah-v5"], None, 2, "reward file nope.py does not exist", "check the path"),
    ("reward-directory", ["check", "adir", "--env", "HalfCheetah-v5"], None, 2, "reward file adir is a directory", "defines compute_reward"),
    ("reward-binary", ["check", "binary.bin", "--env", "HalfCheetah-v5"], None, 2, "reward file binary.bin is binary", "defines compute_reward"),
    ("reward-nul-bytes", ["check", "nul.py", "--env", "HalfCheetah-v5"], None, 2, "reward file nul.py is binary", "defines compute_reward"),
    ("reward-empty", ["check", "empty.py", "--env", "HalfCheetah-v5"], None, 2, "reward file empty.py is empty", "defines compute_reward"),
    ("reward-blank", ["check", "blank.py", "--env", "HalfCheetah-v5"], None, 2, "reward file blank.py is empty", "defines compute_reward"),
    ("reward-empty-eval", ["eval", "empty.py", "--env", "HalfCheetah-v5", "--steps", "10"], None, 2, "reward file empty.py is empty", "defines compute_reward"),
    *[
        (f"not-a-run-{cmd}-{what}", [cmd, path, *extra], None, 2, message, "`ls runs/` lists them")
        for cmd, extra in [("show", []), ("resume", []), ("refine", ["--feedback", "faster"]), ("export", ["-o", "out.py"]), ("report", [])]
        for what, path, message in [
            ("missing", "runs/nope", "run directory runs/nope does not exist"),
            ("plain-dir", "adir", "adir is not an autoreward run directory (no run.json)"),
            ("file", "good.py", "good.py is a file, not a run directory"),
        ]
    ],
]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder with the files the cases name, as a user's current directory."""
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "empty.py").write_text("")
    (tmp_path / "blank.py").write_text("   \n\n\t\n")
    (tmp_path / "binary.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "nul.py").write_bytes(GOOD.encode()[:40] + b"\x00\x00" + GOOD.encode()[40:])
    (tmp_path / "huge.txt").write_text("make it run backwards without flipping over. " * 100)
    (tmp_path / "task.txt").write_text("run backwards")
    (tmp_path / "no_code.yaml").write_text("- I cannot write code for that.\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "adir" / "notes.txt").write_text("not a run\n")
    # the embedded model's package missing, as in an install without the [local] extra: a None
    # in sys.modules is how Python itself marks a module as absent (find_spec returns None,
    # import raises ModuleNotFoundError)
    (tmp_path / "hide").mkdir()
    (tmp_path / "hide" / "sitecustomize.py").write_text("import sys\nsys.modules['llama_cpp'] = None\n")
    return tmp_path


def user_env(workdir: Path, without_local: bool = False, **extra: str) -> dict[str, str]:
    """The environment of a user with no API keys, no model chosen, and a private cache
    (``without_local``: and an install without the ``[local]`` extra)."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k not in ("AUTOREWARD_MODEL", "AUTOREWARD_API_BASE")}
    env.update(AUTOREWARD_CACHE_DIR=str(workdir / "cache"), **extra)
    if without_local:
        env["PYTHONPATH"] = str(workdir / "hide")
    return env


def options_of(command: str) -> set[str]:
    """Every option the real ``autoreward COMMAND`` accepts."""
    import typer.main

    from autoreward.cli import app

    click_cmd = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    return {o for p in click_cmd.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}


def assert_one_line_error(r: subprocess.CompletedProcess, code: int, says: str, hint: str, command: str) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert "Traceback" not in r.stderr + r.stdout
    assert line.startswith("error: ") and says in line, line
    assert re.search(r"\(.+\)$", line) and hint in line, f"no hint {hint!r} in: {line}"
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", line))
    assert named <= options_of(command), f"the message names options {command} does not have: {named - options_of(command)}"
    return line


@pytest.mark.parametrize("argv,stdin,code,says,hint", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_with_a_hint_and_its_exit_code(request, workdir, argv, stdin, code, says, hint):
    env = user_env(workdir, without_local="missing-local-extra" in request.node.name)
    r = subprocess.run([sys.executable, "-m", "autoreward.cli", *argv, *(["--out", "runs"] if argv[0] in ("run", "check", "eval") else [])],
                       input=stdin, capture_output=True, text=True, cwd=workdir, env=env, timeout=300)
    assert_one_line_error(r, code, says, hint, argv[0])
    runs = workdir / "runs"
    assert not runs.exists() or not any(runs.iterdir()), f"bad input left a run directory: {list(runs.iterdir())}"


def test_exit_codes_are_the_documented_ones():
    """One definition (errors.ExitCode), and the README's table says the same."""
    assert {c.name: int(c) for c in ExitCode} == {"OK": 0, "FAILED": 1, "USAGE": 2, "UNREACHABLE": 3, "INTERRUPTED": 130}
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme[readme.index("### Exit codes"):][:2000]
    for code in ExitCode:
        assert f"| {int(code)} |" in section, f"exit code {int(code)} is not in the README's table"


def test_an_unreachable_server_exits_3_in_one_line(workdir):
    """Nothing the user typed is wrong, so not 2: the server is down (a port nobody listens on)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: connection refused
    env = user_env(workdir, AUTOREWARD_API_BASE=f"http://127.0.0.1:{port}/v1", OPENAI_API_KEY="sk-test")
    r = subprocess.run([sys.executable, "-m", "autoreward.cli", "run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards",
                        "--model", "openai/test-model", "--review", "off", "--out", "runs"],
                       capture_output=True, text=True, cwd=workdir, env=env, timeout=300)
    # only the error goes to stderr; progress lines go to stdout
    assert_one_line_error(r, ExitCode.UNREACHABLE, f"cannot reach http://127.0.0.1:{port}/v1", "start the server", "run")


def test_the_task_is_read_from_a_file_or_stdin(workdir):
    """--task-file FILE and `-` give the same task as typing it (stripped), recorded in run.json."""
    import json

    recorded = []
    for argv, stdin in [(["--task-file", "task.txt"], None), (["-"], "  run backwards\n"), (["--task-file", "-"], "run backwards")]:
        out = workdir / f"runs{len(recorded)}"
        r = subprocess.run([sys.executable, "-m", "autoreward.cli", "run", *argv, "--env", "HalfCheetah-v5", "--preset", "run_backwards",
                            "--model", NO_CODE, "--iterations", "1", "--samples", "1", "--review", "off", "--out", str(out)],
                           input=stdin, capture_output=True, text=True, cwd=workdir, env=user_env(workdir), timeout=300)
        # the scripted model writes no code: the run ends with nothing trained (exit 1), not a usage error
        assert r.returncode == ExitCode.FAILED and "no candidate was trained" in r.stdout, r.stdout + r.stderr
        (run,) = out.iterdir()
        recorded.append(json.loads((run / "run.json").read_text())["config"]["task"])
    assert recorded == ["run backwards"] * 3
