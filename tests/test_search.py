"""Search breadth: behavioural dedupe of candidates and training several at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from autoreward.critic.dedupe import behavioural_duplicate

GOOD = (Path(__file__).parents[1] / "examples" / "halfcheetah_backwards.py").read_text()
# the same reward, renamed, reordered, rescaled by 3 and shifted by 0.5: trains the same policies
RESCALED = """import numpy as np

def compute_reward(prev, action, state, memory):
    effort = -0.3 * float(np.sum(np.square(action)))
    stay_up = -1.5 * max(abs(state.pitch) - 0.5, 0.0)
    go_back = -3.0 * state.x_velocity
    bonus = 0.5
    return go_back + stay_up + effort + bonus, {"go_back": go_back, "stay_up": stay_up, "effort": effort, "bonus": bonus}
"""
# a different reward: upright matters far more, and it is not a rescaling of GOOD
OTHER = GOOD.replace("upright = -0.5 *", "upright = -5.0 *")
FAST = ["--steps", "1024", "--max-episode-steps", "100", "--eval-episodes", "1", "--set", "n_steps=512", "--set", "n_epochs=1", "--n-envs", "1"]


def run_loop(tmp_path: Path, sources: list[str], budget: list[str]) -> tuple[subprocess.CompletedProcess, Path]:
    """One iteration of `run` on HalfCheetah with one scripted sample per source; (result, run dir)."""
    script = tmp_path / "s.yaml"
    rules = [
        {"match": "Does this code reward the task as written?", "response": "VERDICT: ACCEPT\nREASON: fine."},
        {"match": "Measured numbers:", "response": "Fine."},
    ]
    script.write_text(yaml.safe_dump(rules + [f"```python\n{src}```" for src in sources]))
    r = subprocess.run(
        [sys.executable, "-m", "autoreward.cli", "run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards",
         "--model", f"scripted:{script}", "--iterations", "1", "--samples", str(len(sources)), *budget, "--out", "runs"],
        capture_output=True, text=True, cwd=tmp_path, timeout=900,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r, next((tmp_path / "runs").iterdir())


def test_duplicates_are_found_by_behaviour_not_by_code():
    rng = np.random.default_rng(0)
    r = rng.normal(size=2000)
    found = behavioural_duplicate(3.0 * r + 0.5, [("a", rng.normal(size=2000)), ("b", r)])
    assert found is not None and found.of == "b" and found.how == "affine" and found.score > 0.999
    ranked = behavioural_duplicate(np.exp(r), [("b", r)])  # monotone, not affine
    assert ranked is not None and ranked.how == "rank"
    assert behavioural_duplicate(-r, [("b", r)]) is None  # the opposite reward
    assert behavioural_duplicate(r + 0.3 * rng.normal(size=2000), [("b", r)]) is None  # related, not the same
    assert behavioural_duplicate(r[:100], [("b", r)]) is None  # other transitions: not comparable


@pytest.mark.slow
def test_a_rescaled_copy_is_not_trained_and_different_ones_train_together(tmp_path):
    r, run = run_loop(tmp_path, [GOOD, RESCALED, OTHER], FAST)
    dup = json.loads((run / "iter0/cand1/duplicate.json").read_text())
    assert dup["of"] == "iter0/cand0" and dup["how"] == "affine" and dup["score"] > 0.999
    assert not (run / "iter0/cand1/metrics.json").exists()
    assert "cand1: behaves like iter0/cand0 (affine" in r.stdout
    for cand in ("cand0", "cand2"):  # trained side by side (one worker per core)
        assert json.loads((run / f"iter0/{cand}/metrics.json").read_text())["ok"]
        assert (run / f"iter0/{cand}/analysis.json").exists()
    assert "training 2 candidate(s)" in r.stdout


THIRD = GOOD.replace("ctrl = -0.1 *", "ctrl = -0.6 *")
FOURTH = GOOD.replace("upright = -0.5 *", "upright = -0.05 *").replace("ctrl = -0.1 *", "ctrl = -0.02 *")


@pytest.mark.slow
def test_successive_halving_spends_half_the_steps_and_continues_survivors(tmp_path):
    """4 candidates, rungs 1/4, 1/2, 1 of 2048 steps, keep half: 4x512 + 2x512 + 1x1024 = half of
    4 full trainings; survivors continue their policy, the cut keep their partial results."""
    fast = ["--steps", "2048", "--max-episode-steps", "100", "--eval-episodes", "1", "--set", "n_steps=256", "--set", "n_epochs=1", "--set", "batch_size=64", "--n-envs", "1"]
    r, run = run_loop(tmp_path, [GOOD, OTHER, THIRD, FOURTH], fast)
    log = json.loads((run / "iter0/halving.json").read_text())  # on by default with 4 candidates
    assert [x["steps"] for x in log] == [512, 1024, 2048]
    assert [len(x["fitness"]) for x in log] == [4, 2, 1] and len(log[0]["kept"]) == 2 and len(log[1]["kept"]) == 1
    best = log[0]["kept"]  # the kept ones had the highest fitness at the rung
    assert min(log[0]["fitness"][c] for c in best) >= max(v for c, v in log[0]["fitness"].items() if c not in best)
    metrics = {c: json.loads((run / f"iter0/{c}/metrics.json").read_text()) for c in ("cand0", "cand1", "cand2", "cand3")}
    trained = sum(m["halving"]["steps"] for m in metrics.values())
    assert trained == 512 * 2 + 1024 + 2048  # steps each candidate reached: cut at rung 0 twice, rung 1 once, one full
    spent = 4 * 512 + 2 * (1024 - 512) + (2048 - 1024)
    assert spent / (4 * 2048) == 0.5
    winner = log[2]["kept"][0]
    w = metrics[winner]
    assert w["steps"] == 2048 and w["halving"]["cut"] == "" and not w.get("partial")
    steps_seen = [row["step"] for row in w["progress"]]  # one curve across the rungs: untrained, then every 2048 // 5
    assert steps_seen == [0, 409, 818, 1227, 1636, 2045]
    rung2_rows = (run / f"iter0/{winner}/rung2/progress.csv").read_text().splitlines()[1:]
    assert rung2_rows and all(int(float(row.split(",")[0])) > 1024 for row in rung2_rows)  # rung 2 continued, did not restart
    for c, m in metrics.items():
        assert (run / f"iter0/{c}/analysis.json").exists()
        if c != winner:
            assert m["partial"] and m["halving"]["cut"].startswith("ranked")
    s = subprocess.run([sys.executable, "-m", "autoreward.cli", "show", str(run)], capture_output=True, text=True, cwd=tmp_path)
    assert s.returncode == 0 and "halving: ranked" in s.stdout


def test_run_config_checks_the_halving_schedule_and_a_damaged_run_json_is_one_line(tmp_path):
    from autoreward.api import saved_config
    from autoreward.errors import ConfigError
    from autoreward.loop import RunConfig
    from autoreward.rundir import Run, record_run

    assert RunConfig(task="t", env="e", halving_rungs=[0.25, 0.5, 1.0]).halving_rungs == [0.25, 0.5, 1.0]
    for bad in ([0.5, 0.25, 1.0], [0.5, 0.9], [0.0, 1.0], []):
        with pytest.raises(ValueError, match="ascending"):
            RunConfig(task="t", env="e", halving_rungs=bad)
    record_run(tmp_path, "run", {"task": "t", "env": "HalfCheetah-v5", "halving_rungs": [1.0, 0.5]})
    with pytest.raises(ConfigError, match=r"run.json: halving_rungs: .*ascending"):
        saved_config(Run.load(tmp_path))


def test_halving_with_nothing_to_train_is_a_no_op(tmp_path):
    """All candidates rejected with --halving on: nothing to train, nothing written, no error."""
    from rich.console import Console

    from autoreward.halving import Schedule, successive_halving

    assert successive_halving([], lambda c: None, None, Schedule(), Console(quiet=True)) == []  # type: ignore[arg-type]
