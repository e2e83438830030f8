"""`autoreward export`: a standalone module that computes exactly what autoreward computed, and
trains in plain stable-baselines3 without autoreward importable."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from autoreward.cards import StateExtractor, all_cards, load_card
from autoreward.export import RunFacts, render_module
from autoreward.program import RewardCaller

ROOT = Path(__file__).parents[1]
ORIGIN = {"candidate": "iter0/cand0", "run_dir": "/runs/x", "trained_fitness": "1", "untrained_fitness": "0"}

#: reads scalars, arrays, a MuJoCo helper field (torso_height = body_pos) and per-episode memory
MEMORY_REWARD = textwrap.dedent('''
    import numpy as np
    from typing import Tuple

    SCALE = 0.5

    def compute_reward(prev, action, state, memory) -> Tuple[float, dict]:
        """Backwards, with a bonus for beating the episode's lowest x so far."""
        memory["min_x"] = min(memory.get("min_x", prev.x_position), state.x_position)
        record = SCALE * float(state.x_position <= memory["min_x"])
        back = -(state.x_position - prev.x_position) / state.dt
        height = -abs(state.torso_height - 0.6) - 0.01 * float(np.sum(np.abs(state.joint_velocities)))
        ctrl = -0.1 * float(np.sum(np.square(action)))
        comps = {"back": back, "record": record, "height": height, "ctrl": ctrl}
        return float(sum(comps.values())), comps
''')


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def export_to(tmp_path: Path, card, source: str, name: str = "my_reward") -> Path:
    facts = RunFacts(task="run backwards", fitness="ep.env_return", fitness_doc="", success=1.0, make_kwargs={})
    path = tmp_path / f"{name}.py"
    path.write_text(render_module(card, source, facts, ORIGIN, name))
    return path


def autoreward_rewards(card, source: str, actions: np.ndarray, seed: int) -> list[tuple[float, dict, float]]:
    """What training computes: StateExtractor + RewardCaller, memory fresh per episode."""
    env, caller = card.make_env(), RewardCaller.compile(source)
    ext = StateExtractor(card, env)
    obs, info = env.reset(seed=seed)
    prev, memory, out = ext(obs, info, 0.0), {}, []
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        state = ext(obs, info, float(r))
        total, comps = caller(prev, a, state, memory)
        out.append((total, comps, float(r)))
        prev = state
        if term or trunc:
            obs, info = env.reset()
            prev, memory = ext(obs, info, 0.0), {}
    env.close()
    return out


def exported_rewards(mod, actions: np.ndarray, seed: int, **make) -> list[tuple[float, dict, float]]:
    env = mod.make_env(**make)
    env.reset(seed=seed)
    out = []
    for a in actions:
        _, r, term, trunc, info = env.step(a)
        out.append((r, info["reward_components"], info["env_reward"]))
        if term or trunc:
            env.reset()
    env.close()
    return out


def test_the_exported_wrapper_computes_what_autoreward_computes(tmp_path):
    card = load_card("HalfCheetah-v5")
    mod = load_module(export_to(tmp_path, card, MEMORY_REWARD))
    actions = np.random.default_rng(3).uniform(-1, 1, size=(150, 6)).astype(np.float32)
    ours = autoreward_rewards(card, MEMORY_REWARD, actions, seed=7)
    theirs = exported_rewards(mod, actions, seed=7)
    assert [o[0] for o in ours] == [t[0] for t in theirs]  # bit-identical, memory included
    assert [o[1] for o in ours] == [t[1] for t in theirs] and [o[2] for o in ours] == [t[2] for t in theirs]
    assert len({round(o[1]["record"], 3) for o in ours}) == 2  # the memory term did vary


@pytest.mark.parametrize("env_id", sorted(i for i, c in all_cards().items() if not c.imports))
def test_exported_state_equals_the_cards_state_on_every_mujoco_card(env_id, tmp_path):
    """Every helper a card uses (body_pos, geom_pos, quat_to_euler, up_z, mass_center...) is
    written out in the module and reads the same numbers as autoreward's."""
    card = load_card(env_id)
    mod = load_module(export_to(tmp_path, card, "def compute_reward(prev, action, state, memory):\n    return 0.0, {}\n"))
    env = card.make_env()
    ours, theirs = StateExtractor(card, env), mod.state_reader(env)
    obs, info = env.reset(seed=0)
    for t in range(20):
        a, b = ours(obs, info, 0.0), theirs(obs, info, 0.0)
        for name in card.field_names:
            x, y = getattr(a, name), getattr(b, name)
            assert type(x) is type(y) and np.array_equal(x, y), (name, x, y)
            if isinstance(y, np.ndarray):
                assert not y.flags.writeable
        obs, _, term, trunc, info = env.step(env.action_space.sample())
        if term or trunc:
            obs, info = env.reset()
    env.close()


def test_crafter_export_reads_the_privileged_state(tmp_path):
    """Crafter's state comes from the env (``env.state_info``): the module imports the env's
    registration (``autoreward.crafter.env``, named in its docstring) only in make_env."""
    card = load_card("Crafter-v1")
    source = card.reward_example
    path = export_to(tmp_path, card, source)
    text = path.read_text()
    assert "autoreward.crafter.env" in text.split('"""')[1]  # the docstring says what it needs
    mod = load_module(path)
    actions = np.random.default_rng(0).integers(0, 17, size=120)
    ours = autoreward_rewards(card, source, actions, seed=5)
    theirs = exported_rewards(mod, actions, seed=5)
    assert [o[:2] for o in ours] == [t[:2] for t in theirs]


def test_a_reward_defining_a_name_the_module_needs_is_a_one_line_error(tmp_path):
    from autoreward.errors import ConfigError

    card = load_card("HalfCheetah-v5")
    clash = "def make_env():\n    return 0\n\ndef compute_reward(prev, action, state, memory):\n    return 0.0, {}\n"
    with pytest.raises(ConfigError, match="'make_env', a name the exported module needs"):
        export_to(tmp_path, card, clash)


def test_module_has_no_autoreward_import_and_names_its_origin(tmp_path):
    text = export_to(tmp_path, load_card("HalfCheetah-v5"), MEMORY_REWARD).read_text()
    imported = {a.name for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ImportFrom)}
    assert imported == {"__future__", "collections", "functools", "math", "typing", "gymnasium", "numpy"}
    assert "importlib" not in text  # only an env with registering imports (Crafter) needs them
    doc = text.split('"""')[1]
    assert "run backwards" in doc and "/runs/x" in doc and "ep.env_return" in doc and "iter0/cand0" in doc
    assert "from typing import Tuple" not in text  # stripped, as autoreward strips it before compiling


TRAIN_OUTSIDE = textwrap.dedent('''
    import importlib.util, json, sys
    sys.modules["autoreward"] = None  # any import of autoreward now fails
    from stable_baselines3 import PPO
    spec = importlib.util.spec_from_file_location("my_reward", sys.argv[1])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    env = mod.make_env(max_episode_steps=100)
    model = PPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(256)
    seen = []
    obs, _ = env.reset(seed=1)
    for _ in range(5):
        obs, r, term, trunc, info = env.step(model.predict(obs, deterministic=True)[0])
        seen.append([r, info["reward_components"], info["env_reward"]])
    print(json.dumps({"timesteps": model.num_timesteps, "seen": seen}))
