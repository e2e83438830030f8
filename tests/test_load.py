"""Load (issue 15 part 7): 3 iterations x 16 samples on the scripted backend with small training
budgets, on this machine's cores. The run must complete, leave no worker process behind, and the
main process's memory must stay flat from one iteration to the next.

A driver process runs the real ``autoreward run`` under it. The driver makes itself a child
subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), so a sandbox or training worker orphaned by the
run is re-parented to the driver, where it is seen after the run exits instead of vanishing
under init. The driver samples the run's RSS and its live descendants every half second and
writes the numbers as JSON (printed by the test, for the issue's note).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ITERATIONS, SAMPLES = 3, 16
TINY = ["--steps", "256", "--max-episode-steps", "50", "--eval-episodes", "1",
        "--set", "n_steps=128", "--set", "batch_size=64", "--set", "n_epochs=1", "--n-envs", "1"]

DRIVER = r'''
import ctypes, json, subprocess, sys, threading, time
import psutil

PR_SET_CHILD_SUBREAPER = 36
assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
out, argv = sys.argv[1], sys.argv[2:]
t0 = time.monotonic()
run = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
main = psutil.Process(run.pid)
lines, samples = [], []

def read():
    for line in run.stdout:
        lines.append([round(time.monotonic() - t0, 2), line.rstrip()])

reader = threading.Thread(target=read, daemon=True)
reader.start()
while run.poll() is None:
    try:
        rss = main.memory_info().rss
        kids = [c for c in main.children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]
        samples.append([round(time.monotonic() - t0, 2), rss, len(kids)])
    except psutil.Error:
        pass
    time.sleep(0.5)
code = run.wait()
reader.join(timeout=30)  # a leftover holding the run's stdout would keep it open
time.sleep(2.0)  # a worker orphaned at the very end is re-parented to us by now
left = []
for c in psutil.Process().children(recursive=True):
    try:
        left.append({"pid": c.pid, "status": c.status(), "cmdline": " ".join(c.cmdline())[:300]})
    except psutil.Error:
        pass
json.dump({"returncode": code, "seconds": round(time.monotonic() - t0, 1), "lines": lines, "samples": samples,
           "left": left, "stdout_closed": not reader.is_alive()}, open(out, "w"))
'''


#: state features the samples mix into their rewards, each in its own way
FEATURES = [
    "state.torso_height - 0.6", "-abs(state.pitch_rate)", "-abs(state.z_velocity)", "-0.1 * float(np.sum(np.abs(state.joint_velocities)))",
    "state.back_foot_height", "state.front_foot_height", "-abs(state.pitch)", "-float(np.sum(np.square(state.joint_angles)))",
]


def program(j: int, scale: float = 1.0) -> str:
    """Reward j: backward speed plus two shaping terms chosen and weighted by j, so that no two
    j are the same program or an affine or rank copy of each other's rewards (checked for j < 48:
    Pearson and Spearman below 0.998 on the recorded transitions); ``scale`` makes a rescaled
    copy, which the behavioural dedupe recognises and does not train."""
    f1, f2 = FEATURES[j % 8], FEATURES[(j // 8 + 3 * j + 1) % 8]
    w1, w2, c = 0.3 + 0.25 * (j % 3), 0.2 + 0.15 * ((j // 3) % 4), 0.05 + 0.05 * (j % 5)
    return f'''import numpy as np


def compute_reward(prev, action, state, memory):
    """Sample {j}: backward speed, effort and two shaping terms."""
    backward = -state.x_velocity
    ctrl = -{c:.2f} * float(np.sum(np.square(action)))
    first = {w1:.2f} * ({f1})
    second = {w2:.2f} * ({f2})
    total = {scale:g} * (backward + ctrl + first + second)
    return total, {{"backward": {scale:g} * backward, "ctrl": {scale:g} * ctrl, "first": {scale:g} * first, "second": {scale:g} * second}}
'''


@pytest.mark.slow
def test_three_iterations_of_sixteen_samples_leave_no_worker_and_flat_memory(tmp_path):
    pytest.importorskip("psutil")
    rules = [
        {"match": "Does this code reward the task as written?", "response": "VERDICT: ACCEPT\nREASON: it rewards moving towards -x."},
        {"match": "Measured numbers:", "response": "It learned a little; raise the backward weight."},
    ]
    # the designer's initial and refine prompts match no rule: they take the 48 answers in turn;
    # each iteration has 8 different rewards and a rescaled copy of each (not trained: duplicates)
    answers = [program(i * SAMPLES // 2 + j // 2, scale=1.0 if j % 2 == 0 else 2.5) for i in range(ITERATIONS) for j in range(SAMPLES)]
    script = tmp_path / "script.yaml"
    script.write_text(yaml.safe_dump(rules + [f"Sample.\n```python\n{a}```" for a in answers]))
    (tmp_path / "driver.py").write_text(DRIVER)
    # the copies are here to load the dedupe, not to be asked for again: no diversity round (test_loop tests that)
    (tmp_path / "load.yaml").write_text("diversity_rounds: 0\n")
    numbers = tmp_path / "load.json"
    cmd = [sys.executable, "-m", "autoreward.cli", "run", "make the half-cheetah run backwards", "--env", "HalfCheetah-v5",
           "--preset", "run_backwards", "--model", f"scripted:{script}", "--iterations", str(ITERATIONS), "--samples", str(SAMPLES),
           "--review", "veto", "--no-report", "--config", str(tmp_path / "load.yaml"), *TINY, "--out", str(tmp_path / "runs")]
    d = subprocess.run([sys.executable, str(tmp_path / "driver.py"), str(numbers), *cmd], capture_output=True, text=True, cwd=tmp_path, timeout=3600)
    assert d.returncode == 0, d.stdout + d.stderr
    res = json.loads(numbers.read_text())
    out = "\n".join(line for _, line in res["lines"])
    assert res["returncode"] == 0, out

    # it completed: every iteration designed 16 samples, and candidates of each were trained
    (run,) = (tmp_path / "runs").iterdir()
    state = json.loads((run / "state.json").read_text())
    assert state["iteration"] == ITERATIONS, state
    for i in range(ITERATIONS):
        assert len(json.loads((run / f"iter{i}" / "designs.json").read_text())) == SAMPLES
        assert len(list(run.glob(f"iter{i}/cand*/metrics.json"))) == SAMPLES // 2, f"iteration {i}:\n{out}"
        assert len(list(run.glob(f"iter{i}/cand*/duplicate.json"))) == SAMPLES // 2, f"iteration {i}:\n{out}"
    assert json.loads((run / "result.json").read_text())["best"]

    # no worker left behind: nothing re-parented to the driver, and the run's stdout was closed
    assert res["left"] == [] and res["stdout_closed"], res["left"]

    # flat memory: the main process's peak RSS in the last iteration is within 15% (or 60 MB) of
    # its peak in the second; the first is left out, it imports and records once. The HTML report
    # is switched off: it is written once, after the loop, and is not what this measures.
    starts = [t for t, line in res["lines"] if re.match(r"\s*iteration \d", line)]
    assert len(starts) == ITERATIONS, out
    bounds = [*starts, res["seconds"]]
    window = [[rss for t, rss, _ in res["samples"] if bounds[i] <= t < bounds[i + 1]] for i in range(ITERATIONS)]
    peaks = [max(w, default=0) for w in window]
    mb = lambda x: round(x / 2**20)  # noqa: E731
    print(f"\nload: {res['seconds']} s for {ITERATIONS} x {SAMPLES} samples; main RSS in MB at each iteration's start "
          f"{[mb(w[0]) for w in window if w]}, peak per iteration {[mb(p) for p in peaks]}, last sample {mb(res['samples'][-1][1])}; "
          f"at most {max(k for _, _, k in res['samples'])} live descendants; {len(res['samples'])} samples")
    assert peaks[2] <= max(peaks[1] * 1.15, peaks[1] + 60 * 2**20), f"main RSS grew from iteration 1 to 2: {[mb(p) for p in peaks]} MB"
