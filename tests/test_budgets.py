"""Budgets (issue 15 part 6): --max-tokens, --max-cost, --max-wall and --max-env-steps stop a run
at the next step boundary, with the state saved and the best so far reported. Tokens and cost
are what the exchange log says was spent, so they hold across kills and resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from autoreward.llm.client import read_exchanges

try:  # `python -m pytest` puts the repo root on sys.path; plain `pytest` puts tests/
    from tests.llm_servers import ScriptedLLMServer
except ImportError:
    from llm_servers import ScriptedLLMServer  # type: ignore[no-redef]

GOOD = (Path(__file__).parents[1] / "examples" / "halfcheetah_backwards.py").read_text()
OTHER = GOOD.replace("0.5 * max", "0.4 * max")
FAST = ["--steps", "2048", "--max-episode-steps", "100", "--eval-episodes", "1", "--set", "n_steps=512", "--set", "n_epochs=1", "--n-envs", "1"]
ANALYSIS = "The policy learned to move backwards."


def _script(tmp_path: Path, designs: list[str]) -> str:
    rules = [{"match": "Measured numbers:", "response": ANALYSIS}]
    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump(rules + [f"```python\n{d}```" for d in designs]))
    return f"scripted:{path}"


def _run(tmp_path: Path, out: str, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, Path]:
    r = subprocess.run([sys.executable, "-m", "autoreward.cli", "run", "run backwards", "--env", "HalfCheetah-v5", "--preset",
                        "run_backwards", "--no-review", "--no-library", "--samples", "1", *FAST, "--out", str(tmp_path / out), *args],
                       capture_output=True, text=True, cwd=tmp_path, timeout=600, env=env)
    return r, next((tmp_path / out).iterdir())


def _spent(run: Path) -> tuple[int, float]:
    log = read_exchanges(run)
    return sum(e["prompt_tokens"] + e["completion_tokens"] for e in log), sum(e["cost"] for e in log)


def _stopped_with_best(r: subprocess.CompletedProcess, run: Path, reason: str) -> dict:
    """Stopped for ``reason``, state saved, the best so far reported (exit 0)."""
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads((run / "result.json").read_text())
    assert result["stopped"].startswith(reason), result["stopped"]
    assert f"stopped: {reason}" in r.stdout and "best fitness:" in r.stdout
    assert result["best"] and result["best"]["path"] == "iter0/cand0"
    state = json.loads((run / "state.json").read_text())
    assert state["stopped"] == result["stopped"] and (state["tokens"], state["cost"]) == _spent(run)
    return result


@pytest.mark.slow
def test_max_tokens_stops_before_the_request_that_would_exceed_it(tmp_path: Path) -> None:
    """With the budget set to what the first design cost, the design is still checked and
    trained (that costs no tokens), and the run stops before the analyzer's request: no request
    goes out once the budget is spent."""
    model = _script(tmp_path, [GOOD])
    r, probe = _run(tmp_path, "probe", "--model", model, "--max-tokens", "1")
    assert r.returncode == 0 and "stopped: token budget of 1 reached" in r.stdout  # one design, trained, not analysed
    design, _ = _spent(probe)
    assert len(read_exchanges(probe)) == 1 and not list(probe.glob("iter0/cand0/analysis.json"))
    r, run = _run(tmp_path, "runs", "--model", model, "--iterations", "2", "--max-tokens", str(design))
    _stopped_with_best(r, run, f"token budget of {design} reached")
    assert [e["template"] for e in read_exchanges(run)] == ["designer_initial.j2"]  # the analyzer was not asked
    assert json.loads((run / "iter0/cand0/metrics.json").read_text())["ok"]


@pytest.mark.slow
def test_max_cost_counts_the_dollars_the_log_records(tmp_path: Path) -> None:
    """A priced model (gpt-4o-mini's price map) on the scripted HTTP server: the cost budget is
    the sum of the log's costs, and stops the run the same way."""
    with ScriptedLLMServer(default=f"```python\n{GOOD}```") as server:
        server.rule("Measured numbers:", ANALYSIS)
        env = {**os.environ, "OPENAI_API_KEY": "sk-test", "AUTOREWARD_API_BASE": server.openai_base}
        r, probe = _run(tmp_path, "probe", "--model", "openai/gpt-4o-mini", "--max-cost", "1e-12",
                        env={**env, "AUTOREWARD_CACHE_DIR": str(tmp_path / "cache1")})
        assert "stopped: cost budget of $1e-12 reached" in r.stdout, r.stdout + r.stderr
        _, design = _spent(probe)
        assert design > 0
        r, run = _run(tmp_path, "runs", "--model", "openai/gpt-4o-mini", "--iterations", "2", "--max-cost", repr(design),
                      env={**env, "AUTOREWARD_CACHE_DIR": str(tmp_path / "cache2")})
        _stopped_with_best(r, run, "cost budget of $")
        assert not server.matching("Measured numbers:")


@pytest.mark.slow
def test_max_wall_stops_at_the_next_step_boundary(tmp_path: Path) -> None:
    """Where the second passes depends on the machine (on a busy one before the first design):
    the run stops at the first step boundary after it, state saved, the best so far (if one was
    trained) reported, and far short of its 3 iterations."""
    r, run = _run(tmp_path, "runs", "--model", _script(tmp_path, [GOOD]), "--iterations", "3", "--max-wall", "1")
    result = json.loads((run / "result.json").read_text())
    assert result["stopped"] == "wall-time budget of 1 s reached" and "stopped: wall-time budget of 1 s reached" in r.stdout
    assert r.returncode == (0 if result["best"] else 1) and "Traceback" not in r.stderr, r.stderr
    state = json.loads((run / "state.json").read_text())
    assert result["iterations_done"] < 3 and state["elapsed_s"] >= 1 and state["stopped"] == result["stopped"]


@pytest.mark.slow
def test_max_env_steps_trains_only_what_fits(tmp_path: Path) -> None:
    """Two accepted candidates of 2,048 steps and a budget of 3,000: one is trained, the other is
    not, and the run stops after the iteration instead of starting the next."""
    r, run = _run(tmp_path, "runs", "--model", _script(tmp_path, [GOOD, OTHER]), "--samples", "2", "--iterations", "2",
                  "--max-env-steps", "3000")
    result = _stopped_with_best(r, run, "env-step budget of 3000 reached: 3000 steps left, 1 candidate(s) of 2048 steps not trained")
    assert result["iterations_done"] == 1
    assert (run / "iter0/cand0/metrics.json").exists() and not (run / "iter0/cand1/metrics.json").exists()
    assert json.loads((run / "iter0/cand1/candidate.json").read_text())["accepted"]
    assert not (run / "iter1").exists()
