"""The judge never runs beside the defendant (issue 21).

A reward program could once forge the numbers that judge it: ``import numpy as N; N.mean =
fake`` made ``autoreward eval`` print 1,000 m/s and "solved" for an untrained policy. These
tests hold the three layers that now stand in the way:

1. every number a decision reads comes from a process where no reward ever ran: the ``judge``
   job for a trained policy (its numbers replace the training job's, even when the training
   process lies about everything), a separate job for the recording's fitness in the critic,
   and the parent for every verdict on what the program returned;
2. the modules a program sees are read-only copies, however it imports them;
3. a program is made afresh for every episode, so no value outlives its episode.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest

from autoreward.analyzer import numbers
from autoreward.critic import check_program
from autoreward.critic.dry_run import Calls, call_program, judge_calls
from autoreward.episode import fitness_function, load_recording
from autoreward.program import FUNCTION_NAME, Instantiator, RewardCaller, RewardProgram, check_source, prepare_tree, restricted_globals
from autoreward.sandbox import Limits, run_job
from autoreward.train.judge import judge_candidate, normalizer
from autoreward.train.run import TrainSpec, train_candidate

#: the attack from the issue, as it was written
FORGER = '''import numpy as N

def fake_mean(*args, **kwargs):
    return 1000.0

def compute_reward(prev, action, state, memory):
    N.mean = fake_mean          # the static policy only forbade assigning through `np`/`numpy`
    backward = -state.x_velocity
    return backward, {"backward": backward}
'''

FAST = {"n_steps": 256, "batch_size": 64, "n_epochs": 1}


def spec(card, source, steps=512, **kw) -> TrainSpec:
    t = card.task("run_backwards")
    base = dict(card_path=card.path, task="run_backwards", fitness=t.fitness, success=t.success, source=source, steps=steps,
                hyperparams=FAST, n_envs=2, eval_episodes=2, max_episode_steps=100)
    base.update(kw)
    return TrainSpec(**base)


def unchecked(source: str) -> Instantiator:
    """TEST-ONLY: the program made as production makes it, minus the static policy, to show what
    the runtime alone does with what the policy would have refused."""
    make = Instantiator.__new__(Instantiator)
    make.code = compile(prepare_tree(source), "<reward>", "exec")
    make.function, make.guard = FUNCTION_NAME, None
    return make


# ---- 1. the attack -------------------------------------------------------------------


def test_the_forger_is_refused_by_eval_with_a_clear_message(tmp_path):
    path = tmp_path / "forger.py"
    path.write_text(FORGER)
    r = subprocess.run([sys.executable, "-m", "autoreward.cli", "eval", str(path), "--env", "HalfCheetah-v5", "--task", "run_backwards",
                        "--steps", "2048", "--out", str(tmp_path / "runs")], capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert "assigning to N.mean is not allowed" in out, out
    assert "not training a rejected reward" in out and "Traceback" not in out
    assert "fitness 4.76" not in out and "solved" not in out


@pytest.mark.parametrize("statement, error", [
    ("N.mean = fake_mean", "numpy is read-only"),
    ("del N.mean", "numpy is read-only"),
    ("N.linalg.norm = fake_mean", "numpy.linalg is read-only"),
    ("L.norm = fake_mean", "numpy.linalg is read-only"),
    ("N.mean.calls = 1", "numpy's functions are read-only"),
    ("M.sqrt = fake_mean", "math is read-only"),
    ("N.ndarray.mean = fake_mean", "immutable type"),
    ("N.random.seed(1)", "has no attribute 'random'"),
])
def test_modules_are_read_only_at_run_time_however_imported(statement, error):
    """What the static policy would refuse, the runtime refuses too: the program's numpy and math
    are read-only copies, through aliases, submodules (``from numpy import linalg``) and
    functions; the process's real numpy is never touched."""
    src = ("import numpy as N\nimport math as M\nfrom numpy import linalg as L\n\ndef fake_mean(*a, **k):\n    return 1000.0\n\n"
           f"def compute_reward(prev, action, state, memory):\n    {statement}\n    return 0.0, {{}}\n")
    assert check_source(src), "the static policy sees this one too"
    fn = unchecked(src)()
    with pytest.raises((AttributeError, TypeError), match=error):
        fn(None, np.zeros(6), None, {})
    assert np.mean([1.0, 3.0]) == 2.0 and not hasattr(np.mean, "calls") and np.linalg.norm([3.0, 4.0]) == 5.0


