"""The Python API (``autoreward.synthesize``, ``check``, ``evaluate``, ``load_run``...), the
``run --config`` file and ``show --diff``; the LLM is the scripted backend, never a network one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import autoreward

GOOD = (Path(__file__).parents[1] / "examples" / "halfcheetah_backwards.py").read_text()
FLIPPED = GOOD.replace("backward = -state.x_velocity", "backward = state.x_velocity")
REFINED = GOOD.replace("-0.1 *", "-0.05 *")
#: tiny training, enough for a fitness: the loop's own defaults otherwise
TINY = {"steps": 256, "n_envs": 1, "max_episode_steps": 50, "eval_episodes": 1, "hyperparams": {"n_steps": 128, "batch_size": 64, "n_epochs": 1}}


def scripted_model(tmp_path: Path) -> str:
    """Answers in order: a design, a review, an analysis, then the refinement of the best."""
    rules = [
        {"match": "Does this code reward the task as written?", "response": "VERDICT: ACCEPT\nREASON: it rewards -x."},
        {"match": "Measured numbers:", "response": "It moved backwards a little."},
        {"match": "was the best so far", "response": f"Less effort penalty.\n```python\n{REFINED}```"},
    ]
    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump(rules + [f"```python\n{GOOD}```"]))
    return f"scripted:{path}"


def scripted_run(tmp_path: Path) -> Path:
    """A real two-iteration loop run through the API; its run directory."""
    result = autoreward.synthesize(
        "run backwards", env="HalfCheetah-v5", preset="run_backwards", model=scripted_model(tmp_path), iterations=2, samples=1,
        out=tmp_path / "runs", **TINY,
    )
    return result.run_dir


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoreward.cli", *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def test_importing_autoreward_is_cheap():
    code = "import sys, autoreward; autoreward.load_run; print(sorted(m for m in ('torch', 'stable_baselines3') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
    with pytest.raises(AttributeError):
        autoreward.nope  # noqa: B018


def test_check_takes_a_path_or_source_and_returns_the_verdict(tmp_path):
    good = tmp_path / "good.py"
    good.write_text(GOOD)
    v = autoreward.check(good, "HalfCheetah-v5", "run_backwards", out=tmp_path / "runs")
    assert v.accepted and (v.run_dir / "candidate" / "critic.json").exists()
    assert autoreward.load_run(v.run_dir).kind == "check"
    bad = autoreward.check(FLIPPED, "HalfCheetah-v5", "run_backwards", out=tmp_path / "runs")
    assert not bad.accepted and bad.failure_kind == "wrong_way" and bad.run_dir != v.run_dir


@pytest.mark.parametrize(
    "config, args, message",
    [
        ({"task": "x", "env": "HalfCheetah-v5", "stepz": 10}, [], "error: --config {cfg}: unknown key 'stepz' (known keys: task, env,"),
        ({"env": "HalfCheetah-v5"}, [], "error: run needs TASK and --env"),
        ({"task": "x", "env": "HalfCheetah-v5", "steps": "many"}, [], "error: run option steps: Input should be a valid integer"),
        ({"task": "x", "env": "HalfCheetah-v5", "preset": "fly"}, [], "error: env HalfCheetah-v5 has no preset task 'fly'"),
        ({"task": "x", "env": "HalfCheetah-v5", "preset": "fly"}, ["--preset", "jump", "--algo", "dqn"], "error: unknown --algo 'dqn' (use ppo or sac)"),
        (["not", "a", "mapping"], [], "error: --config {cfg} must be a mapping of option: value"),
    ],
)
def test_bad_run_config_is_one_line(tmp_path, config, args, message):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(config))
    r = cli("run", "--config", str(cfg), *args, "--out", str(tmp_path / "runs"))
    assert r.returncode == 2 and r.stderr.startswith(message.format(cfg=cfg)), r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_synthesize_returns_the_best_program_and_every_candidate(tmp_path):
    result = autoreward.synthesize(
        "run backwards", env="HalfCheetah-v5", preset="run_backwards", model=scripted_model(tmp_path), iterations=2, samples=1,
        out=tmp_path / "runs", **TINY,
    )
    run = autoreward.load_run(result.run_dir)
    best = run.best()
    assert best is not None and result.best_path == best.dir / "reward.py" and result.best_source == best.source
    assert result.fitness == best.fitness and result.untrained_fitness == best.metrics["untrained"]["fitness_mean"]
    assert [c.rel for c in result.candidates] == ["iter0/cand0", "iter1/cand0"] and all(c.ok for c in result.candidates)
    assert json.loads((result.run_dir / "result.json").read_text())["best_fitness"] == result.fitness
    # show --diff: by default the best of the last two iterations, i.e. what the refinement changed
    r = cli("show", str(result.run_dir), "--diff")
    assert r.returncode == 0, r.stderr
    assert "iter0/cand0" in r.stdout and "iter1/cand0" in r.stdout
    assert "-    ctrl = -0.1 *" in r.stdout and "+    ctrl = -0.05 *" in r.stdout
    r = cli("show", str(result.run_dir), "--diff", "iter1/cand0", "iter0/cand0")
    assert r.returncode == 0 and "+    ctrl = -0.1 *" in r.stdout
    r = cli("show", str(result.run_dir), "--diff", "iter0/cand0", "iter7/cand0")
    assert r.returncode == 2 and r.stderr.strip().endswith("has no candidate 'iter7/cand0' (candidates: iter0/cand0, iter1/cand0)")


@pytest.mark.slow
def test_run_takes_its_options_from_a_config_file_and_flags_override_it(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({
        "task": "run backwards", "env": "HalfCheetah-v5", "preset": "run_backwards", "model": scripted_model(tmp_path),
        "iterations": 3, "samples": 1, "review": "off", "out": str(tmp_path / "runs"), **TINY,
    }))
    r = cli("run", "--config", str(cfg), "--iterations", "1", "--seed", "4")
    assert r.returncode == 0, r.stdout + r.stderr
    run = autoreward.load_run(next((tmp_path / "runs").iterdir()))
    c = run.config  # the resolved config: file, then flags over it, then defaults
    assert c["iterations"] == 1 and c["seed"] == 4 and c["review"] == "off" and c["steps"] == 256
    assert c["hyperparams"] == TINY["hyperparams"] and c["preset"] == "run_backwards" and c["eval_episodes"] == 1
    assert [x.rel for x in run.candidates()] == ["iter0/cand0"] and not (run.path / "iter0/cand0/review.json").exists()
