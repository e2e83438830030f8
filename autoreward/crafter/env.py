"""Crafter (Hafner 2021, a 2D Minecraft-like open world) as a first-class gymnasium env.

Importing this module registers ``Crafter-v1`` with gymnasium; the env card
``envs/Crafter-v1.yaml`` lists it under ``imports`` so ``card.make_env()`` works.

What this adds over ``crafter.Env`` (old gym API, pixels only):

* the gymnasium API (``reset(seed=...)`` -> ``(obs, info)``, 5-tuple ``step``), and seeding
  that gives the very world ``crafter.Env(seed=s)`` gives for its first episode;
* a compact, render-free policy observation (``obs_mode="compact"``, the default): a one-hot
  semantic view of the 9x7 cells the pixel image shows, the inventory, the facing direction,
  sleeping and daylight, about 1.3k floats for an MLP policy. ``obs_mode="pixels"`` gives
  crafter's own 64x64 RGB image (CnnPolicy). Both modes produce the same world dynamics for a
  seed and action sequence (the compact mode draws the random numbers crafter's night-time
  rendering would have drawn);
* the privileged state a reward may read (:attr:`CrafterEnv.state_info`, computed at most once
  per step and only when read), including the damage taken in the step with its exact cause,
  attributed by watching the player's health around every object's update.

World generation uses ``opensimplex``, which is fast only when ``numba`` is installed (a reset
costs about 50 ms instead of 0.74 s); numba is a dependency of autoreward for that reason.

``python -m autoreward.crafter.env`` prints the throughput of both observation modes.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

import crafter
from crafter import constants, objects, worldgen

ENV_ID = "Crafter-v1"
MAX_EPISODE_STEPS = 10_000  # crafter's own episode length

ACTIONS: list[str] = list(constants.actions)
ACHIEVEMENTS: list[str] = list(constants.achievements)
ITEMS: list[str] = list(constants.items)  # health, food, drink, energy, then collectables/tools
MATERIALS: list[str] = list(constants.materials)  # water, grass, stone, path, sand, tree, ...
OBJECT_CLASSES: list[type] = [
    objects.Player, objects.Cow, objects.Zombie, objects.Skeleton, objects.Arrow,
    objects.Plant, objects.Fence,
]
OBJECT_NAMES: list[str] = [c.__name__.lower() for c in OBJECT_CLASSES]
# semantic classes of the compact view: 0 = outside the world, 1..12 materials, then objects
N_CLASSES = 1 + len(MATERIALS) + len(OBJECT_CLASSES)
_OBJ_CLASS = {c: 1 + len(MATERIALS) + i for i, c in enumerate(OBJECT_CLASSES)}

#: materials and creatures the state reports a count and a nearest distance for
STATE_MATERIALS = ("tree", "water", "stone", "coal", "iron", "diamond", "lava", "table",
                   "furnace", "sand", "grass")
STATE_CREATURES = ("cow", "zombie", "skeleton", "arrow")
#: distance reported when none is in view (the farthest visible cell is 4 + 3 = 7 steps away)
NOT_VISIBLE = 10

_VIEW = (9, 7)  # cells the agent sees: crafter's 9x9 view minus the 2 inventory rows
_OFF = (_VIEW[0] // 2, _VIEW[1] // 2)
_DIST = (np.abs(np.arange(_VIEW[0]) - _OFF[0])[:, None] + np.abs(np.arange(_VIEW[1]) - _OFF[1])[None, :])
_ORDER = np.argsort(_DIST.ravel(), kind="stable")  # cells nearest first
_DIST_SORTED = _DIST.ravel()[_ORDER]
_MAT_ID = {m: i + 1 for i, m in enumerate(MATERIALS)}  # crafter's world ids (0 = None)
_MAT_NAME = ["none"] + MATERIALS
_STATE_MAT_IDS = np.array([_MAT_ID[m] for m in STATE_MATERIALS])
_STATE_OBJ_IDS = np.array([OBJECT_NAMES.index(c) + 1 for c in STATE_CREATURES])
_ITEM_MAX = np.array([constants.items[k]["max"] for k in ITEMS], dtype=np.float32)
_FACINGS = {(-1, 0): 0, (1, 0): 1, (0, -1): 2, (0, 1): 3}  # left, right, up, down


class CrafterEnv(gym.Env):
    """Crafter with the gymnasium API, a compact observation and a privileged reward state.

    Args:
        obs_mode: ``"compact"`` (one-hot local semantic view + inventory + facing, float32,
            never renders) or ``"pixels"`` (crafter's RGB image, uint8, ``size`` x ``size``).
        size: pixel observation size (crafter's default 64).
        reward: give crafter's own reward (+1 per first unlock of an achievement, +-0.1 per
            health point gained or lost); 0 when False.
        length: crafter's own step limit (truncation); None leaves it to the TimeLimit
            wrapper that the registration adds (10 000 steps, crafter's default).
        initial_inventory: items the player starts with, e.g. ``{"iron_pickaxe": 1}`` for a
            diamond task that starts with tools, as Auto MC-Reward's diamond task does.
        render_mode: ``"rgb_array"`` for videos; rendering never changes the world.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        obs_mode: str = "compact",
        size: int = 64,
        reward: bool = True,
        length: int | None = None,
        initial_inventory: dict[str, int] | None = None,
        render_mode: str | None = None,
        render_size: int = 256,
    ) -> None:
        if obs_mode not in ("compact", "pixels"):
            raise ValueError(f"obs_mode must be 'compact' or 'pixels', not {obs_mode!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', not {render_mode!r}")
        for k in initial_inventory or {}:
            if k not in constants.items:
                raise ValueError(f"unknown inventory item {k!r}; items: {', '.join(ITEMS)}")
        self.obs_mode = obs_mode
        self.render_mode = render_mode
        self.render_size = int(render_size)
        self.length = length
        self.initial_inventory = dict(initial_inventory or {})
        self._c = crafter.Env(size=(size, size), reward=reward, length=0, seed=0)
        self._size = int(size)
        unit = np.array(self._c._size) // np.array(self._c._view)
        self._noise_shape = tuple(int(v) for v in self._c._local_view._grid * unit)
        self.action_space = spaces.Discrete(len(ACTIONS))
        if obs_mode == "compact":
            n = _VIEW[0] * _VIEW[1] * N_CLASSES + len(ITEMS) + 4 + 2
            self.observation_space = spaces.Box(0.0, 1.0, (n,), np.float32)
        else:
            self.observation_space = spaces.Box(0, 255, (size, size, 3), np.uint8)
        self._eye = np.eye(N_CLASSES, dtype=np.float32)
        self._seeded = False
        self._version = 0
        self._state_version = -1
        self._state: dict[str, Any] = {}
        self._local: tuple[np.ndarray, np.ndarray] | None = None
        self._local_version = -1
        self._damage: dict[str, int] = {}
        self._killer = "none"
        self._death_cause = "none"
        self._new: list[str] = []

    # ---------------------------------------------------------------------------------------
    # gymnasium API

    @property
    def world(self) -> Any:
        """crafter's ``engine.World`` (materials ``_mat_map``, objects ``_obj_map``)."""
        return self._c._world

    @property
    def player(self) -> Any:
        """crafter's ``objects.Player`` of the current episode."""
        return self._c._player

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        c = self._c
        if seed is not None:
            c._seed, c._episode = int(seed), 0
        elif not self._seeded:
            c._seed, c._episode = int(self.np_random.integers(0, 2**31 - 1)), 0
        self._seeded = True
        # crafter.Env.reset without rendering: the same world seed, so the same world
        center = (c._world.area[0] // 2, c._world.area[1] // 2)
        c._episode += 1
        c._step = 0
        c._world.reset(seed=hash((c._seed, c._episode)) % (2**31 - 1))
        c._update_time()
        c._player = objects.Player(c._world, center)
        c._last_health = c._player.health
        c._world.add(c._player)
        c._unlocked = set()
        worldgen.generate_world(c._world, c._player)
        for k, v in self.initial_inventory.items():
            c._player.inventory[k] = int(v)
        self._damage, self._killer, self._death_cause, self._new = {}, "none", "none", []
        self._version += 1
        return self._obs(), self._info()

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        c, player, world = self._c, self._c._player, self._c._world
        c._step += 1
        c._update_time()
        player.action = ACTIONS[int(action)]
        reach = 2 * max(c._view)
        damage: dict[str, int] = {}
        killer = "none"
        for obj in world.objects:  # crafter.Env.step, watching the player's health
            p, q = obj.pos, player.pos
            if abs(int(p[0]) - int(q[0])) + abs(int(p[1]) - int(q[1])) >= reach:
                continue
            h0 = player.inventory["health"]
            obj.update()
            h1 = player.inventory["health"]
            if h1 < h0:
                cause = self._cause(obj)
                damage[cause] = damage.get(cause, 0) + (h0 - h1)
                if h1 <= 0 and killer == "none":
                    killer = cause
        if c._step % 10 == 0:
            # crafter keeps a chunk's objects in a set ordered by memory address, so which
            # creature despawns differs from run to run; a list in world order makes it seeded
            omap = world._obj_map
            for chunk, objs in world.chunks.items():
                c._balance_chunk(chunk, sorted(objs, key=lambda o: int(omap[o.pos[0], o.pos[1]])))
        obs = self._obs()
        reward = (player.health - c._last_health) / 10
        c._last_health = player.health
        unlocked = [n for n, k in player.achievements.items() if k > 0 and n not in c._unlocked]
        if unlocked:
            c._unlocked |= set(unlocked)
            reward += 1.0
        dead = player.health <= 0
        if dead and killer == "none":
            killer = max(damage, key=damage.get) if damage else "unknown"
        self._damage, self._killer, self._new = damage, killer, unlocked
        if dead and self._death_cause == "none":
            self._death_cause = killer
        self._version += 1
        truncated = bool(self.length and c._step >= self.length)
        if not c._reward:
            reward = 0.0
        return obs, float(reward), bool(dead), truncated, self._info(dead)

    def render(self) -> np.ndarray | None:
        """An RGB frame (``render_size`` square); the world's random state is left untouched."""
        if self.render_mode != "rgb_array":
            return None
        rng = self._c._world.random
        saved = rng.get_state()
        try:
            frame = self._c.render((self.render_size, self.render_size))
        finally:
            rng.set_state(saved)
        return frame

    def close(self) -> None:
        pass

    # ---------------------------------------------------------------------------------------
    # Observation

    def _obs(self) -> np.ndarray:
        if self.obs_mode == "pixels":
            return self._c.render()
        if self._c._world.daylight < 0.5:
            # crafter's renderer draws night noise from the world's generator; draw the same
            # numbers so both observation modes give the same world for a seed and actions
            self._c._world.random.uniform(32, 127, self._noise_shape)
        return self.compact_observation()

    def compact_observation(self) -> np.ndarray:
        """One-hot 9x7 semantic view (objects over materials), inventory/max, facing, sleep, daylight."""
        mat, obj = self.local_view()
        sem = np.where(obj > 0, obj + len(MATERIALS), mat)
        player = self._c._player
        inv = np.fromiter((player.inventory[k] for k in ITEMS), np.float32, len(ITEMS)) / _ITEM_MAX
        tail = np.zeros(6, np.float32)
        tail[_FACINGS[tuple(player.facing)]] = 1.0
        tail[4] = float(player.sleeping)
        tail[5] = float(self._c._world.daylight)
        return np.concatenate([self._eye[sem].ravel(), inv, tail])

    def local_view(self) -> tuple[np.ndarray, np.ndarray]:
        """(materials, objects) of the 9x7 cells the agent sees, indexed [dx + 4, dy + 3].

        Materials are crafter ids (0 outside the world, ``MATERIALS[i - 1]`` otherwise); objects
        are 0 for none or ``OBJECT_NAMES[i - 1]``. Cached until the next step or reset.
        """
        if self._local_version == self._version and self._local is not None:
            return self._local
        world = self._c._world
        x, y = (int(v) for v in self._c._player.pos)
        w, h = world.area
        x0, y0 = x - _OFF[0], y - _OFF[1]
        xa, xb, ya, yb = max(x0, 0), min(x0 + _VIEW[0], w), max(y0, 0), min(y0 + _VIEW[1], h)
        mat = np.zeros(_VIEW, np.int64)
        obj = np.zeros(_VIEW, np.int64)
        mat[xa - x0 : xb - x0, ya - y0 : yb - y0] = world._mat_map[xa:xb, ya:yb]
        ids = world._obj_map[xa:xb, ya:yb]
        nz = np.nonzero(ids)
        if nz[0].size:
            objs = world._objects
            cls = [_OBJ_CLASS.get(type(objs[i]), 0) - len(MATERIALS) for i in ids[nz].tolist()]
            obj[nz[0] + (xa - x0), nz[1] + (ya - y0)] = np.maximum(cls, 0)
        self._local, self._local_version = (mat, obj), self._version
        return self._local

    # ---------------------------------------------------------------------------------------
    # Privileged state for rewards (read by the env card)

    @property
    def state_info(self) -> dict[str, Any]:
        """Everything the card's state fields read, computed once per step on first access."""
        if self._state_version != self._version:
            self._state = self._compute_state()
            self._state_version = self._version
        return self._state

    def nearest(self, name: str) -> int:
        """Steps (Manhattan) to the nearest visible material or creature; NOT_VISIBLE if none."""
        return int(self.state_info["dist_" + name])

    def count(self, name: str) -> int:
        """How many cells of a material (or creatures) are in the 9x7 view."""
        return int(self.state_info["n_" + name])

    def _compute_state(self) -> dict[str, Any]:
        c, player, world = self._c, self._c._player, self._c._world
        mat, obj = self.local_view()
        s: dict[str, Any] = {}
        for sem, ids, names in ((mat, _STATE_MAT_IDS, STATE_MATERIALS), (obj, _STATE_OBJ_IDS, STATE_CREATURES)):
            flat = sem.ravel()
            counts = np.bincount(flat, minlength=N_CLASSES)
            present, first = np.unique(flat[_ORDER], return_index=True)
            nearest = np.full(N_CLASSES, NOT_VISIBLE, np.int64)
            nearest[present] = _DIST_SORTED[first]
            for name, i in zip(names, ids.tolist()):
                s["n_" + name] = int(counts[i])
                s["dist_" + name] = int(nearest[i])
        inv = player.inventory
        for k in ITEMS:
            s["inv_" + k] = int(inv[k])
        ach = player.achievements
        counts = np.array([ach[a] for a in ACHIEVEMENTS], np.int64)
        s["achievement_counts"] = counts
        s["achievements"] = (counts > 0).astype(np.int64)
        s["new_achievements"] = np.array([a in self._new for a in ACHIEVEMENTS], np.int64)
        s["n_achievements"] = int((counts > 0).sum())
        fx, fy = (int(v) for v in player.facing)
        s["facing"] = np.array((fx, fy), np.int64)
        px, py = (int(v) for v in player.pos)
        material, thing = world[(px + fx, py + fy)]
        s["facing_block"] = material or "none"
        s["facing_object"] = type(thing).__name__.lower() if thing is not None else "none"
        s["pos"] = np.array((px, py), np.int64)
        s["damage_taken"] = int(sum(self._damage.values()))
        s["damage_cause"] = self._killer if self._killer != "none" else (
            max(self._damage, key=self._damage.get) if self._damage else "none")
        s["dead"] = bool(player.health <= 0)
        s["death_cause"] = self._death_cause
        s["sleeping"] = bool(player.sleeping)
        s["daylight"] = float(world.daylight)
        s["step"] = int(c._step)
        return s

    def _cause(self, obj: Any) -> str:
        """What an object's update that lowered the player's health did to it."""
        if isinstance(obj, objects.Zombie):
            return "zombie"
        if isinstance(obj, objects.Arrow):
            return "arrow"
        if isinstance(obj, objects.Player):
            if self._c._world[obj.pos][0] == "lava":
                return "lava"
            inv = obj.inventory  # crafter's _degen_or_regen_health: a need at zero
            if inv["food"] <= 0:
                return "starvation"
            if inv["drink"] <= 0:
                return "thirst"
            if inv["energy"] <= 0:
                return "fatigue"
        return "unknown"

    def _info(self, dead: bool = False) -> dict[str, Any]:
        player = self._c._player
        return {
            "inventory": dict(player.inventory),
            "achievements": dict(player.achievements),
            "discount": 1.0 - float(dead),
            "player_pos": np.array(player.pos, copy=True),  # crafter's is a live array
        }

    # ---------------------------------------------------------------------------------------
    # Test and scenario helpers (trusted code only)

    def set_material(self, pos: tuple[int, int], material: str) -> None:
        """Overwrite one cell (tests build scenes such as lava next to the player)."""
        self._c._world[tuple(pos)] = material
        self._version += 1

    def semantic_map(self) -> np.ndarray:
        """crafter's full-world semantic map (materials, objects on top) as ``info['semantic']`` was."""
        return self._c._sem_view()


def register() -> None:
    """Register ``Crafter-v1`` with gymnasium (idempotent)."""
    if ENV_ID not in gym.registry:
        gym.register(
            id=ENV_ID,
            entry_point="autoreward.crafter.env:CrafterEnv",
            max_episode_steps=MAX_EPISODE_STEPS,
        )


register()


# -------------------------------------------------------------------------------------------
# Throughput (a small benchmark reused by reports)


def crafter_throughput(obs_mode: str = "compact", steps: int = 5000, seed: int = 0, with_state: bool = False) -> float:
    """Env steps per second under uniformly random actions, resets included.

    ``with_state`` also reads the full reward state every step, as training with a reward
    program does.
    """
    env = CrafterEnv(obs_mode=obs_mode)
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, len(ACTIONS), size=steps)
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(int(a))
        if with_state:
            env.state_info  # noqa: B018 - the access computes it
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t0)


