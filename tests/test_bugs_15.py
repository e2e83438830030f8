"""The four bugs issue 15 lists beside its parts, each found as a new user would and each
failing before its fix:

(a) extraction dropped a helper given in its own fenced block before the block with
    ``compute_reward``, so the sample failed with NameError through all its repairs;
(b) ``show`` printed an empty table for a run stopped while its samples (which had no code)
    were being repaired;
(c) in ``--review veto`` mode a review answer with no verdict counted as a pass, unseen;
(d) ``designs.json`` said nothing of (so read as 0) the repairs of a sample repaired three times.

The loop runs through the real CLI with the scripted backend (``scripted:FILE`` rules).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from autoreward.critic import check_program
from autoreward.designer import extract_code
from autoreward.program import RewardProgram

GOOD = (Path(__file__).parents[1] / "examples" / "halfcheetah_backwards.py").read_text()
TINY = ["--steps", "256", "--max-episode-steps", "50", "--eval-episodes", "1",
        "--set", "n_steps=128", "--set", "batch_size=64", "--set", "n_epochs=1", "--n-envs", "1"]

HELPER_FIRST = '''I split it in two. A helper first:

```python
import numpy as np

SCALE = 1.0


def backward_speed(prev, state):
    """Metres per second towards -x."""
    return -SCALE * float(state.x_velocity)
```

Then the reward, which calls it:

```python
def compute_reward(prev, action, state, memory):
    speed = backward_speed(prev, state)
    effort = -0.1 * float(np.sum(np.square(action)))
    return speed + effort, {"speed": speed, "effort": effort}
```

Call it like this:

```python
total, components = compute_reward(prev, action, state, {})
```
'''


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoreward.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def scripted(tmp_path: Path, entries: list) -> str:
    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump(entries))
    return f"scripted:{path}"


# (a) ------------------------------------------------------------------------------------------


def test_a_helper_in_its_own_block_before_compute_reward_is_kept(cheetah, cheetah_recording, tmp_path):
    code = extract_code(HELPER_FIRST)
    assert "def backward_speed" in code and "SCALE = 1.0" in code and "import numpy as np" in code
    assert code.index("def backward_speed") < code.index("def compute_reward")
    assert "total, components = compute_reward" not in code  # a usage example would run at load time
    # the real critic, in the sandbox: before the fix this was NameError: name 'backward_speed'
    v = check_program(RewardProgram(code), cheetah, "run_backwards", tmp_path, cheetah_recording)
    assert v.accepted, v.message


def test_extraction_takes_only_the_blocks_the_function_needs():
    after = "```python\ndef compute_reward(prev, action, state, memory):\n    return K * state.x_velocity, {}\n```\n" \
            "```python\nK = -1.0\n```\n```python\nUNUSED = 3\n```"
    assert extract_code(after) == "def compute_reward(prev, action, state, memory):\n    return K * state.x_velocity, {}\n\nK = -1.0\n"
    chain = "```python\ndef b(s):\n    return -s.x_velocity\n```\n```python\ndef a(s):\n    return b(s)\n```\n" \
            "```python\ndef compute_reward(prev, action, state, memory):\n    return a(state), {}\n```"
    assert [ln for ln in extract_code(chain).splitlines() if ln.startswith("def")] == \
        ["def b(s):", "def a(s):", "def compute_reward(prev, action, state, memory):"]
    older = "```python\ndef compute_reward(prev, action, state, memory):\n    return h(state), {}\n```\n" \
            "```python\ndef h(s):\n    return 1.0\n\ndef compute_reward(prev, action, state, memory):\n    return 0.0, {}\n```"
    assert extract_code(older).count("def compute_reward") == 1  # another version is not a helper


# (b) ------------------------------------------------------------------------------------------


def test_show_lists_samples_without_code_when_the_run_stopped_during_repairs(tmp_path):
    # the designer answers without code; the repair prompt has no rule, so the run stops there
    model = scripted(tmp_path, [{"match": "Write a dense reward function", "response": "I would reward moving backwards."}])
    r = cli("run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards", "--model", model, "--iterations", "1",
            "--samples", "2", "--review", "off", "--out", "runs", cwd=tmp_path)
    assert r.returncode == 2 and "no rule" in r.stderr, r.stdout + r.stderr
    (run,) = (tmp_path / "runs").iterdir()
    assert not list(run.glob("iter0/cand*/reward.py")) and not list(run.glob("iter0/cand*/candidate.json"))
    s = cli("show", str(run), cwd=tmp_path)
    assert s.returncode == 0, s.stderr
    rows = [ln for ln in s.stdout.splitlines() if "iter0/cand" in ln]
    assert [ln.split()[1] for ln in rows] == ["iter0/cand0", "iter0/cand1"], s.stdout  # was an empty table
    assert all("unfinished" in ln and "the answer contained no Python code" in ln for ln in rows), s.stdout


# (c) and (d): one run, a sample rejected three times, then accepted with a reviewer that gives no verdict


@pytest.fixture(scope="module")
def repaired_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("repaired")
    forbidden = [f"import {m}\n\n{GOOD}" for m in ("os", "sys", "subprocess")]  # rejected by the static policy
    entries = [
        {"match": "Does this code reward the task as written?", "response": "This looks like a sensible reward for the task."},
        {"match": "Measured numbers:", "response": "It moved backwards."},
        *[f"Here it is.\n```python\n{src}```" for src in [*forbidden, GOOD]],  # first answer, then repairs 1, 2, 3
    ]
    r = cli("run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards", "--model", scripted(tmp, entries),
            "--iterations", "1", "--samples", "1", "--review", "veto", *TINY, "--out", "runs", cwd=tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    (run,) = (tmp / "runs").iterdir()
    return run, r


@pytest.mark.slow
def test_a_review_without_verdict_is_recorded_and_shown_not_a_silent_pass(repaired_run):
    run, r = repaired_run
    status = json.loads((run / "iter0" / "cand0" / "candidate.json").read_text())
    assert status["accepted"] and status["review"] == "no verdict"
    assert json.loads((run / "iter0" / "cand0" / "review.json").read_text())["accept"] is None
    assert "the reviewer gave no verdict, so the automatic checks decided" in r.stdout
    s = cli("show", str(run), cwd=run.parent.parent)
    row = next(ln for ln in s.stdout.splitlines() if "iter0/cand0" in ln)
    table = " ".join(s.stdout.replace("│", " ").split())  # a long cell wraps onto the next line
    assert "reviewer gave no verdict: This looks like a sensible reward" in table and "accepted" in row, s.stdout
    assert "review: no verdict" in s.stdout  # the best candidate's review line


@pytest.mark.slow
def test_designs_json_counts_the_repairs_of_a_sample(repaired_run):
    run, _ = repaired_run
    status = json.loads((run / "iter0" / "cand0" / "candidate.json").read_text())
    (design,) = json.loads((run / "iter0" / "designs.json").read_text())
    assert status["repairs"] == 3 and [h["kind"] for h in status["history"]][-1] == ""
    assert design["repairs"] == 3 and design["accepted"] is True and design["review"] == "no verdict"
    assert "import os" in design["source"]  # the code extracted from the first answer, as before
    assert len(json.loads((run / "iter0" / "cand0" / "vetting.json").read_text())["history"]) == 3
