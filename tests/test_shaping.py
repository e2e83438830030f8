"""Policy-invariant potential shaping, ``--shaping potential`` (issue 11, part 3).

The LLM writes ``compute_potential(state)``; training pays r_task + gamma * phi(s') - phi(s),
phi(s') = 0 at a terminal state (not at a time-limit truncation). Tests run the wrappers on real
env transitions and recompute the arithmetic by hand, check the critic on a constant phi, and
drive one scripted run end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from autoreward.cards import load_card
from autoreward.critic import check_program
from autoreward.critic.dry_run import dry_run_potential
from autoreward.episode import load_recording
from autoreward.program import PotentialCaller, RewardProgram, check_source, shaping_term
from autoreward.train.algos import discount

BACKWARDS_PHI = '''import numpy as np

def compute_potential(state):
    """Higher the further back (-x) and the more level the torso."""
    back = -2.0 * state.x_position
    level = -abs(state.pitch)
    return back + level, {"back": back, "level": level}
'''
FAST = ["--steps", "2048", "--max-episode-steps", "100", "--eval-episodes", "1", "--set", "n_steps=512", "--set", "n_epochs=1", "--n-envs", "1"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoreward.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def vec_env(card, shaping, max_steps: int, fitness=None):
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    from autoreward.train.wrappers import EpisodeFitnessWrapper, PotentialShapingVecWrapper, StateWrapper

    def make():
        env = StateWrapper(Monitor(card.make_env(max_episode_steps=max_steps)), card)
        if fitness is not None:
            env = EpisodeFitnessWrapper(env, card, fitness, max_steps)
        env.reset(seed=0)
        return env

    venv = PotentialShapingVecWrapper(DummyVecEnv([make]), shaping)
    venv.reset()
    return venv


def test_the_signature_and_the_term():
    assert check_source(BACKWARDS_PHI, "compute_potential") == []
    two = check_source("def compute_potential(prev, state):\n    return 1.0, {}\n", "compute_potential")
    assert two and "must accept 1 argument (state)" in str(two[0])
    assert shaping_term(2.0, 3.0, 0.9, terminal=False) == pytest.approx(0.9 * 3.0 - 2.0)
    assert shaping_term(2.0, 3.0, 0.9, terminal=True) == -2.0  # phi of a terminal state is 0
    assert discount({"ppo": {"gamma": 0.98}}, "ppo", {}) == 0.98 and discount({}, "sac", {}) == 0.99  # SB3's default


def test_the_wrapper_pays_env_reward_plus_gamma_phi_next_minus_phi_on_real_hopper_steps():
    """Hopper falls (terminated) under random torques and is cut at 30 steps (truncated): both
    kinds of episode end are met, and every step's reward is recomputed from its own states."""
    from autoreward.train.wrappers import PREV, SHAPING_TERM, STATE, TASK_TERM, Shaping

    card = load_card("Hopper-v5")
    phi = PotentialCaller.compile("def compute_potential(state):\n    h = 10.0 * state.torso_height\n    return h, {'height': h}\n")
    venv = vec_env(card, Shaping(phi, 0.9, "env"), max_steps=30)
    rng = np.random.default_rng(0)
    ends = {"terminated": 0, "truncated": 0}
    for _ in range(150):
        _, r, done, infos = venv.step(rng.uniform(-1, 1, (1, 3)).astype(np.float32))
        info = infos[0]
        truncated = bool(info.get("TimeLimit.truncated", False))
        terminal = bool(done[0]) and not truncated
        if done[0]:
            ends["truncated" if truncated else "terminated"] += 1
        h, h_next = 10.0 * info[PREV].torso_height, 10.0 * info[STATE].torso_height
        expected = info["env_reward"] + (0.0 if terminal else 0.9 * h_next) - h
        assert r[0] == pytest.approx(expected, rel=1e-5, abs=1e-5)
        comps = info["reward_components"]
        assert comps["height"] == pytest.approx(h_next) and comps[TASK_TERM] == info["env_reward"]
        assert comps[TASK_TERM] + comps[SHAPING_TERM] == pytest.approx(r[0], rel=1e-5, abs=1e-5)
    assert ends["terminated"] >= 1 and ends["truncated"] >= 1, ends


