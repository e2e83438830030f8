"""Crafter-v1: the gymnasium env, its card (state, presets, termination causes), the analyzer
numbers and the hand-written dense rewards of the benchmark presets."""

from __future__ import annotations

import math
import warnings
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

import crafter
from crafter import objects

from autoreward.crafter import analysis as ca
from autoreward.crafter import env as ce
from autoreward.cards import StateExtractor, load_card, render_card, termination_cause
from autoreward.episode import Episode, fitness_function, load_recording, rollout, save_recording
from autoreward.program import check_source, compile_program

EXAMPLES = Path(__file__).parents[1] / "examples" / "crafter"
A = {name: i for i, name in enumerate(ce.ACTIONS)}


@pytest.fixture(scope="module")
def card():
    return load_card("Crafter-v1")


def same_state(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def make(card, **kw):
    env = card.make_env(**kw)
    return env, StateExtractor(card, env)


def scripted(actions):
    return lambda t, obs: actions[t] if t < len(actions) else A["noop"]


def clear(env, pos, material="grass"):
    """Make a cell hold ``material`` and no object."""
    world = env.unwrapped.world
    _, obj = world[pos]
    if obj is not None:
        world.remove(obj)
    env.unwrapped.set_material(pos, material)


# ---------------------------------------------------------------------------------------------
# Card and env API


def test_card_renders_and_extracts(card):
    text = render_card(card)
    for word in ("Crafter-v1", "dist_lava", "damage_cause", "inv_wood", "died_lava", "Discrete(17)"):
        assert word in text
    env, extract = make(card)
    obs, info = env.reset(seed=3)
    s = extract(obs, info, 0.0)
    assert s.health == 9 and s.inv_wood == 0 and s.step == 0 and not s.dead
    assert isinstance(s.facing_block, str) and isinstance(s.damage_cause, str)
    assert s.achievements.shape == (22,) and s.achievements.sum() == 0
    assert tuple(s.pos) == (32, 32) and s.death_cause == "none"
    assert 0 <= s.dist_grass <= ce.NOT_VISIBLE and s.n_grass > 0
    assert obs.shape == env.observation_space.shape and obs.dtype == np.float32
    with pytest.raises(AttributeError):
        s.health = 3  # read-only view


@pytest.mark.parametrize("obs_mode", ["compact", "pixels"])
def test_check_env_passes(obs_mode):
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    env = gym.make("Crafter-v1", obs_mode=obs_mode, render_mode="rgb_array")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    frame = env.unwrapped.render()
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8


def test_seeded_worlds_are_reproducible_and_match_crafter(card):
    env1, ex1 = make(card)
    env2, ex2 = make(card)
    o1, i1 = env1.reset(seed=11)
    o2, i2 = env2.reset(seed=11)
    assert np.array_equal(o1, o2) and same_state(ex1(o1, i1), ex2(o2, i2))
    native = crafter.Env(seed=11)
    native.reset()
    assert np.array_equal(native._sem_view(), env1.unwrapped.semantic_map())
    env2.reset(seed=12)
    assert not np.array_equal(env1.unwrapped.semantic_map(), env2.unwrapped.semantic_map())
    env1.reset(seed=11)
    env2.reset(seed=11)
    rng = np.random.default_rng(0)
    for a in rng.integers(0, 17, size=60):
        a1, a2 = env1.step(int(a)), env2.step(int(a))
        assert np.array_equal(a1[0], a2[0]) and a1[1:4] == a2[1:4]
    assert same_state(ex1(a1[0], a1[4]), ex2(a2[0], a2[4]))


def test_compact_and_pixel_modes_give_the_same_world():
    """Past nightfall too, where crafter's renderer draws from the world's generator."""
    rng = np.random.default_rng(1)
    actions = rng.integers(0, 17, size=320)
    maps = {}
    for mode in ("compact", "pixels"):
        env = ce.CrafterEnv(obs_mode=mode)
        env.reset(seed=7)
        seq = []
        for a in actions:
            _, _, term, _, _ = env.step(int(a))
            seq.append(env.semantic_map().copy())
            if term:
                env.reset()
        maps[mode] = np.array(seq)
    assert np.array_equal(maps["compact"], maps["pixels"])


def test_compact_observation_layout():
    env = ce.CrafterEnv()
    obs, _ = env.reset(seed=0)
    n_view = 9 * 7 * ce.N_CLASSES
    onehot = obs[:n_view].reshape(9, 7, ce.N_CLASSES)
    assert np.all(onehot.sum(-1) == 1)
    assert onehot[4, 3, 1 + len(ce.MATERIALS)] == 1  # the player in the centre cell
    inv = obs[n_view : n_view + 16]
    assert inv[ce.ITEMS.index("health")] == 1.0 and inv[ce.ITEMS.index("wood")] == 0.0
    assert obs[n_view + 16 + 3] == 1.0  # facing down at the start


# ---------------------------------------------------------------------------------------------
# State extraction on constructed scenes


def test_lava_next_to_player_then_death(card):
    env, extract = make(card)
    obs, info = env.reset(seed=0)
    x, y = (int(v) for v in env.unwrapped.player.pos)
    clear(env, (x + 1, y), "lava")
    s = extract(obs, info)
    assert s.dist_lava == 1 and s.n_lava >= 1
    obs, r, term, trunc, info = env.step(A["move_right"])
    s = extract(obs, info, r)
    assert term and s.dead and s.health == 0
    assert s.damage_cause == "lava" and s.death_cause == "lava" and s.damage_taken == 9
    assert s.dist_lava == 0
    assert termination_cause(card, s, term, trunc) == "died_lava"


def test_lava_death_in_a_rollout_names_the_cause(card):
    env, extract = make(card)

    def policy(t, obs):
        if t == 0:
            x, y = (int(v) for v in env.unwrapped.player.pos)
            clear(env, (x, y + 1), "lava")
        return A["move_down"]

    ep = rollout(card, env, extract, policy, seed=5, max_steps=20)
    assert ep.terminated and ep.cause == "died_lava" and ep.length == 1
    assert fitness_function(card.task("explore_diamond").fitness)(ep) == 0.0
    numbers = ca.crafter_numbers([ep], **_success_facts(card.task("explore_diamond")))
    assert numbers["death_causes"] == {"lava": 1.0} and numbers["success_rate"] == 0.0


def _success_facts(task):
    """The card's per-task analysis facts, as crafter_numbers takes them."""
    facts = dict(task.analysis)
    return {"success": facts.pop("achievement"), **facts}


def test_zombie_damage_is_attributed(card):
    env, extract = make(card)
    env.reset(seed=0)
    u = env.unwrapped
    x, y = (int(v) for v in u.player.pos)
    clear(env, (x + 1, y))
    u.world.add(objects.Zombie(u.world, (x + 1, y), u.player))
    hit = None
    for _ in range(30):
        obs, r, term, trunc, info = env.step(A["noop"])
        s = extract(obs, info, r)
        if s.damage_taken:
            hit = s
            break
    assert hit is not None and hit.damage_cause == "zombie" and hit.damage_taken == 2
    assert hit.n_zombie >= 1 and hit.dist_zombie >= 1


def test_arrow_damage_is_attributed(card):
    env, extract = make(card)
    env.reset(seed=0)
    u = env.unwrapped
    x, y = (int(v) for v in u.player.pos)
    clear(env, (x - 1, y))
    u.world.add(objects.Arrow(u.world, (x - 1, y), (1, 0)))  # flying right, into the player
    s0 = extract()
    assert s0.dist_arrow == 1 and s0.n_arrow == 1
    obs, r, term, trunc, info = env.step(A["noop"])
    s = extract(obs, info, r)
    assert s.damage_cause == "arrow" and s.damage_taken == 2 and s.health == 7


@pytest.mark.parametrize("need,cause", [("food", "starvation"), ("drink", "thirst"), ("energy", "fatigue")])
def test_needs_damage_is_attributed(card, need, cause):
    env, extract = make(card)
    env.reset(seed=0)
    p = env.unwrapped.player
    p.inventory[need] = 0
    p._recover = -15  # the next degeneration tick takes a health point
    obs, r, term, trunc, info = env.step(A["noop"])
    s = extract(obs, info, r)
    assert s.damage_taken == 1 and s.damage_cause == cause and s.health == 8


def test_facing_block_and_wood_collection(card):
    env, extract = make(card)
    env.reset(seed=0)
    x, y = (int(v) for v in env.unwrapped.player.pos)
    clear(env, (x + 1, y), "tree")
    obs, r, *_ , info = env.step(A["move_right"])  # blocked by the tree: turns to face it
    s = extract(obs, info, r)
    assert s.facing_block == "tree" and tuple(s.facing) == (1, 0) and s.dist_tree == 1
    obs, r, *_ , info = env.step(A["do"])
    s = extract(obs, info, r)
    assert s.inv_wood == 1 and s.new_achievements[ce.ACHIEVEMENTS.index("collect_wood")] == 1
    assert s.achievement_counts[6] == 1 and s.n_achievements == 1 and r == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# Presets' fitness on recorded episodes


def _chain_episode(card):
    """Scripted: a table, a wood pickaxe, wood from a tree, then stone (moves into blocked cells turn)."""
    env, extract = make(card, initial_inventory={"wood": 4})

    def policy(t, obs):
        u = env.unwrapped
        x, y = (int(v) for v in u.player.pos)
        if t == 0:
            clear(env, (x + 1, y), "tree")
            clear(env, (x, y + 1), "grass")
            clear(env, (x - 1, y), "stone")
        # the player starts facing down, at the grass cell where the table goes
        plan = [A["place_table"], A["make_wood_pickaxe"], A["move_right"], A["do"], A["move_left"], A["do"]]
        return plan[t] if t < len(plan) else A["noop"]

    return rollout(card, env, extract, policy, seed=2, max_steps=7)


def test_preset_fitness_on_scripted_and_recorded_episodes(card, tmp_path):
    chain = _chain_episode(card)
    f = {name: fitness_function(t.fitness) for name, t in card.tasks.items()}
    assert f["collect_wood"](chain) == 1.0
    assert f["place_table"](chain) == 1.0
    assert f["collect_stone"](chain) == pytest.approx(1.0)
    assert f["crafter_score"](chain) == 4.0  # collect_wood, place_table, make_wood_pickaxe, collect_stone
    # a random episode, recorded and reloaded, scores the same
    env, extract = make(card)
    rng = np.random.default_rng(0)
    rand = rollout(card, env, extract, lambda t, o: int(rng.integers(0, 17)), seed=4, max_steps=150)
    path = tmp_path / "rec.npz"
    save_recording(path, card, [chain, rand])
    back = load_recording(path, card)
    for name, fn in f.items():
        for a, b in zip([chain, rand], back):
            assert fn(a) == pytest.approx(fn(b)), name
            assert 0.0 <= fn(a) <= (22 if name == "crafter_score" else 1.0)
    assert back[0].last.facing_block == chain.last.facing_block
    numbers = ca.crafter_numbers(back, "collect_stone", fitness=f["collect_stone"])
    assert numbers["success_rate"] == 0.5 and numbers["mean_steps_to_success"] == 6.0


def test_eat_cow_fitness(card):
    env, extract = make(card, initial_inventory={"iron_sword": 1})

    def policy(t, obs):
        u = env.unwrapped
        if t == 0:
            x, y = (int(v) for v in u.player.pos)
            clear(env, (x, y + 1))
            u.world.add(objects.Cow(u.world, (x, y + 1)))
            return A["do"]  # facing down at the start; an iron sword kills in one hit
        return A["noop"]

    ep = rollout(card, env, extract, policy, seed=1, max_steps=3)
    assert fitness_function(card.task("eat_cow").fitness)(ep) == 1.0
    assert ep.states[1].food == 9  # capped


# ---------------------------------------------------------------------------------------------
# Analyzer numbers


S = namedtuple("S", "achievements dead death_cause")


def _ep(unlock_at: dict[int, int], length: int, death: str | None = None) -> Episode:
    states = []
    for t in range(length + 1):
        a = np.zeros(22, np.int64)
        for i, when in unlock_at.items():
            a[i] = int(t >= when)
        last = t == length
        states.append(S(a, bool(death) and last, death if (death and last) else "none"))
    return Episode(states=states, actions=np.zeros(length), env_rewards=np.zeros(length),
                   terminated=bool(death), truncated=not death)


def test_analyzer_numbers_on_synthetic_episodes():
    wood = ce.ACHIEVEMENTS.index("collect_wood")
    eps = [
        _ep({wood: 3}, 10),
        _ep({wood: 5}, 8, death="zombie"),
        _ep({}, 4, death="lava"),
        _ep({}, 20),
    ]
    n = ca.crafter_numbers(eps, "collect_wood")
    assert n["success_rate"] == 0.5 and n["death_rate"] == 0.5
    assert n["death_causes"] == {"zombie": 0.25, "lava": 0.25}
    assert n["mean_steps_to_success"] == 4.0 and n["mean_length"] == 10.5
    assert n["achievement_rates"]["collect_wood"] == 50.0
    assert "death causes" in ca.format_numbers(n)
    custom = ca.crafter_numbers(eps, lambda ep: ep.length > 9)
    assert custom["success_rate"] == 0.5 and custom["mean_steps_to_success"] == 15.0


def test_crafter_score_formula():
    assert ca.crafter_score(np.zeros(22)) == pytest.approx(0.0)
    assert ca.crafter_score(np.full(22, 100.0)) == pytest.approx(100.0)
    rates = np.linspace(0, 90, 22)
    expect = math.exp(sum(math.log(1 + r) for r in rates) / 22) - 1
    assert ca.crafter_score(rates) == pytest.approx(expect)
    m = np.zeros((4, 22), np.int64)
    m[:2, 6] = 1  # collect_wood in half the episodes
    assert ca.crafter_score(m) == pytest.approx(51 ** (1 / 22) - 1)
    assert ca.crafter_score({"collect_wood": 50.0}) == pytest.approx(51 ** (1 / 22) - 1)


# ---------------------------------------------------------------------------------------------
# Dense rewards of the benchmark presets


@pytest.mark.parametrize("name", ["collect_wood_reward.py", "place_table_reward.py"])
def test_dense_rewards_pass_the_policy_and_reward_progress(card, name):
    source = (EXAMPLES / name).read_text()
    assert check_source(source) == []
    fn = compile_program(source)  # trusted fixture: compiled in-process for this test only
    chain = _chain_episode(card)
    total, memory = 0.0, {}  # one memory per episode, as in training
    for t in range(chain.length):
        r, comps = fn(chain.states[t], chain.actions[t], chain.states[t + 1], memory)
        assert math.isfinite(r) and abs(r - sum(comps.values())) < 1e-9
        total += r
    assert total > 0.5  # the scripted episode collects wood and places a table


@pytest.mark.parametrize("name", ["collect_wood_reward.py", "place_table_reward.py"])
def test_dense_rewards_punish_being_stuck_and_pay_for_exploring(card, name):
    """The idle term fires when a policy pushes into a wall; explore pays once per new cell
    while no tree is in view (the two failure modes seen in trained policies)."""
    fn = compile_program((EXAMPLES / name).read_text())
    env, extract = make(card)
    u = None

    def policy(t, obs):
        nonlocal u
        u = env.unwrapped
        x, y = (int(v) for v in u.player.pos)
        if t == 0:  # no tree anywhere near, stone to the left
            for dx in range(-8, 9):
                for dy in range(-8, 9):
                    clear(env, (x + dx, y + dy), "grass")
            clear(env, (x - 1, y), "stone")
        return A["move_left"]  # the first step turns left, the rest push into the stone

    ep = rollout(card, env, extract, policy, seed=3, max_steps=6)
    memory: dict = {}
    comps = [fn(ep.states[t], ep.actions[t], ep.states[t + 1], memory)[1] for t in range(ep.length)]
    assert all(s.dist_tree == 10 for s in ep.states[1:])  # states[0] is from before the clearing
    assert [c["idle"] for c in comps[1:]] == [-0.01] * (ep.length - 1)
    # the start cell counts as new once; pushing into the stone finds nothing new
    assert sum(c["explore"] for c in comps) == pytest.approx(0.05)
    # walking over fresh ground pays once per cell, never twice for the same cell
    memory = {}
    here = ep.states[1]
    back = here._replace(pos=np.array([1, 1]))
    r1 = fn(back, 0, here, memory)[1]["explore"]
    r2 = fn(here, 0, here, memory)[1]["explore"]
    assert (r1, r2) == (0.05, 0.0)


# ---------------------------------------------------------------------------------------------
# Throughput


def test_throughput_is_reported(capsys):
    sps = ce.crafter_throughput("compact", steps=300)
    print(f"Crafter compact: {sps:.0f} steps/s")
    assert sps > 50


@pytest.mark.slow
def test_throughput_benchmark():
    reset = ce.crafter_reset_time(3)
    compact = ce.crafter_throughput("compact", 3000)
    pixels = ce.crafter_throughput("pixels", 1500)
    print(f"reset {reset * 1000:.0f} ms; compact {compact:.0f} steps/s; pixels {pixels:.0f} steps/s")
    assert compact > pixels


@pytest.mark.slow
def test_cli_trains_a_cnn_policy_on_pixels(tmp_path):
    """Pixel observations stay available end to end: --env-kwarg obs_mode=pixels --policy CnnPolicy."""
    import json
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "autoreward.cli", "eval", str(EXAMPLES / "collect_wood_reward.py"), "--env", "Crafter-v1",
         "--task", "collect_wood", "--env-kwarg", "obs_mode=pixels", "--policy", "CnnPolicy", "--device", "cpu",
         "--steps", "128", "--set", "n_steps=64", "--set", "batch_size=32", "--set", "n_epochs=1",
         "--max-episode-steps", "30", "--eval-episodes", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    (metrics,) = tmp_path.glob("*/candidate/metrics.json")
    m = json.loads(metrics.read_text())
    assert m["ok"] and m["policy"] == "CnnPolicy" and m["make_kwargs"] == {"obs_mode": "pixels"}
    assert m["policy_class"] == "ActorCriticCnnPolicy"  # SB3 built the CNN, not an MLP over pixels
    assert m["final"]["length_mean"] > 0