def test_a_module_level_array_is_read_only_at_run_time():
    fn = unchecked("import numpy as np\nBUF = np.zeros(1)\n\ndef compute_reward(prev, action, state, memory):\n"
                   "    BUF[0] += 1.0\n    return float(BUF[0]), {}\n")()
    with pytest.raises(ValueError, match="read-only"):
        fn(None, np.zeros(6), None, {})


def test_the_reward_namespace_holds_only_read_only_modules():
    ns = restricted_globals()
    assert ns["np"] is ns["numpy"] and ns["np"] is not np and ns["math"].__name__ == "math"
    assert not hasattr(ns["np"], "random") and not hasattr(ns["np"], "seterrcall") and not hasattr(ns["np"], "save")
    assert ns["np"].sqrt(4.0) == 2.0 and isinstance(ns["np"].zeros(2), np.ndarray)


# ---- 3. no state outlives its episode --------------------------------------------------------

#: each program counts its calls outside memory (what the static policy refuses): a module-level
#: list, a mutable default, a helper's default seen through a closure
COUNTERS = {
    "module-list": "CALLS = []\n\ndef compute_reward(prev, action, state, memory):\n    CALLS.append(1)\n    return float(len(CALLS)), {}\n",
    "default": "def compute_reward(prev, action, state, memory, calls=[]):\n    calls.append(1)\n    return float(len(calls)), {}\n",
    "closure": ("def _counter(c=[0]):\n    c[0] += 1\n    return c[0]\n\ndef compute_reward(prev, action, state, memory):\n"
                "    tick = lambda: _counter()\n    return float(tick()), {}\n"),
}


@pytest.mark.parametrize("name", sorted(COUNTERS))
def test_state_outside_memory_does_not_outlive_its_episode(name, cheetah, cheetah_recording):
    """What the policy misses cannot carry state across episodes: the dry run, evaluation and
    training each make the program afresh per episode, so its count restarts at every episode
    and the critic's dry run sees exactly what training will."""
    src = COUNTERS[name]
    assert any(f.check == "state" for f in check_source(src)), "the static policy refuses it"
    episodes = load_recording(cheetah_recording, cheetah)
    failed, calls = call_program(RewardCaller(unchecked(src)(), None, unchecked(src)), episodes)
    assert failed is None
    for ep_totals in calls.totals:
        assert ep_totals == [float(t + 1) for t in range(len(ep_totals))]  # 1, 2, 3... in every episode
    result, _ = judge_calls(calls, episodes)
    assert result.passed, result.message  # the replay, made afresh too, gives the same numbers


def test_the_training_wrapper_makes_the_program_afresh_per_episode(cheetah):
    from stable_baselines3.common.vec_env import DummyVecEnv

    from autoreward.train.wrappers import RewardProgramVecWrapper, StateWrapper

    make = unchecked(COUNTERS["module-list"])
    venv = RewardProgramVecWrapper(DummyVecEnv([lambda: StateWrapper(cheetah.make_env(max_episode_steps=5), cheetah)] * 2),
                                   RewardCaller(make(), None, make))
    venv.reset()
    seen = []
    for _ in range(12):
        _, rewards, dones, _ = venv.step(np.zeros((2, 6), dtype=np.float32))
        seen.append(rewards.tolist())
    assert [r[0] for r in seen] == [1.0, 2.0, 3.0, 4.0, 5.0, 1.0, 2.0, 3.0, 4.0, 5.0, 1.0, 2.0]


