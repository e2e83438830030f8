"""A total that is not the sum of its components is a warning, not a rejection (issue 11, part 4).

The data is an Eureka-style Ant reward (``tests/data/eureka_style_ant_forward.py``): its total is
``exp(0.15 * sum(terms))``. It must pass ``check``, train in ``eval``, and be shown with the
difference as its own ``(not in components)`` term by the analyzer, ``show`` and the refine
prompt, which asks the designer to make it additive.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from autoreward.analyzer import format_numbers, numbers
from autoreward.program import NOT_IN_COMPONENTS
from autoreward.prompts_io import render

EUREKA = Path(__file__).parent / "data" / "eureka_style_ant_forward.py"
TINY = ["--steps", "512", "--max-episode-steps", "50", "--eval-episodes", "1", "--set", "n_steps=256", "--set", "n_epochs=1", "--n-envs", "1"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoreward.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_the_eureka_style_total_is_not_additive():
    """The data really is what the test claims: exp of the sum, not the sum."""
    src = EUREKA.read_text()
    assert "np.exp(0.15 * sum(components.values()))" in src and "total_reward = float(sum(" not in src


def test_check_accepts_an_exp_of_the_sum_with_a_warning(tmp_path):
    r = cli("check", str(EUREKA), "--env", "Ant-v5", "--out", str(tmp_path / "runs"), cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "ACCEPTED" in out and "warning" in out and "is not the sum of its components" in out
    assert NOT_IN_COMPONENTS in out  # named in the dry run's component line and the warning
    verdict = json.loads(next((tmp_path / "runs").glob("*/candidate/critic.json")).read_text())
    assert verdict["accepted"] and any(NOT_IN_COMPONENTS in w for w in verdict["warnings"])
    dry = next(c for c in verdict["checks"] if c["name"] == "dry_run")
    assert dry["details"]["not_in_components"]["transitions"] == dry["details"]["transitions"]  # exp(...) != sum at every step


def test_eval_trains_it_and_show_presents_the_difference_as_a_term(tmp_path):
    r = cli("eval", str(EUREKA), "--env", "Ant-v5", *TINY, "--out", str(tmp_path / "runs"), cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "warning" in out and "ACCEPTED" in out and "after 512 steps" in out
    run = next((tmp_path / "runs").iterdir())
    m = json.loads((run / "candidate" / "metrics.json").read_text())
    assert m["ok"] and NOT_IN_COMPONENTS in m["components"] and "forward_velocity_reward" in m["components"]
    term = m["components"][NOT_IN_COMPONENTS]
    assert term["min"] < term["max"]  # a real per-step difference, not a constant placeholder
    n = numbers(m)
    assert any("not the sum of its components" in f for f in n["flags"])
    assert f"reward component {NOT_IN_COMPONENTS}" in format_numbers(n)
    s = cli("show", str(run), cwd=tmp_path)
    assert s.returncode == 0, s.stdout + s.stderr
    assert f"reward component {NOT_IN_COMPONENTS}" in s.stdout and "not the sum of its components" in s.stdout


def test_the_refine_prompt_asks_for_an_additive_total_only_when_needed():
    var = dict(env_text="E", task="T", fitness_doc="F", iteration=0, parent_code="C", fitness=1.0, untrained=0.0, success=2.0,
               review_objection="", analysis="", failures=[], feedback="")
    comp = {"mean": 0.1, "min": 0.0, "max": 0.2}
    asked = render("designer_refine.j2", components={"speed": comp, NOT_IN_COMPONENTS: comp}, **var)
    assert "Make the total additive" in asked and f"component {NOT_IN_COMPONENTS}" in asked
    assert "Make the total additive" not in render("designer_refine.j2", components={"speed": comp}, **var)


@pytest.mark.slow
def test_the_loop_trains_a_non_additive_reward_and_asks_for_an_additive_one(tmp_path):
    """Scripted designer answers the Eureka-style reward; it is accepted without repair, trained,
    analyzed, and the refine prompt carries the (not in components) term and the request."""
    src = EUREKA.read_text()
    # additive, and with a heavier speed term: exp(sum) alone ranks transitions as sum does (a behavioural duplicate)
    additive = src.replace("float(np.exp(0.15 * sum(components.values())))", "float(sum(components.values()))").replace("2.0 * np.tanh", "4.0 * np.tanh")
    rules = [
        {"match": "Does this code reward the task as written?", "response": "VERDICT: ACCEPT\nREASON: it rewards +x speed."},
        {"match": "Measured numbers:", "response": "It moved a little; make the total additive."},
        {"match": "was the best so far", "response": f"Additive now.\n```python\n{additive}```"},
        f"Here is my reward.\n```python\n{src}```",
    ]
    (tmp_path / "script.yaml").write_text(yaml.safe_dump(rules))
    r = cli("run", "make the ant walk forward", "--env", "Ant-v5", "--preset", "default", "--model", f"scripted:{tmp_path / 'script.yaml'}",
            "--iterations", "2", "--samples", "1", *TINY, "--out", str(tmp_path / "runs"), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    run = next((tmp_path / "runs").iterdir())
    c0 = json.loads((run / "iter0/cand0/candidate.json").read_text())
    assert c0["accepted"] and c0["repairs"] == 0
    a = json.loads((run / "iter0/cand0/analysis.json").read_text())
    assert NOT_IN_COMPONENTS in a["numbers"]["components"]
    log = [json.loads(line) for line in (run / "llm_exchanges.jsonl").read_text().splitlines()]
    refine = json.dumps(next(e for e in log if e.get("template") == "designer_refine.j2")["messages"])
    assert "Make the total additive" in refine and NOT_IN_COMPONENTS in refine
    assert NOT_IN_COMPONENTS not in json.loads((run / "iter1/cand0/metrics.json").read_text())["components"]
