"""Training a given reward in the sandboxed worker."""

from __future__ import annotations

import csv
import json

import pytest

from autoreward.train.run import TrainSpec, train_candidate

FAST = {"n_steps": 256, "batch_size": 64, "n_epochs": 1}


def spec(card, source, steps, **kw):
    """Small settings, one env: the card's defaults (16 envs, 2,048 steps per update) would
    make a few-thousand-step test train a whole rollout of 16 envs."""
    t = card.task("run_backwards")
    base = dict(card_path=card.path, task="run_backwards", fitness=t.fitness, success=t.success, source=source,
                steps=steps, hyperparams=FAST, eval_episodes=1, max_episode_steps=100, n_envs=1)
    base.update(kw)
    return TrainSpec(**base)


def test_exception_deep_into_training_fails_only_the_candidate(cheetah, tmp_path):
    src = (
        "def compute_reward(prev, action, state, memory):\n"
        "    memory['t'] = memory.get('t', 0) + 1\n"
        "    if state.x_position > 1e9 or memory['t'] == 90 and prev.dt > 0 and abs(state.x_position) >= 0:\n"
        "        return helper_that_does_not_exist(), {}\n"
        "    return -state.x_velocity, {'v': -state.x_velocity}\n"
    )
    # memory['t'] reaches 90 only in an episode of >= 90 steps; the first comes at step 90
    job = train_candidate(spec(cheetah, src, 2000), tmp_path)
    assert not job.ok
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert "NameError" in m["error"] and "helper_that_does_not_exist" in m["error"]
    assert ("at training step" in m["error"] or "during evaluation" in m["error"]) and "line 4" in m["error"]
    assert m["failed_at_step"] < 2000


def test_nan_during_training_is_a_precise_error(cheetah, tmp_path):
    src = (
        "def compute_reward(prev, action, state, memory):\n"
        "    memory['t'] = memory.get('t', 0) + 1\n"
        "    r = float('nan') if memory['t'] > 60 else -state.x_velocity\n"
        "    return r, {'v': r}\n"
    )
    job = train_candidate(spec(cheetah, src, 1500), tmp_path)
    assert not job.ok and "the total reward is nan" in job.error


@pytest.mark.slow
def test_run_backwards_moves_fitness_the_right_way(cheetah, tmp_path, backwards_source):
    """Integration: a hand-written good reward, a small budget, fitness up against untrained."""
    s = spec(cheetah, backwards_source, 20_000, hyperparams={"learning_rate": 3e-4, "n_steps": 1024, "batch_size": 64, "n_epochs": 10},
             eval_episodes=3, max_episode_steps=300, eval_every=10_000)
    job = train_candidate(s, tmp_path)
    assert job.ok, job.error
    m = json.loads((tmp_path / "metrics.json").read_text())
    untrained, final = m["untrained"]["fitness_mean"], m["final"]["fitness_mean"]
    assert final > untrained + 0.3, (untrained, final)  # m/s backwards
    # everything lands in the candidate directory
    for f in ("policy.zip", "vecnormalize.pkl", "progress.csv", "metrics.json", "job.json", "worker.log"):
        assert (tmp_path / f).exists(), f
    rows = list(csv.DictReader(open(tmp_path / "progress.csv")))
    assert [int(r["step"]) for r in rows][0] == 0 and len(rows) >= 3
    comps = m["components"]
    assert {"backward", "upright", "ctrl", "env_reward"} <= set(comps)
    assert comps["backward"]["min"] <= comps["backward"]["mean"] <= comps["backward"]["max"]
    assert len(comps["backward"]["series"]) >= 10
    # the env's own reward recorded beside ours: running backwards costs forward reward
    assert m["final"]["env_return_mean"] < m["untrained"]["env_return_mean"]


def test_the_cards_fast_settings_train_and_evaluate_with_the_same_protocol_and_files(cheetah, tmp_path, backwards_source):
    """The card's defaults (16 in-process envs, PPO n_steps 128, batch 256): one update of 2,048
    steps, the same evaluation protocol, the same files and metrics as one env."""
    assert cheetah.training.n_envs == 16 and cheetah.training.vec_env == "dummy"
    s = spec(cheetah, backwards_source, 2048, hyperparams={}, n_envs=0, eval_every=1024)
    job = train_candidate(s, tmp_path)
    assert job.ok, job.error
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["ok"] and m["n_envs"] == 16 and m["vec_env"] == "dummy" and m["steps"] == 2048
    assert m["hyperparams"]["n_steps"] == 128 and m["hyperparams"]["batch_size"] == cheetah.training.hyperparams["ppo"]["batch_size"] == 256
    for f in ("policy.zip", "vecnormalize.pkl", "progress.csv", "metrics.json"):
        assert (tmp_path / f).exists(), f
    rows = list(csv.DictReader(open(tmp_path / "progress.csv")))
    assert int(rows[0]["step"]) == 0 and int(rows[-1]["step"]) == 2048  # untrained, then at the rollout's end
    assert m["untrained"]["fitness_mean"] == pytest.approx(float(rows[0]["task/fitness"]))
    assert len(m["final_episodes"]) == 1 and {"backward", "env_reward"} <= set(m["components"])


def test_subprocess_envs_train_with_the_same_protocol_and_files(cheetah, tmp_path, backwards_source):
    """vec_env subproc (one process per env; the reward runs there on read-only state views)
    stays supported beside the in-process default: same metrics, files and evaluation."""
    s = spec(cheetah, backwards_source, 1024, hyperparams={"n_steps": 256, "batch_size": 256, "n_epochs": 1}, n_envs=2,
             vec_env="subproc", eval_every=512)
    job = train_candidate(s, tmp_path)
    assert job.ok, job.error
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["n_envs"] == 2 and m["vec_env"] == "subproc" and m["steps_done"] == 1024
    assert {"backward", "env_reward"} <= set(m["components"]) and m["judge"]["process"]
    rows = list(csv.DictReader(open(tmp_path / "progress.csv")))
    assert [int(r["step"]) for r in rows] == [0, 512, 1024]


def test_stop_at_success_ends_training_at_the_first_evaluation_over_the_threshold(cheetah, tmp_path, backwards_source):
    """The behaviour benchmark's and ``eval --stop-at-success``'s stop: the job ends itself at the
    first periodic evaluation whose fitness reaches the success threshold, and is judged there."""
    low = spec(cheetah, backwards_source, 4096, success=-1e9, stop_at_success=True, eval_every=1024)  # any policy reaches it
    job = train_candidate(low, tmp_path / "low")
    assert job.ok, job.error
    m = job.result
    assert m["stopped_at_success"] == 1024 and m["steps_done"] == 1024 and m["steps"] == 4096
    rows = list(csv.DictReader(open(tmp_path / "low" / "progress.csv")))
    assert [int(r["step"]) for r in rows] == [0, 1024]
    # judged where it stopped: the final evaluation is of the policy that reached the threshold
    assert m["solved"] and m["final"]["fitness_mean"] == pytest.approx(float(rows[-1]["task/fitness"]))
    high = spec(cheetah, backwards_source, 2048, success=1e9, stop_at_success=True, eval_every=1024)  # none does
    m = train_candidate(high, tmp_path / "high").result
    assert m["stopped_at_success"] is None and m["steps_done"] == 2048 and not m["solved"]
