"""--trainer sbx (SB3's JAX port) and --n-envs with subprocess envs, in the sandboxed job."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

GOOD = Path(__file__).parents[1] / "examples" / "halfcheetah_backwards.py"
FAST = ["--steps", "512", "--max-episode-steps", "100", "--eval-episodes", "1", "--set", "n_steps=256", "--set", "n_epochs=1"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoreward.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_a_state_view_sent_to_another_process_stays_read_only(cheetah):
    from autoreward.cards import StateExtractor

    env = cheetah.make_env()
    env.reset(seed=0)
    view = StateExtractor(cheetah, env)(None, {}, 0.0)
    env.close()
    back = pickle.loads(pickle.dumps(view))
    assert type(back) is type(view) and back.x_position == view.x_position and back.joint_angles.tolist() == view.joint_angles.tolist()
    with pytest.raises(ValueError):
        back.joint_angles.setflags(write=True)
    with pytest.raises(AttributeError):
        back.x_position = 1.0


def test_unknown_trainer_and_executor_are_one_line_errors(tmp_path):
    r = cli("eval", str(GOOD), "--env", "HalfCheetah-v5", "--task", "run_backwards", "--trainer", "jax", *FAST, cwd=tmp_path)
    assert r.returncode != 0 and "unknown --trainer 'jax'" in r.stderr and "Traceback" not in r.stderr + r.stdout
    r = cli("run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards", "--executor", "slurm", cwd=tmp_path)
    assert r.returncode != 0 and "executor" in r.stderr and "Traceback" not in r.stderr + r.stdout


@pytest.mark.slow
def test_sbx_trains_on_two_subprocess_envs_in_the_sandbox(tmp_path):
    pytest.importorskip("sbx")
    r = cli("eval", str(GOOD), "--env", "HalfCheetah-v5", "--task", "run_backwards", "--trainer", "sbx", "--n-envs", "2",
            "--set", "n_steps=128", *FAST[:-4], "--set", "n_epochs=1", "--out", "runs", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    m = json.loads(next((tmp_path / "runs").glob("*/candidate/metrics.json")).read_text())
    assert m["ok"] and m["trainer"] == "sbx" and m["n_envs"] == 2 and m["vec_env"] == "dummy" and m["steps"] == 512


@pytest.mark.slow
def test_subprocess_envs_give_the_reward_read_only_state(cheetah, tmp_path):
    """With SubprocVecEnv the views cross a pipe; a reward that tries to write into one fails
    training exactly as it would in one process."""
    from autoreward.train.run import TrainSpec, train_candidate

    t = cheetah.task("run_backwards")
    writer = GOOD.read_text().replace("    backward = -state.x_velocity", "    state.joint_angles[0] = 1.0\n    backward = -state.x_velocity")
    base = dict(card_path=cheetah.path, task="run_backwards", fitness=t.fitness, success=t.success, steps=512, n_envs=2,
                vec_env="subproc", hyperparams={"n_steps": 128, "n_epochs": 1}, eval_episodes=1, max_episode_steps=100)
    ok = train_candidate(TrainSpec(source=GOOD.read_text(), **base), tmp_path / "ok")
    assert ok.ok, ok.error
    assert json.loads((tmp_path / "ok/metrics.json").read_text())["vec_env"] == "subproc"
    bad = train_candidate(TrainSpec(source=writer, **base), tmp_path / "bad")
    assert not bad.ok and "read-only" in json.loads((tmp_path / "bad/metrics.json").read_text())["error"]