def crafter_reset_time(n: int = 5, seed: int = 0) -> float:
    """Mean seconds per reset (world generation), after one warm-up reset (numba compile)."""
    env = CrafterEnv(obs_mode="compact")
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for i in range(n):
        env.reset(seed=seed + 1 + i)
    return (time.perf_counter() - t0) / n


def native_throughput(steps: int = 2000, seed: int = 0) -> float:
    """Steps per second of ``crafter.Env`` itself (renders every step), resets included."""
    env = crafter.Env(seed=seed)
    rng = np.random.default_rng(seed)
    env.reset()
    t0 = time.perf_counter()
    for a in rng.integers(0, len(ACTIONS), size=steps):
        _, _, done, _ = env.step(int(a))
        if done:
            env.reset()
    return steps / (time.perf_counter() - t0)


def _main() -> None:  # pragma: no cover - a benchmark script
    import argparse

    ap = argparse.ArgumentParser(description="Crafter env throughput")
    ap.add_argument("--steps", type=int, default=5000)
    args = ap.parse_args()
    print(f"reset (world generation): {crafter_reset_time() * 1000:.1f} ms")
    for mode in ("compact", "pixels"):
        print(f"{mode:8s}: {crafter_throughput(mode, args.steps):7.0f} steps/s")
    print(f"compact + reward state: {crafter_throughput('compact', args.steps, with_state=True):7.0f} steps/s")
    print(f"crafter.Env (native): {native_throughput(min(args.steps, 2000)):7.0f} steps/s")


if __name__ == "__main__":  # pragma: no cover
    _main()
