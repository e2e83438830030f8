"""The run's terminal view: a live table in a terminal (a real pty), plain lines in a pipe."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from autoreward.report.live import RunView

GOOD = (Path(__file__).parents[1] / "examples" / "halfcheetah_backwards.py").read_text()
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TINY = ["--iterations", "1", "--samples", "1", "--steps", "1024", "--max-episode-steps", "100", "--eval-episodes", "1",
        "--set", "n_steps=256", "--set", "n_epochs=1", "--n-envs", "1", "--no-report", "--no-library", "--out", "runs"]


def _drive(view: RunView) -> None:
    """What the loop reports during one iteration of two candidates."""
    view.iteration(0, 2, 2)
    view.usage(1234, 0.0125)
    view.candidate("cand0", "checking")
    view.candidate("cand0", "accepted", "after 1 repair(s)")
    view.candidate("cand1", "checking")
    view.candidate("cand1", "rejected", "after 3 repair(s): dry_run: NameError: name 'x' is not defined")
    on_event = view.events(Path("/runs/r/iter0/cand0"), 1000)
    on_event({"event": "progress", "step": 500, "total": 1000})
    on_event({"event": "eval", "step": 500, "fitness": 0.25})


def test_plain_lines_without_a_terminal():
    out = io.StringIO()
    view = RunView(Console(file=out, width=200))
    assert not view.is_live
    with view:
        _drive(view)
        view.candidate("cand0", "done", "fitness 0.01 -> 0.25", 0.25)
    lines = out.getvalue().splitlines()
    assert lines == [
        "  cand0: checking", "  cand0: accepted after 1 repair(s)", "  cand1: checking",
        "  cand1: rejected after 3 repair(s): dry_run: NameError: name 'x' is not defined",
        "  cand0: training, step 500/1000, fitness 0.25", "  cand0: fitness 0.01 -> 0.25",
    ]
    assert not ANSI.search(out.getvalue())


def test_the_live_table_shows_states_progress_eta_and_tokens():
    out = io.StringIO()
    view = RunView(Console(file=out, width=160, force_terminal=True, color_system=None))
    assert view.is_live
    with view:
        _drive(view)
        shown = io.StringIO()
        Console(file=shown, width=160).print(view)  # one frame, as Live draws it
        with view.paused():  # a prompt (interactive steering) is not drawn over
            assert view._live is not None and not view._live.is_started
        assert view._live.is_started
    frame = shown.getvalue()
    assert "iteration 1 of 2" in frame and "1,234 LLM tokens, $0.0125" in frame
    assert re.search(r"cand0\s+training\s+━+.*500/1000 ETA \d+:\d\d\s+fitness 0.25", frame), frame
    assert re.search(r"cand1\s+rejected\s+after 3 repair\(s\): dry_run: NameError", frame), frame
    assert "cand0" in out.getvalue() and "\x1b[" in out.getvalue()  # drawn to the terminal, with cursor moves


def _script(tmp_path: Path) -> str:
    rules = [{"match": "Does this code reward the task as written?", "response": "VERDICT: ACCEPT\nREASON: fine."},
             {"match": "Measured numbers:", "response": "Fine."}]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(rules + [f"```python\n{GOOD}```"]))
    return f"scripted:{tmp_path / 's.yaml'}"


@pytest.mark.slow
def test_run_in_a_pty_draws_the_live_view(tmp_path):
    import pexpect

    args = ["-m", "autoreward.cli", "run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards",
            "--model", _script(tmp_path), *TINY]
    child = pexpect.spawn(sys.executable, args, cwd=str(tmp_path), encoding="utf-8", dimensions=(40, 160), timeout=600)
    child.expect(r"iteration 1 of 1.*LLM tokens")  # the live header
    child.expect(r"cand0\s+(\x1b\[[0-9;]*m)*training(\x1b\[[0-9;]*m)*.*ETA \d+:\d\d")  # a progress bar with its ETA
    child.expect(r"cand0\s+(\x1b\[[0-9;]*m)*done")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    run = next((tmp_path / "runs").iterdir())
    assert not (run / "report.html").exists()  # --no-report


@pytest.mark.slow
def test_run_in_a_pipe_prints_plain_lines(tmp_path):
    r = subprocess.run([sys.executable, "-m", "autoreward.cli", "run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards",
                        "--model", _script(tmp_path), *TINY], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not ANSI.search(r.stdout)
    for line in ("cand0: checking", "cand0: accepted after 0 repair(s)", "training 1 candidate(s) for 1024 steps", "cand0: training, step 0/1024"):
        assert line in r.stdout, r.stdout
    assert re.search(r"cand0: fitness [-\d.e]+ -> [-\d.e]+", r.stdout)