# ---- 1. the critic's verdicts are computed away from the program -----------------------------


def test_the_probe_takes_fitness_from_a_job_that_never_saw_the_program(cheetah, cheetah_recording, tmp_path, backwards_source):
    v = check_program(RewardProgram(backwards_source), cheetah, "run_backwards", tmp_path / "c", cheetah_recording)
    assert v.accepted, v.message
    fitness = cheetah.task("run_backwards").fitness
    cached = list(cheetah_recording.parent.glob(f"{cheetah_recording.stem}.fitness-*.json"))
    assert cached and json.loads(cached[0].read_text())["fitness"] == fitness
    fn = fitness_function(fitness, cheetah.measure_exprs, cheetah.field_names)  # trusted card expression, for comparison
    expected = [fn(ep) for ep in load_recording(cheetah_recording, cheetah)]
    assert json.loads(cached[0].read_text())["values"] == pytest.approx(expected)
    job = json.loads((tmp_path / "c" / "fitness" / "job.json").read_text()) if (tmp_path / "c" / "fitness").exists() else None
    assert job is None or "source" not in job["payload"]  # the fitness job was never given the program


def test_malformed_call_data_from_the_child_is_refused(cheetah, cheetah_recording, backwards_source):
    """The parent checks the shape and every number of what the program's process sent back."""
    episodes = load_recording(cheetah_recording, cheetah)
    _, calls = call_program(RewardCaller.compile(backwards_source), episodes)
    good = calls.to_json()
    Calls.from_json(json.loads(json.dumps(good)), episodes)  # round-trips
    for forged in ({**good, "totals": good["totals"][1:]}, {**good, "components": good["components"][:-1]},
                   {**good, "totals": [[float("nan")] * len(t) for t in good["totals"]]}, {**good, "seconds": "fast"}, "accepted"):
        with pytest.raises(ValueError):
            Calls.from_json(forged, episodes)


# ---- 1. a trained policy is judged in a clean process ----------------------------------------


def test_judged_numbers_equal_the_honest_training_process_numbers(cheetah, tmp_path, backwards_source):
    """For an honest reward the judge (same policy, same seeded episodes) agrees exactly with what
    the training process measured, the untrained baseline included: the clean process costs
    nothing in meaning."""
    job = train_candidate(spec(cheetah, backwards_source), tmp_path)
    assert job.ok, job.error
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["judge"]["process"].startswith("a separate sandboxed job") and "disagrees" not in m["judge"]
    assert m["fitness"] == m["final"]["fitness_mean"] == pytest.approx(m["self_reported"]["fitness_mean"], rel=1e-9, abs=1e-12)
    assert m["untrained"]["fitness_mean"] == pytest.approx(m["progress"][0]["task/fitness"], rel=1e-9, abs=1e-12)
    assert len(m["final_episodes"]) == 2 and all(e["reward_return"] is not None for e in m["final_episodes"])
    judge_job = json.loads((tmp_path / "judge" / "job.json").read_text())
    assert "source" not in judge_job["payload"]  # the judge never had the reward's text
    assert job.result == m  # what callers read (the benchmarks' HNS among them) is the merged, judged file


