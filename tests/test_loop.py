"""The designer-critic-trainer-analyzer loop, driven by a scripted LLM (the real client path)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from autoreward.critic.review import parse_review
from autoreward.critic.static import example_copy_error
from autoreward.designer import extract_code, parse_fitness_proposal
from autoreward.llm import read_log
from autoreward.prompts_io import render

DEFAULT_EXAMPLE = render("reward_example_continuous.j2")  # the example HalfCheetah's designer is shown

GOOD = (Path(__file__).parents[1] / "examples" / "halfcheetah_backwards.py").read_text()
FLIPPED = GOOD.replace("backward = -state.x_velocity", "backward = state.x_velocity")
FAST = ["--steps", "2048", "--max-episode-steps", "100", "--eval-episodes", "1", "--set", "n_steps=512", "--set", "n_epochs=1", "--n-envs", "1"]


def script(tmp_path: Path, designs: list[str], review: str = "VERDICT: ACCEPT\nREASON: it rewards moving towards -x.") -> str:
    rules = [
        {"match": "This reward function was rejected", "response": f"Fixed the sign.\n```python\n{GOOD}```"},
        {"match": "Does this code reward the task as written?", "response": review},
        {"match": "Measured numbers:", "response": "The policy learned to move backwards; raise the speed term."},
        {"match": "Propose how to measure success", "response": "FITNESS: (ep.first.x_position - ep.last.x_position) / ep.duration\nTHRESHOLD: 3.0\nDESCRIPTION: backward speed in m/s"},
        {"match": "Does this number rise when the task is done better?", "response": "VERDICT: ACCEPT\nREASON: it is the backward speed."},
        {"match": "was the best so far", "response": f"Scaled up.\n```python\n{GOOD.replace('-0.1 *', '-0.05 *')}```"},
    ]
    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump(rules + [f"Here is my reward.\n```python\n{d}```\nIt should work." for d in designs]))
    return f"scripted:{path}"


def cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoreward.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600, env=env)


def test_code_extraction_survives_prose_blocks_and_names():
    assert "def compute_reward" in extract_code(f"Sure!\n```python\n{GOOD}```\nDone.")
    two = "```python\nimport numpy as np\nK = 2.0\n```\ntext\n```python\ndef compute_reward(prev, action, state, memory):\n    return K, {}\n```"
    assert extract_code(two).startswith("import numpy as np\nK = 2.0\n\ndef compute_reward")  # K lives in the first block
    renamed = extract_code("```\ndef my_reward(prev, action, state, memory):\n    return 1.0, {}\n```")
    assert "def compute_reward(prev, action, state, memory)" in renamed
    unfenced = extract_code("Plan: go back.\nimport numpy as np\ndef compute_reward(prev, action, state, memory):\n    return 1.0, {}\nThis rewards going back.")
    assert unfenced.startswith("import numpy") and "This rewards" not in unfenced
    assert extract_code("I cannot help with that.") is None


def test_review_and_fitness_parsers():
    assert parse_review("VERDICT: REJECT\nREASON: it rewards +x.") == (False, "it rewards +x.")
    assert parse_review("**VERDICT:** ACCEPT\nREASON: fine")[0] is True
    assert parse_review("looks fine")[0] is None
    assert parse_review("REJECT\nREASON: no backward term.") == (False, "no backward term.")
    assert parse_review("**ACCEPT**\nThe code rewards -x velocity.")[0] is True
    assert parse_fitness_proposal("FITNESS: ep.env_return\nTHRESHOLD: 10\nDESCRIPTION: x") == ("ep.env_return", 10.0, "x")
    assert parse_fitness_proposal("FITNESS: ep.(\nTHRESHOLD: 1") is None


def test_the_prompt_example_handed_back_is_caught():
    copied = '"""My reward."""\n' + DEFAULT_EXAMPLE.replace("    total = effort", "    # effort only\n    total = effort")
    copied += "\ndef helper(s):\n    return 0.0\n"  # an unused helper does not hide the copy
    assert "example from the instructions" in example_copy_error(copied, DEFAULT_EXAMPLE)
    assert example_copy_error(GOOD, DEFAULT_EXAMPLE) == ""
    edited = DEFAULT_EXAMPLE.replace("-0.05", "-0.1")
    assert example_copy_error(edited, DEFAULT_EXAMPLE) == "" and example_copy_error(None, DEFAULT_EXAMPLE) == ""


def test_repair_prompt_explains_how_components_make_the_total():
    var = dict(env_text="E", task="T", fitness_doc="F", code="C")
    hint = "total = float(sum(components.values()))"
    assert hint in render("designer_repair.j2", error="the components add up to -3.2 but the total is -2.7", kind="sum_mismatch", **var)
    assert hint not in render("designer_repair.j2", error="NameError: name 'x' is not defined", kind="exception", **var)
    alive = "add a constant positive term for every step it stays healthy or alive"
    assert alive in render("designer_repair.j2", error="failing pays: ...", kind="failing_pays", **var)
    assert alive not in render("designer_repair.j2", error="NameError", kind="exception", **var)
    shape = "The example only shows the shape"
    assert shape in render("designer_repair.j2", error="static: compute_reward is the example ...", kind="example_copy", **var)
    assert shape not in render("designer_repair.j2", error="NameError", kind="exception", **var)


@pytest.mark.slow
def test_example_copy_goes_back_for_repair(tmp_path):
    model = script(tmp_path, [DEFAULT_EXAMPLE])
    r = cli("run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards", "--model", model, "--iterations", "1",
            "--samples", "1", "--no-review", *FAST, "--out", str(tmp_path / "runs"), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    run = next((tmp_path / "runs").iterdir())
    st = json.loads((run / "iter0/cand0/candidate.json").read_text())
    assert st["accepted"] and st["repairs"] == 1 and "example from the instructions" in st["history"][0]["error"]
    log = [json.loads(l) for l in (run / "llm_exchanges.jsonl").read_text().splitlines()]
    repair = next(e for e in log if e.get("template") == "designer_repair.j2")
    assert "example from the instructions" in json.dumps(repair["messages"])


@pytest.mark.slow
def test_loop_repairs_dedups_trains_analyzes_and_refines(tmp_path):
    """Sample 0 points the wrong way (probe rejects, one repair fixes it); sample 1 is the same
    program as the repaired one (dropped as a duplicate); the next iteration refines the best."""
    model = script(tmp_path, [FLIPPED, GOOD])
    r = cli("run", "make the half-cheetah run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards",
            "--model", model, "--iterations", "2", "--samples", "2", *FAST, "--out", str(tmp_path / "runs"), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    run = next((tmp_path / "runs").iterdir())
    c0 = json.loads((run / "iter0/cand0/candidate.json").read_text())
    assert c0["accepted"] and c0["repairs"] == 1 and "wrong way" in c0["history"][0]["error"]
    assert (run / "iter0/cand1/duplicate.json").exists() and not (run / "iter0/cand1/metrics.json").exists()
    assert json.loads((run / "iter0/cand0/metrics.json").read_text())["ok"]
    a = json.loads((run / "iter0/cand0/analysis.json").read_text())
    assert "fitness_final" in a["numbers"] and a["summary"].startswith("The policy learned")
    assert (run / "iter0/cand0/analysis.md").exists()
    assert (run / "iter1/cand0/metrics.json").exists()  # refined in iteration 1
    log = [json.loads(l) for l in (run / "llm_exchanges.jsonl").read_text().splitlines()]
    templates = [e.get("template") for e in log]
    assert "designer_refine.j2" in templates and "designer_repair.j2" in templates and "critic_review.j2" in templates
    refine_prompt = next(e for e in log if e.get("template") == "designer_refine.j2")
    assert "backward = -state.x_velocity" in json.dumps(refine_prompt["messages"])  # the best code goes back
    assert "best fitness:" in r.stdout and "autoreward show" in r.stdout
    # every LLM call counts against --max-tokens/--max-cost, the analyzer's included
    assert "analyzer_summary.j2" in templates
    state = json.loads((run / "state.json").read_text())
    assert state["tokens"] == sum(e["prompt_tokens"] + e["completion_tokens"] for e in log) > 0
    s = cli("show", str(run), cwd=tmp_path)
    assert s.returncode == 0 and "def compute_reward" in s.stdout and "iter0/cand0" in s.stdout


@pytest.mark.slow
def test_review_veto_and_free_form_fitness(tmp_path):
    model = script(tmp_path, [GOOD], review="VERDICT: REJECT\nREASON: it rewards running forwards.")
    r = cli("run", "run backwards", "--env", "HalfCheetah-v5", "--model", model, "--iterations", "1", "--samples", "1",
            *FAST, "--out", str(tmp_path / "runs"), cwd=tmp_path)
    run = next((tmp_path / "runs").iterdir())
    f = json.loads((run / "fitness.json").read_text())
    assert f["fitness"].startswith("(ep.first.x_position") and f["success"] == 3.0
    st = json.loads((run / "iter0/cand0/candidate.json").read_text())
    assert not st["accepted"] and st["repairs"] == 3 and "reviewer says" in st["error"] and st["kind"] == "review"
    assert r.returncode == 1 and "no candidate was trained" in r.stdout
    # the rejection is printed whole, after its repair count, not cut mid-sentence before it
    assert "cand0: rejected after 3 repair(s): review: the reviewer says this code does not reward the task as written: it rewards running forwards." in r.stdout

    # advisory review: the objection is recorded and passed on, but does not veto
    r = cli("run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards", "--model", model, "--iterations", "1",
            "--samples", "1", "--review", "advise", *FAST, "--out", str(tmp_path / "runs2"), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    run = next((tmp_path / "runs2").iterdir())
    st = json.loads((run / "iter0/cand0/candidate.json").read_text())
    assert st["accepted"] and st["review_objection"] == "it rewards running forwards."


@pytest.mark.slow
def test_kill_minus_9_then_resume_reasks_nothing_and_retrains_nothing(tmp_path):
    model = script(tmp_path, [GOOD, GOOD.replace("0.5 * max", "0.4 * max")])
    args = ["run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards", "--model", model,
            "--iterations", "1", "--samples", "2", "--no-review", *FAST, "--out", str(tmp_path / "runs")]
    p = subprocess.Popen([sys.executable, "-m", "autoreward.cli", *args], cwd=tmp_path, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    first = None
    while time.time() < deadline:
        hits = list((tmp_path / "runs").glob("*/iter0/cand0/metrics.json"))
        if hits:
            first = hits[0]
            break
        time.sleep(0.5)
    assert first is not None, "the first candidate never finished"
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    run = first.parents[2]
    mtime = first.stat().st_mtime_ns
    n_designs = sum(1 for l in (run / "llm_exchanges.jsonl").read_text().splitlines() if "designer_initial" in l)
    r = cli("resume", str(run), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert first.stat().st_mtime_ns == mtime  # not retrained
    log = (run / "llm_exchanges.jsonl").read_text().splitlines()
    assert sum(1 for l in log if "designer_initial" in l) == n_designs  # not re-asked
    assert json.loads((run / "iter0/cand1/metrics.json").read_text())["ok"]
    assert json.loads((run / "result.json").read_text())["best"]


def test_resume_and_show_of_a_non_run_are_one_line_errors(tmp_path):
    r = cli("resume", str(tmp_path / "nope"), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error: run directory") and "Traceback" not in r.stderr
    r = cli("show", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2 and "not an autoreward run directory" in r.stderr
    r = cli("run", "x", "--env", "HalfCheetah-v5", "--model", "scripted:/nonexistent.yaml", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr


@pytest.mark.slow
def test_refine_and_resume_of_a_check_run_are_one_line_errors(tmp_path):
    """`check` and `eval` make run directories too, but with no loop to continue."""
    (tmp_path / "r.py").write_text(GOOD)
    r = cli("check", "r.py", "--env", "HalfCheetah-v5", "--task", "run_backwards", "--out", "runs", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    run = next((tmp_path / "runs").iterdir())
    for args in (["refine", str(run), "--feedback", "go faster"], ["resume", str(run)]):
        r = cli(*args, cwd=tmp_path)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith("error: ") and "was made by `autoreward check`" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    s = cli("show", str(run), cwd=tmp_path)
    assert s.returncode == 0 and "candidate" in s.stdout and "accepted" in s.stdout and "no trained candidate yet" in s.stdout


@pytest.mark.slow
def test_interactive_mode_as_a_person_uses_it(tmp_path):
    """Drive the real terminal program: after iteration 0 give feedback in words, then the
    refine prompt of iteration 1 must carry it; then refine the finished run with --prefer."""
    import pexpect

    model = script(tmp_path, [GOOD, GOOD.replace("0.5 * max", "0.4 * max")])
    args = ["-m", "autoreward.cli", "run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards",
            "--model", model, "--iterations", "2", "--samples", "1", "--no-review", *FAST, "--interactive",
            "--out", str(tmp_path / "runs")]
    child = pexpect.spawn(sys.executable, args, cwd=str(tmp_path), timeout=300, encoding="utf-8", dimensions=(50, 160))
    child.expect(r"\[c\]ontinue, \[f\]eedback")
    import re

    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before)
    assert "iter0/cand0" in screen and "def compute_reward" in screen  # table and best code
    child.sendline("f")
    child.expect("feedback for the designer")
    child.sendline("keep the torso lower")
    child.expect("best fitness:")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    run = next((tmp_path / "runs").iterdir())
    log = [json.loads(l) for l in (run / "llm_exchanges.jsonl").read_text().splitlines()]
    refine = [e for e in log if e.get("template") == "designer_refine.j2"]
    assert refine and "keep the torso lower" in json.dumps(refine[0]["messages"])

    r = cli("refine", str(run), "--prefer", "iter0/cand0", "--feedback", "less control cost", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    log = [json.loads(l) for l in (run / "llm_exchanges.jsonl").read_text().splitlines()]
    last = [e for e in log if e.get("template") == "designer_refine.j2"][-1]
    assert "less control cost" in json.dumps(last["messages"]) and "(iteration 0)" in json.dumps(last["messages"])
    assert (run / "iter2/cand0/candidate.json").exists()
    r = cli("refine", str(run), "--prefer", "iter9/cand0", cwd=tmp_path)
    assert r.returncode == 2 and "was not trained in this run" in r.stderr


@pytest.mark.slow
def test_interactive_edit_in_editor_and_token_cap(tmp_path):
    """[e]dit opens $EDITOR on the best code; the edited program is checked and trained in the
    next iteration. A token cap then stops the run before the third iteration."""
    import pexpect

    model = script(tmp_path, [GOOD])
    env = {**os.environ, "EDITOR": "sed -i 's/0.5 \\* max/0.3 * max/'"}
    args = ["-m", "autoreward.cli", "run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards",
            "--model", model, "--iterations", "3", "--samples", "1", "--no-review", *FAST, "--interactive",
            "--max-tokens", "1500", "--out", str(tmp_path / "runs")]
    child = pexpect.spawn(sys.executable, args, cwd=str(tmp_path), timeout=300, encoding="utf-8", env=env, dimensions=(50, 160))
    child.expect(r"\[c\]ontinue, \[f\]eedback")
    child.sendline("e")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    run = next((tmp_path / "runs").iterdir())
    edited = [p for p in run.glob("iter1/*/reward.py") if "0.3 * max" in p.read_text()]
    assert edited and json.loads((edited[0].parent / "metrics.json").read_text())["ok"]
    result = json.loads((run / "result.json").read_text())
    # iteration 0 costs about 850 tokens with its analyzer summary, iteration 1 about 1,200 more:
    # the budget is spent within iteration 1 (no LLM request after that), so no iteration 2
    assert result["stopped"].startswith("token budget of 1500") and not (run / "iter2").exists()


@pytest.mark.slow
def test_samples_dedupe_drops_as_copies_are_asked_for_again_shown_the_distinct_ones(tmp_path):
    """The 1.5B model copied the library's example: dedupe left 1 distinct of 4 samples and the
    iteration trained one candidate. Now it asks for as many as were dropped, shown the round's
    distinct programs (`diversity_rounds`, data), and trains what differs."""
    other = GOOD.replace("-0.1 *", "-0.02 *")
    rules = [
        {"match": "were already written for this task in this round", "response": f"A different one.\n```python\n{other}```"},
        {"match": "Does this code reward the task as written?", "response": "VERDICT: ACCEPT\nREASON: it rewards moving towards -x."},
        {"match": "Measured numbers:", "response": "It moved backwards."},
    ]
    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump(rules + [f"```python\n{GOOD}```"]))
    r = cli("run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards", "--model", f"scripted:{path}",
            "--iterations", "1", "--samples", "3", *FAST, "--out", "runs", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "dedupe left 1 distinct of 3: asking for 2 different ones (round 1 of 1)" in r.stdout
    assert r.stdout.count("cand1: same program as one already trained") == 1  # said once, not again after the round
    (run,) = (tmp_path / "runs").iterdir()
    designs = json.loads((run / "iter0" / "designs.json").read_text())
    assert [(d["index"], d["round"]) for d in designs] == [(0, ""), (1, ""), (2, ""), (3, "diverse1"), (4, "diverse1")]
    assert all(d["accepted"] for d in designs)
    asked = [e for e in read_log(run) if e["template"] == "designer_initial.j2" and "already written" in e["messages"][-1]["content"]]
    assert len(asked) == 1 and GOOD.strip() in asked[0]["messages"][-1]["content"]
    trained = sorted(p.parent.name for p in (run / "iter0").glob("cand*/metrics.json"))
    assert trained == ["cand0", "cand3"]  # cand4 repeated cand3: one round only, so it stays a duplicate
    assert (run / "iter0" / "cand4" / "duplicate.json").exists() and (run / "iter0" / "cand1" / "duplicate.json").exists()


@pytest.mark.slow
def test_an_iteration_whose_samples_are_all_rejected_asks_for_fresh_ones_told_why(tmp_path):
    """The 1.5B model kept a fall bonus through 3 repairs on "hop backwards while staying upright"
    and its other sample kept a TypeError: the iteration trained nothing. Now it asks once more
    for fresh samples, the rejections in the prompt (`refill_rounds`, data: 0 turns it off)."""
    rules = [
        {"match": "cand0 was rejected: the answer contained no Python code", "response": f"A new one.\n```python\n{GOOD}```"},
        {"match": "This reward function was rejected", "response": "I cannot fix it."},
        {"match": "Does this code reward the task as written?", "response": "VERDICT: ACCEPT\nREASON: it rewards moving towards -x."},
        {"match": "Measured numbers:", "response": "It moved backwards."},
    ]
    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump(rules + ["No code here, sorry."]))
    args = ["run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards", "--model", f"scripted:{path}",
            "--iterations", "1", "--samples", "1", *FAST]
    r = cli(*args, "--out", "runs", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the critic rejected every sample: asking for 1 fresh ones, told why (refill 1 of 1)" in r.stdout
    (run,) = (tmp_path / "runs").iterdir()
    designs = json.loads((run / "iter0" / "designs.json").read_text())
    assert [d["index"] for d in designs] == [0, 1] and designs[0]["accepted"] is False and designs[1]["accepted"] is True
    assert designs[0]["repairs"] == 3  # the first round's outcome survives the refill's write
    assert json.loads((run / "iter0" / "cand1" / "metrics.json").read_text())["ok"]

    (tmp_path / "off.yaml").write_text("refill_rounds: 0\n")
    r = cli(*args, "--config", "off.yaml", "--out", "runs_off", cwd=tmp_path)
    assert r.returncode == 1 and "no candidate was trained" in r.stdout and "fresh ones" not in r.stdout, r.stdout + r.stderr
