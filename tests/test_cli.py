"""The console script as a user runs it: exit codes and one-line errors, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from autoreward.cards import load_card, render_card

EXE = [sys.executable, "-m", "autoreward.cli"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*EXE, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_envs_lists_cards_and_show_prints_the_llm_text():
    r = run("envs")
    assert r.returncode == 0 and "HalfCheetah-v5" in r.stdout and "run_backwards" in r.stdout
    r = run("envs", "show", "HalfCheetah-v5")
    assert r.returncode == 0
    assert r.stdout.startswith(render_card(load_card("HalfCheetah-v5")))


@pytest.mark.parametrize(
    "args, message",
    [
        (["envs", "show", "Nope-v1"], "error: no env card for 'Nope-v1'"),
        (["check", "/nonexistent.py", "--env", "HalfCheetah-v5"], "error: reward file /nonexistent.py does not exist"),
        (["check", "{fixture}", "--env", "Nope-v1"], "error: no env card for 'Nope-v1'"),
        (["check", "{fixture}", "--env", "HalfCheetah-v5", "--task", "fly"], "error: env HalfCheetah-v5 has no preset task 'fly'"),
        (["eval", "{fixture}", "--env", "HalfCheetah-v5", "--set", "nope"], "error: --set 'nope' is not key=value"),
        (["eval", "{fixture}", "--env", "HalfCheetah-v5", "--set", "foo=1"], "error: unknown PPO hyperparameter(s): foo"),
        (["bench", "--suite", "nope"], "error: unknown --suite 'nope'"),
        (["eval", "{fixture}", "--env", "HalfCheetah-v5", "--policy", "Foo"], "error: unknown --policy 'Foo'"),
        (["eval", "{fixture}", "--env", "HalfCheetah-v5", "--env-kwarg", "x"], "error: --env-kwarg 'x' is not key=value"),
        (["eval", "{fixture}", "--env", "HalfCheetah-v5", "--env-kwarg", "nope=1"], "error: --env-kwarg: HalfCheetah-v5 does not accept {'nope': 1}"),
        (["run", "go", "--env", "Crafter-v1", "--env-kwarg", "obs_mode=bogus"], "error: --env-kwarg: Crafter-v1 does not accept {'obs_mode': 'bogus'}: obs_mode must be"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, message, tmp_path):
    fixture = str(Path(__file__).parents[1] / "examples" / "halfcheetah_backwards.py")
    r = run(*[a.replace("{fixture}", fixture) for a in args], cwd=tmp_path)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert lines and lines[0].startswith(message), r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_file_without_the_function_is_rejected_with_exit_1(tmp_path):
    bad = tmp_path / "r.py"
    bad.write_text("def reward(s):\n    return 0\n")
    r = run("check", str(bad), "--env", "HalfCheetah-v5", "--task", "run_backwards", "--out", str(tmp_path / "runs"), cwd=tmp_path)
    assert r.returncode == 1
    assert "no top-level function named compute_reward" in r.stdout and "REJECTED" in r.stdout


def test_check_accepts_a_good_reward_and_saves_the_verdict(tmp_path):
    fixture = Path(__file__).parents[1] / "examples" / "halfcheetah_backwards.py"
    r = run("check", str(fixture), "--env", "HalfCheetah-v5", "--task", "run_backwards", "--out", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ACCEPTED" in r.stdout
    verdicts = list(tmp_path.glob("*/candidate/critic.json"))
    assert len(verdicts) == 1 and (verdicts[0].parents[1] / "run.json").exists()


def test_two_runs_never_collide(tmp_path):
    from autoreward.rundir import new_run_dir

    a = new_run_dir(tmp_path, "HalfCheetah-v5", "x")
    b = new_run_dir(tmp_path, "HalfCheetah-v5", "x")
    assert a != b and a.name.startswith("HalfCheetah-v5__x__")