def test_the_task_fitness_is_paid_once_at_the_episode_end():
    """run_backwards is not HalfCheetah's own objective: r_task is the task's fitness at the last
    step (here recomputed by hand from the episode's states), 0 on every step before it."""
    from autoreward.episode import fitness_function
    from autoreward.train.wrappers import PREV, STATE, TASK_TERM, Shaping

    card = load_card("HalfCheetah-v5")
    task = card.task("run_backwards")
    fitness = fitness_function(task.fitness, card.measure_exprs, card.field_names)
    venv = vec_env(card, Shaping(PotentialCaller.compile(BACKWARDS_PHI), 0.98, "fitness"), max_steps=20, fitness=fitness)
    rng = np.random.default_rng(1)
    states, paid = [], []
    for t in range(20):
        _, r, done, infos = venv.step(rng.uniform(-1, 1, (1, 6)).astype(np.float32))
        info = infos[0]
        states += [info[PREV]] if t == 0 else []
        states.append(info[STATE])
        paid.append(info["reward_components"][TASK_TERM])
    assert done[0] and info["TimeLimit.truncated"]
    x, pitch, dt = np.array([s.x_position for s in states]), np.array([s.pitch for s in states]), states[0].dt
    by_hand = (x[0] - x[-1]) / (20 * dt) * float(np.mean(np.abs(pitch) < 1.5))
    assert paid[:-1] == [0.0] * 19 and paid[-1] == pytest.approx(by_hand) and by_hand != 0.0


def test_the_potential_dry_run_sees_the_potential_gained(cheetah, cheetah_recording):
    episodes = load_recording(cheetah_recording, cheetah)
    phi = PotentialCaller.compile(BACKWARDS_PHI)
    result, data = dry_run_potential(phi, episodes, cheetah.field_names)
    assert result.passed and result.details["transitions"] == data.calls == sum(e.length for e in episodes)
    for ep, changes in zip(episodes[:5], data.totals):
        assert sum(changes) == pytest.approx(phi(ep.last)[0] - phi(ep.first)[0])
    assert set(data.components) == {"back", "level"} and len(data.components["back"]) == data.calls


def test_the_critic_rejects_a_constant_potential_and_one_pointing_backwards(cheetah, cheetah_recording, tmp_path):
    def verdict(src: str, name: str):
        return check_program(RewardProgram(src), cheetah, "run_backwards", tmp_path / name, cheetah_recording, shaping="potential")

    constant = verdict("def compute_potential(state):\n    return 1.0, {'c': 1.0}\n", "constant")
    assert not constant.accepted and constant.failure_kind == "constant", constant.message
    good = verdict(BACKWARDS_PHI, "good")
    assert good.accepted, good.message
    assert good.check("probe").details["spearman"] > 0.5
    forwards = verdict(BACKWARDS_PHI.replace("-2.0 * state.x_position", "2.0 * state.x_position"), "forwards")
    assert not forwards.accepted and forwards.failure_kind == "wrong_way" and "back" in forwards.message
    reward = verdict((Path(__file__).parents[1] / "examples" / "halfcheetah_backwards.py").read_text(), "reward")
    assert reward.failure_kind == "static" and "compute_potential" in reward.message


