"""The Ray executor: the same sandboxed training job as the local pool, as a Ray task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoreward.errors import ConfigError
from autoreward.executors import LocalPool, RayPool, make_executor
from autoreward.train.run import TrainSpec

ray = pytest.importorskip("ray")

GOOD = (Path(__file__).parents[1] / "examples" / "halfcheetah_backwards.py").read_text()
BROKEN = GOOD.replace("return ", "raise ValueError('boom at run time')\n    return ", 1)


def spec(card, source: str, **kw) -> TrainSpec:
    t = card.task("run_backwards")
    base = dict(card_path=card.path, task="run_backwards", fitness=t.fitness, success=t.success, source=source, steps=512,
                hyperparams={"n_steps": 256, "batch_size": 64, "n_epochs": 1}, eval_episodes=1, max_episode_steps=100)
    return TrainSpec(**{**base, **kw})


@pytest.fixture
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_trains_candidates_in_sandboxed_workers_into_the_run_dir(cheetah, tmp_path, local_ray):
    """Two good candidates and one that fails at run time, as Ray tasks of one CPU each: results,
    worker logs and policies land in each candidate folder; the failure is that candidate's error."""
    with RayPool(num_cpus=1) as pool:
        assert pool.workers == 2  # 2 CPUs / 1 per candidate
        futures = {name: pool.submit(spec(cheetah, src, seed=i), tmp_path / name)
                   for i, (name, src) in enumerate([("cand0", GOOD), ("cand1", GOOD), ("cand2", BROKEN)])}
        results = {name: f.result(timeout=600) for name, f in futures.items()}
    assert ray.is_initialized()  # the pool leaves a Ray it did not start running
    for name in ("cand0", "cand1"):
        m = json.loads((tmp_path / name / "metrics.json").read_text())
        assert results[name].ok and m["ok"] and m["steps"] == 512, m.get("error")
        assert (tmp_path / name / "policy.zip").exists() and (tmp_path / name / "worker.log").exists()
        assert Path(results[name].log_path).parent == tmp_path / name
    assert json.loads((tmp_path / "cand0/metrics.json").read_text())["seed"] == 0
    assert json.loads((tmp_path / "cand1/metrics.json").read_text())["seed"] == 1
    bad = json.loads((tmp_path / "cand2/metrics.json").read_text())
    assert not results["cand2"].ok and not bad["ok"] and "boom at run time" in bad["error"]


@pytest.mark.slow
def test_a_ray_jobs_progress_reaches_the_driver(cheetah, tmp_path, local_ray):
    """The live view's progress bars: the sandboxed job's events come back from the Ray task."""
    import time

    events: list[dict] = []
    with RayPool(num_cpus=1) as pool:
        assert pool.submit(spec(cheetah, GOOD), tmp_path / "cand0", events.append).result(timeout=600).ok
        deadline = time.monotonic() + 30  # the relay may trail the result by a moment
        while time.monotonic() < deadline and not any(e.get("event") == "eval" and e["step"] >= 400 for e in events):
            time.sleep(0.2)
    assert [e for e in events if e.get("event") == "progress" and e.get("total") == 512], events
    evals = [e["step"] for e in events if e.get("event") == "eval"]  # the learning curve's points, in order
    assert len(evals) >= 3 and evals == sorted(evals) and evals[-1] >= 400, events


@pytest.mark.slow
def test_without_a_shared_filesystem_the_job_says_so(cheetah, tmp_path, local_ray):
    """A card path the node cannot see comes back as the candidate's error, naming the fix."""
    with RayPool() as pool:
        r = pool.submit(spec(cheetah, GOOD, card_path=str(tmp_path / "elsewhere/HalfCheetah-v5.yaml")), tmp_path / "cand0").result(timeout=120)
    assert not r.ok and "filesystem every node shares" in r.error
    assert "filesystem every node shares" in json.loads((tmp_path / "cand0/metrics.json").read_text())["error"]


def test_executor_kinds_and_a_bad_address_are_one_line_errors():
    assert isinstance(make_executor("local", workers=3), LocalPool) and make_executor("local", workers=3).workers == 3
    with pytest.raises(ConfigError, match="unknown --executor"):
        make_executor("slurm")
    with pytest.raises(ConfigError, match="cannot connect to Ray at 127.0.0.1:1"):
        make_executor("ray", address="127.0.0.1:1")
    assert not ray.is_initialized()


@pytest.mark.slow
def test_run_with_executor_ray_trains_the_candidates_of_an_iteration(tmp_path):
    """`run --executor ray`: the loop's candidates train as Ray tasks on a Ray instance the run
    starts and stops; results land in the run directory as with the local pool."""
    import subprocess
    import sys

    import yaml

    other = GOOD.replace("upright = -0.5 *", "upright = -5.0 *")
    script = tmp_path / "s.yaml"
    rules = [{"match": "Does this code reward the task as written?", "response": "VERDICT: ACCEPT\nREASON: fine."},
             {"match": "Measured numbers:", "response": "Fine."}]
    script.write_text(yaml.safe_dump(rules + [f"```python\n{src}```" for src in (GOOD, other)]))
    r = subprocess.run(
        [sys.executable, "-m", "autoreward.cli", "run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards",
         "--model", f"scripted:{script}", "--iterations", "1", "--samples", "2", "--steps", "512", "--max-episode-steps", "100",
         "--eval-episodes", "1", "--set", "n_steps=256", "--set", "n_epochs=1", "--n-envs", "1", "--executor", "ray", "--no-report", "--out", "runs"],
        capture_output=True, text=True, cwd=tmp_path, timeout=900,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    run = next((tmp_path / "runs").iterdir())
    assert json.loads((run / "run.json").read_text())["config"]["executor"] == "ray"
    for cand in ("cand0", "cand1"):
        m = json.loads((run / "iter0" / cand / "metrics.json").read_text())
        assert m["ok"] and (run / "iter0" / cand / "worker.log").exists() and (run / "iter0" / cand / "analysis.json").exists()
