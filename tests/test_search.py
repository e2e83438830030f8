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
FAST = ["--steps", "1024", "--max-episode-steps", "100", "--eval-episodes", "1", "--set", "n_steps=512", "--set", "n_epochs=1"]


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
    script = tmp_path / "s.yaml"
    rules = [
        {"match": "Does this code reward the task as written?", "response": "VERDICT: ACCEPT\nREASON: fine."},
        {"match": "Measured numbers:", "response": "Fine."},
    ]
    script.write_text(yaml.safe_dump(rules + [f"```python\n{src}```" for src in (GOOD, RESCALED, OTHER)]))
    r = subprocess.run(
        [sys.executable, "-m", "autoreward.cli", "run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards",
         "--model", f"scripted:{script}", "--iterations", "1", "--samples", "3", *FAST, "--out", "runs"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    run = next((tmp_path / "runs").iterdir())
    dup = json.loads((run / "iter0/cand1/duplicate.json").read_text())
    assert dup["of"] == "iter0/cand0" and dup["how"] == "affine" and dup["score"] > 0.999
    assert not (run / "iter0/cand1/metrics.json").exists()
    assert "cand1: behaves like iter0/cand0 (affine" in r.stdout
    for cand in ("cand0", "cand2"):  # trained side by side (one worker per core)
        assert json.loads((run / f"iter0/{cand}/metrics.json").read_text())["ok"]
        assert (run / f"iter0/{cand}/analysis.json").exists()
    assert "training 2 candidate(s)" in r.stdout