def test_the_prompts_ask_for_a_potential():
    from autoreward.designer import Designer, extract_code
    from autoreward.prompts_io import render

    d = Designer(None, "E", "run backwards", "F", example=render("potential_example.j2"), potential=True)
    msgs, var = d._messages(d.initial_template, failures=[])
    assert "compute_potential" in msgs[0]["content"] and "There is no `prev`" in msgs[0]["content"]
    assert "Write a potential function compute_potential(state)" in msgs[1]["content"] and var["potential"] is True
    repair = d._messages("designer_repair.j2", code="C", error="constant", kind="constant")[0][1]["content"]
    assert "This potential function was rejected" in repair
    renamed = extract_code("```python\ndef phi(state):\n    return 1.0, {}\n```", "compute_potential")
    assert renamed.startswith("def compute_potential(state)")
    review = render("critic_review.j2", task="T", env_text="E", code=BACKWARDS_PHI, probe=None)
    assert "Here is a potential function phi(state)" in review and "reward function an agent will maximise" not in review


def test_check_takes_shaping_and_a_wrong_value_is_one_line(tmp_path):
    (tmp_path / "phi.py").write_text(BACKWARDS_PHI)
    ok = cli("check", "phi.py", "--env", "HalfCheetah-v5", "--task", "run_backwards", "--shaping", "potential", "--out", "runs", cwd=tmp_path)
    assert ok.returncode == 0 and "ACCEPTED" in ok.stdout, ok.stdout + ok.stderr
    bad = cli("check", "phi.py", "--env", "HalfCheetah-v5", "--shaping", "potentials", "--out", "runs", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [bad.stderr.strip()] and "--shaping" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.slow
def test_a_scripted_run_in_potential_mode_end_to_end(tmp_path):
    better = BACKWARDS_PHI.replace("-2.0 * state.x_position", "-3.0 * state.x_position")
    rules = [
        {"match": "Does this code reward the task as written?", "response": "VERDICT: ACCEPT\nREASON: phi grows towards -x."},
        {"match": "Measured numbers:", "response": "The potential points backwards; make it steeper."},
        {"match": "was the best so far", "response": f"Steeper.\n```python\n{better}```"},
        f"Here is my potential.\n```python\n{BACKWARDS_PHI}```",
    ]
    (tmp_path / "script.yaml").write_text(yaml.safe_dump(rules))
    r = cli("run", "make the half-cheetah run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards", "--shaping", "potential",
            "--model", f"scripted:{tmp_path / 'script.yaml'}", "--iterations", "2", "--samples", "1", *FAST, "--out", "runs", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    run = next((tmp_path / "runs").iterdir())
    assert json.loads((run / "run.json").read_text())["config"]["shaping"] == "potential"
    m = json.loads((run / "iter0/cand0/metrics.json").read_text())
    assert m["ok"] and m["shaping"] == "potential" and m["task_signal"] == "fitness" and m["gamma"] == 0.98  # the card's PPO gamma
    assert {"back", "level", "(task reward)", "(shaping)"} <= set(m["components"])
    log = [json.loads(line) for line in (run / "llm_exchanges.jsonl").read_text().splitlines()]
    first = next(e for e in log if e.get("template") == "designer_initial_potential.j2")
    assert "compute_potential" in first["messages"][0]["content"] and "potential-based reward shaping" in first["messages"][0]["content"]
    refine = next(e for e in log if e.get("template") == "designer_refine.j2")
    assert "This potential function was the best so far" in refine["messages"][1]["content"]
    review = next(e for e in log if e.get("template") == "critic_review.j2")
    assert "Here is a potential function phi(state)" in review["messages"][0]["content"]
    assert (run / "iter1/cand0/metrics.json").exists()
    a = json.loads((run / "iter0/cand0/analysis.json").read_text())
    assert not any("reward hacking" in f for f in a["numbers"]["flags"])  # shaping cannot be hacked
    s = cli("show", str(run), cwd=tmp_path)
    assert s.returncode == 0 and "potential term back" in s.stdout and "def compute_potential" in s.stdout
    e = cli("export", str(run), "-o", "phi_export.py", cwd=tmp_path)
    assert e.returncode == 2 and "--shaping potential" in e.stderr and "Traceback" not in e.stderr