''')


@pytest.mark.slow
def test_export_command_trains_in_plain_sb3_without_autoreward(tmp_path):
    """A real loop run (scripted LLM), exported with the command, trained by PPO in a process where
    autoreward cannot be imported and the repository is not on sys.path."""
    from test_api import scripted_run

    run_dir = scripted_run(tmp_path)
    out = tmp_path / "elsewhere" / "my_reward.py"
    r = subprocess.run([sys.executable, "-m", "autoreward.cli", "export", str(run_dir), "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    best = json.loads((run_dir / "result.json").read_text())["best"]["path"]
    assert f"from candidate {best}" in out.read_text()
    r = subprocess.run([sys.executable, "-I", "-c", TRAIN_OUTSIDE, str(out)], capture_output=True, text=True, timeout=300, cwd=out.parent)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["timesteps"] >= 256 and set(got["seen"][0][1]) == {"backward", "upright", "ctrl"}
    for total, comps, _ in got["seen"]:
        assert total == pytest.approx(sum(comps.values()))


def test_export_command_errors_are_one_line_and_a_checked_reward_exports(tmp_path):
    import autoreward

    run = autoreward.check((ROOT / "examples" / "halfcheetah_backwards.py").read_text(), "HalfCheetah-v5", "run_backwards", out=tmp_path).run_dir

    def export(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "autoreward.cli", "export", str(run), *args], capture_output=True, text=True, timeout=120)

    for args, message in [
        (["-o", "r.py"], "has no trained candidate to export (pass --candidate iterN/candM, or finish the run)"),
        (["-o", "r.py", "--candidate", "iter0/cand0"], "has no candidate 'iter0/cand0' (candidates: candidate)"),
        (["-o", str(tmp_path / "my-reward.py"), "--candidate", "candidate"], "the export must be a .py file with an importable name (e.g. -o my_reward.py)"),
    ]:
        r = export(*args)
        assert r.returncode == 2 and r.stderr.startswith("error: ") and r.stderr.strip().endswith(message), r.stderr
    r = export("-o", str(tmp_path / "checked.py"), "--candidate", "candidate")
    assert r.returncode == 0, r.stderr
    mod = load_module(tmp_path / "checked.py")
    assert "Not trained by autoreward" in mod.__doc__ and "Make the half-cheetah run backwards" in mod.__doc__
    env = mod.make_env()
    env.reset(seed=0)
    _, reward, *_, info = env.step(env.action_space.sample())
    assert reward == pytest.approx(sum(info["reward_components"].values())) and set(info["reward_components"]) == {"backward", "upright", "ctrl"}
