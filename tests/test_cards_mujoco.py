"""The gymnasium MuJoCo env cards: they load, render, extract a sane state and score episodes.

Parametrized over every card in the built-in ``envs/`` whose env is a gymnasium MuJoCo env (the
ten v5 envs at least). Fast: short rollouts, plus one full-length random episode per card.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")
pytest.importorskip("mujoco")

from autoreward.cards import (  # noqa: E402
    StateExtractor,
    builtin_cards_dir,
    load_card,
    load_card_file,
    render_card,
)
from autoreward.episode import behaviour_policies, fitness_function, rollout  # noqa: E402

EXPECTED = [
    "HalfCheetah-v5",
    "Hopper-v5",
    "Walker2d-v5",
    "Ant-v5",
    "Humanoid-v5",
    "Swimmer-v5",
    "Reacher-v5",
    "Pusher-v5",
    "InvertedPendulum-v5",
    "InvertedDoublePendulum-v5",
]
HEALTHY_FLAGS = ("is_healthy", "is_balanced")
ZOO_CARD_KEYS = {"n_timesteps", "normalize", "policy", "n_envs"}


def _is_mujoco(gym_id: str) -> bool:
    spec = gym.registry.get(gym_id)
    return spec is not None and str(spec.entry_point).startswith("gymnasium.envs.mujoco")


def _mujoco_card_ids() -> list[str]:
    found = set()
    for path in sorted(Path(builtin_cards_dir()).glob("*.yaml")):
        try:
            card = load_card_file(path)
        except Exception:  # another env's card; the expected MuJoCo ones are listed anyway
            continue
        if _is_mujoco(card.gym_id):
            found.add(card.id)
    return sorted(found | set(EXPECTED))


CARD_IDS = _mujoco_card_ids()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    # Only the built-in cards; and MuJoCo's MUJOCO_LOG.TXT (model compiler warnings) lands in tmp.
    monkeypatch.delenv("AUTOREWARD_CARDS", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def card(request):
    return load_card(request.param)


def _make(card):
    env = card.make_env()
    return env, StateExtractor(card, env)


def _uniform_random(env, seed):
    # behaviour_policies: policy 0 of every set is uniform random play
    return behaviour_policies(env.action_space, 1, seed)[0]


def test_every_mujoco_env_has_a_card():
    for env_id in EXPECTED:
        assert env_id in CARD_IDS
        assert Path(load_card(env_id).path).name == f"{env_id}.yaml"


@pytest.mark.parametrize("card", CARD_IDS, indirect=True)
def test_card_loads_with_complete_declarations(card):
    spec = gym.registry[card.gym_id]
    assert card.training.max_episode_steps == spec.max_episode_steps
    names = card.field_names
    assert len(names) == len(set(names)), "duplicate field names"
    dt = next(f for f in card.state if f.name == "dt")
    assert dt.expr == "env.dt" and dt.unit == "s"
    for f in card.state:
        assert f.doc.strip(), f.name
        assert f.dtype in ("float", "bool", "int"), f.name
    for name in HEALTHY_FLAGS:
        if name in names:
            assert next(f for f in card.state if f.name == name).dtype == "bool"
    # termination causes only read declared fields
    for cause, expr in card.termination_causes.items():
        compile(expr, f"<cause {cause}>", "eval")
        assert "state." in expr, cause

    # presets: the env's own objective plus at least one novel behaviour
    default = card.tasks["default"]
    assert default.env_objective and default.fitness.strip() == "ep.env_return"
    assert len(card.tasks) >= 2
    for name, task in card.tasks.items():
        assert task.description.strip() and task.fitness_doc.strip(), name
        assert math.isfinite(task.success), name
        fitness_function(task.fitness)  # passes the reward-program policy

    # training block: zoo values as plain data, card-level keys kept out of hyperparams
    tr = card.training
    assert tr.source.strip()
    assert tr.algo in tr.hyperparams
    assert set(tr.hyperparams) <= {"ppo", "sac"}
    for algo, hp in tr.hyperparams.items():
        assert not (ZOO_CARD_KEYS & set(hp)), algo
        for key, value in hp.items():  # YAML pitfall: 1e-4 without a dot is read as a string
            if isinstance(value, str):
                with pytest.raises(ValueError):
                    float(value)
        pk = hp.get("policy_kwargs")
        if pk is not None:
            assert isinstance(pk, dict)
            assert pk.get("activation_fn", "tanh") in ("relu", "tanh")
            assert isinstance(pk.get("net_arch", []), (dict, list))


@pytest.mark.parametrize("card", CARD_IDS, indirect=True)
def test_render_card_mentions_every_field(card):
    text = render_card(card)
    assert card.id in text
    lines = text.splitlines()
    for f in card.state:
        line = next((ln for ln in lines if ln.startswith(f"- state.{f.name} (")), None)
        assert line is not None, f"{f.name} missing from the rendered card"
        if f.unit:
            assert f.unit in line, f.name
        if f.shape:
            shape = ", ".join(str(n) for n in f.shape) + ("," if len(f.shape) == 1 else "")
            assert f"array of shape ({shape})" in line, f.name
    for cause in card.termination_causes:
        assert cause in text


def _check_state(card, state):
    for f in card.state:
        v = getattr(state, f.name)
        if f.dtype == "bool":
            assert isinstance(v, bool), f.name
        elif not f.shape:
            assert isinstance(v, float), f.name
            assert math.isfinite(v), f.name
        else:
            assert isinstance(v, np.ndarray), f.name
            assert v.shape == tuple(f.shape), f.name
            assert v.dtype == np.float64, f.name
            assert not v.flags.writeable, f.name
            assert np.all(np.isfinite(v)), f.name
            with pytest.raises(ValueError):
                v[...] = 0.0
    with pytest.raises(AttributeError):
        state.dt = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("card", CARD_IDS, indirect=True)
def test_state_extraction_after_reset_and_steps(card):
    env, ex = _make(card)
    try:
        obs, info = env.reset(seed=0)
        s0 = ex(obs, info, 0.0)
        _check_state(card, s0)
        assert s0.dt == pytest.approx(env.unwrapped.dt)
        for name in HEALTHY_FLAGS:
            if name in card.field_names:
                assert getattr(s0, name) is True
        # no termination cause holds in the start state
        for cause, expr in card.termination_causes.items():
            assert not eval(expr, {"__builtins__": {}}, {"state": s0, "np": np, "math": math}), cause  # noqa: S307
        env.action_space.seed(0)
        for _ in range(5):
            obs, r, terminated, truncated, info = env.step(env.action_space.sample())
            s = ex(obs, info, float(r))
            _check_state(card, s)
            if terminated or truncated:
                break
    finally:
        env.close()


@pytest.mark.parametrize("card", CARD_IDS, indirect=True)
def test_preset_fitness_is_a_finite_float_on_short_rollouts(card):
    env, ex = _make(card)
    try:
        fits = {name: fitness_function(t.fitness) for name, t in card.tasks.items()}
        for i, policy in enumerate(behaviour_policies(env.action_space, 3, seed=1)):
            for max_steps in (1, 25):
                ep = rollout(card, env, ex, policy, seed=10 + i, max_steps=max_steps)
                assert 1 <= ep.length <= max_steps
                for name, fit in fits.items():
                    value = fit(ep)
                    assert isinstance(value, float) and math.isfinite(value), (name, value)
    finally:
        env.close()


@pytest.mark.parametrize("card", CARD_IDS, indirect=True)
def test_random_policy_scores_below_success(card):
    env, ex = _make(card)
    try:
        fits = {name: fitness_function(t.fitness) for name, t in card.tasks.items()}
        flag = next((n for n in HEALTHY_FLAGS if n in card.field_names), None)
        for seed in (0, 1):
            ep = rollout(card, env, ex, _uniform_random(env, seed), seed=seed, max_steps=card.training.max_episode_steps)
            for name, fit in fits.items():
                value = fit(ep)
                assert math.isfinite(value)
                assert value < card.tasks[name].success, f"random play solves {name!r}: {value}"
            if ep.terminated:
                # the card names why, and its health flag agrees with the env's own termination
                assert ep.cause in card.termination_causes, ep.cause
                if flag is not None:
                    flags = ep.series(flag)
                    assert not flags[-1] and flags[:-1].all()
            else:
                assert ep.length == card.training.max_episode_steps
                if flag is not None:
                    assert ep.series(flag).all()
    finally:
        env.close()


def test_settotalmass_deprecation_is_silenced_and_other_warnings_are_not(capsys):
    """gymnasium's half_cheetah.xml makes MuJoCo print a deprecation in every run; exactly
    that line is dropped, any other MuJoCo warning still reaches stderr."""
    import subprocess
    import sys

    code = "from autoreward.cards import load_card\nload_card('HalfCheetah-v5').make_env().reset(seed=0)\n"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "settotalmass" not in r.stdout + r.stderr
    from autoreward.cards.mujoco_helpers import mujoco_warning

    mujoco_warning("compiler attribute 'settotalmass' is deprecated and will be removed")
    mujoco_warning("Nan, Inf or huge value in QACC at DOF 0. The simulation is unstable.")
    err = capsys.readouterr().err
    assert "settotalmass" not in err and "WARNING: Nan, Inf or huge value in QACC" in err