def test_a_lying_training_process_changes_no_judged_number(cheetah, tmp_path, backwards_source):
    """Whatever the training process writes about itself (here: everything forged, as a program
    that took over its process could), the numbers a decision reads are the judge's, and the
    difference is flagged as reward hacking (so the library would not take it). A result the
    process planted in the judge's folder beforehand is never read."""
    s = spec(cheetah, backwards_source)
    res = run_job("train", {**asdict(s), "out_dir": str(tmp_path)}, tmp_path, Limits())
    assert res.ok, res.error
    honest = json.loads((tmp_path / "metrics.json").read_text())
    (tmp_path / "metrics.json").unlink()  # as train_candidate does: the report waits in training.json for the judge
    forged = dict(honest, fitness=1000.0, success_rate=1.0, solved=True, untrained={"fitness_mean": -1000.0, "success_rate": 0.0, "env_return_mean": 0.0},
                  final={**honest["final"], "fitness_mean": 1000.0, "success_rate": 1.0},
                  final_episodes=[{**e, "fitness": 1000.0, "success": True} for e in honest["final_episodes"]],
                  judge={"process": "trust me"}, env_analysis={"forged": True})
    (tmp_path / "training.json").write_text(json.dumps(forged))
    (tmp_path / "judge").mkdir()
    (tmp_path / "judge" / "result.json").write_text(json.dumps({"ok": True, "final": {"fitness_mean": 1000.0}}))  # planted in advance
    assert judge_candidate(s, tmp_path).ok
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["fitness"] == pytest.approx(honest["fitness"], rel=1e-9, abs=1e-12) and m["solved"] is False
    assert m["final"]["fitness_mean"] == m["fitness"] and m["untrained"]["fitness_mean"] > -1000.0
    assert all(e["fitness"] < 1000.0 for e in m["final_episodes"]) and "env_analysis" not in m
    assert m["self_reported"]["fitness_mean"] == 1000.0 and "interfered" in m["judge"]["disagrees"]
    flags = numbers(m)["flags"]
    assert any(f.startswith("reward hacking: the training process reported fitness 1000") for f in flags), flags


def test_a_stop_between_training_and_judging_leaves_no_finished_looking_candidate(cheetah, tmp_path, backwards_source):
    """Until the judge has merged its numbers there is no metrics.json, only the training job's
    training.json; the next train_candidate (a resume) judges the saved policy, not retraining it."""
    s = spec(cheetah, backwards_source)
    res = run_job("train", {**asdict(s), "out_dir": str(tmp_path)}, tmp_path, Limits())
    assert res.ok, res.error
    (tmp_path / "metrics.json").rename(tmp_path / "training.json")  # where a stop during the judge leaves it
    policy_mtime = (tmp_path / "policy.zip").stat().st_mtime_ns
    job = train_candidate(s, tmp_path)
    assert job.ok, job.error
    assert (tmp_path / "policy.zip").stat().st_mtime_ns == policy_mtime  # not trained again
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["judge"]["process"].startswith("a separate sandboxed job") and m["fitness"] == m["final"]["fitness_mean"]


def test_the_judges_normalization_is_vecnormalize(tmp_path):
    """The judge reads the observation statistics from plain arrays (no pickle) and normalizes
    exactly as SB3's VecNormalize does."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from autoreward.train.judge import save_normalization

    venv = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]), norm_obs=True)
    venv.reset()
    for _ in range(50):
        venv.step(np.array([[0.5]], dtype=np.float32))
    save_normalization(venv, tmp_path / "n.npz")
    obs = np.array([[0.3, -0.2, 4.0]], dtype=np.float32)
    assert np.array_equal(normalizer(tmp_path / "n.npz", (3,))(obs), venv.normalize_obs(obs))
    with np.load(tmp_path / "n.npz", allow_pickle=False) as z:
        assert set(z.files) == {"mean", "var", "clip_obs", "epsilon"}


def test_read_only_modules_cross_into_subprocess_envs_as_read_only_copies():
    """SubprocVecEnv pickles the env factories, a reward or fitness among them: the copies go
    by name and arrive as the receiving process's own read-only copies, never the real numpy."""
    import cloudpickle

    fn = unchecked("import numpy as N\nfrom numpy import linalg\n\ndef compute_reward(prev, action, state, memory):\n"
                   "    return float(N.mean(action) + linalg.norm(action)), {}\n")()
    again = cloudpickle.loads(cloudpickle.dumps(fn))
    assert again(None, np.ones(4), None, {})[0] == pytest.approx(3.0)
    assert again.__globals__["N"] is restricted_globals()["np"] and again.__globals__["linalg"] is restricted_globals()["np"].linalg
    with pytest.raises(AttributeError, match="read-only"):
        again.__globals__["N"].mean = None
