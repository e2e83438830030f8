"""The time-to-behaviour suite (``bench --suite behaviour``): its arithmetic on made-up jobs, and
the suite end to end on a tiny budget. Its figures are benchmarks, not timed tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from autoreward.bench import SUITES
from autoreward.bench.behaviour import speedup, summarize, time_to, train_rate

ROOT = Path(__file__).parents[1]


def _job(seed: int, curve: list[list[float]], reached: bool) -> dict:
    return {"seed": seed, "curve": curve, "reached": reached, "best_fitness": max(c[2] for c in curve)}


def test_speedup_is_wall_time_to_the_same_fitness():
    fast = _job(0, [[0, 0.0, 0.1], [20_000, 5.0, 1.0], [40_000, 10.0, 3.2]], True)
    slow = _job(0, [[0, 0.0, 0.1], [10_000, 30.0, 0.5], [20_000, 60.0, 1.5]], False)  # stopped at the cap below 3
    entry = {"success_threshold": 3.0, "profiles": {"default": {"jobs": [fast]}, "zoo": {"jobs": [slow]}}}
    up = speedup(entry, ["default", "zoo"])
    # the same fitness: the best both reached (1.5), first at 10 s with the defaults and 60 s with zoo
    assert up["speedup"] == 6.0 and up["speedup_per_seed"][0]["fitness"] == 1.5 and up["speedup_per_seed"][0]["lower_bound"]
    assert time_to(fast["curve"], 0.05) == 5.0  # the untrained evaluation (step 0) never counts
    entry["profiles"]["default"].update(seeds=1, seeds_reaching_success=1)
    entry["speedup"] = up["speedup"]
    s = summarize({"t": entry})
    assert s["median_speedup"] == 6.0 and s["tasks_reaching_success"] == 1 and s["tasks_measured"] == 1


def test_training_rate_leaves_evaluations_out():
    events = [(0.0, {"event": "eval", "step": 0}), (1.0, {"event": "progress", "step": 100}), (2.0, {"event": "progress", "step": 1100}),
              (9.0, {"event": "eval", "step": 1200}), (9.5, {"event": "progress", "step": 1200}), (10.5, {"event": "progress", "step": 2200})]
    assert train_rate(events) == 1000.0
    assert train_rate([]) is None


@pytest.mark.slow
def test_the_suite_stops_a_job_at_the_threshold_and_writes_its_headline_numbers(tmp_path):
    """Tiny budget; the threshold is set below anything so the first evaluation after training
    began reaches it: the job stops itself there (stop_at_success) and is judged where it stopped,
    for the card's settings and for zoo."""
    assert SUITES["behaviour"] == "autoreward.bench.behaviour:run"
    from autoreward.bench.behaviour import run

    card = tmp_path / "InvertedPendulum-v5.yaml"
    text = (ROOT / "envs" / "InvertedPendulum-v5.yaml").read_text()
    assert "    success: 0.9\n" in text
    card.write_text(text.replace("    success: 0.9\n", "    success: -1000.0\n", 1))
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({
        "defaults": {"max_steps": 4096, "eval_every": 1024, "eval_episodes": 1, "max_episode_steps": 50, "raw_steps": 200},
        "tasks": {"tiny": {"env": str(card), "preset": "balance_at_right", "expert": "experts/invertedpendulum_balance_at_right.py"}},
    }))
    out = tmp_path / "behaviour.json"
    res = run(Console(quiet=True), tasks=["tiny"], cap_s=120, config=cfg, out=out, work=tmp_path / "work")
    assert json.loads(out.read_text())["tasks_reaching_success"] == res["tasks_reaching_success"] == 1
    t = res["tasks"]["tiny"]
    assert t["raw_steps_per_s"] > 0 and t["success_threshold"] == -1000.0
    for profile, n_envs in (("default", 16), ("zoo", 1)):
        p = t["profiles"][profile]
        job = p["jobs"][0]
        assert p["n_envs"] == n_envs and p["seeds_reaching_success"] == 1, job
        assert job["stopped"] == "success" and 0 < job["steps_to_threshold"] <= 2048 and job["curve"][0][0] == 0
        assert job["judged_fitness"] == pytest.approx(job["curve"][-1][2]) and job["curve"][-1][0] == job["steps_to_threshold"]
    assert t["speedup"] is not None and "median_speedup" in res


def test_device_cuda_without_a_gpu_is_a_one_line_error_before_any_job():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "autoreward.cli", "bench", "--suite", "behaviour", "--device", "cuda", "--tasks", "hopper_default"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "--device cuda: torch sees no GPU here" in r.stderr and len(r.stderr.strip().splitlines()) == 1
