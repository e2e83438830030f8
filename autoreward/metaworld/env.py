"""Meta-World v3 single-task envs (PyPI ``metaworld``) as one gymnasium env with a reward state.

Importing this module registers ``autoreward/MetaWorld-v3``; each Meta-World card
(``envs/MetaWorld-*.yaml``, sharing ``envs/_metaworld-v3.yaml`` as template) makes it with
``task=<metaworld env name>``.

Why a wrapper env rather than ``gym.make("Meta-World/goal_observable", ...)``:

* **Random goals, seeded.** The goal-observable envs freeze the object and goal positions
  after construction, and their ``reset(seed=...)`` ignores the seed. The benchmark draws new
  positions every episode (MT1 picks among 50 pre-drawn ones); here every reset draws fresh
  positions from the env's own generator, and ``reset(seed=s)`` reseeds that generator, so an
  evaluation episode seeded ``10000 + i`` always gets the same goal.
* **One place for the facts a reward needs** (:attr:`MetaWorldEnv.facts`): gripper position and
  velocity, opening, which finger pads touch the task's object, object pose and velocity,
  goal, grasp and lift. Meta-World keeps them in private methods whose meaning differs little
  between tasks; the card names and documents them.
* ``unwrapped`` is this object, so card expressions read ``env.facts`` and MuJoCo helpers
  (``body_pos``...) still find ``model`` and ``data``.

``autoreward bench --suite metaworld`` measures its speed with :func:`metaworld_throughput`.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np

ENV_ID = "autoreward/MetaWorld-v3"
MAX_EPISODE_STEPS = 500  # Meta-World's max_path_length: its step() refuses to go further
LIFT_HEIGHT = 0.02  # m above the object's start height that counts as lifted


def _metaworld_class(task: str) -> type:
    """The goal-observable class of a Meta-World v3 task, or a one-line error listing them."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE as envs

    key = f"{task}-goal-observable"
    if key not in envs:
        names = ", ".join(sorted(k.removesuffix("-goal-observable") for k in envs))
        raise gym.error.Error(f"unknown Meta-World task {task!r}; known: {names}")
    return envs[key]


def _subtree_geoms(model: Any, body: str) -> set[int]:
    """Ids of the geoms of ``body`` and of every body below it."""
    root = model.body(body).id
    inside = {root}
    for b in range(root + 1, model.nbody):  # MuJoCo numbers a parent before its children
        if int(model.body_parentid[b]) in inside:
            inside.add(b)
    return {g for g in range(model.ngeom) if int(model.geom_bodyid[g]) in inside}


class MetaWorldEnv(gym.Env):
    """One Meta-World v3 task with the goal in the observation and fresh positions each reset."""

    metadata = {"render_modes": ["rgb_array", "depth_array"], "render_fps": 80}

    def __init__(
        self, task: str = "reach-v3", object_body: str = "", render_mode: str | None = None, camera_name: str = "corner2"
    ) -> None:
        """``object_body`` names the body whose geoms (its subtree's) count as the task's object
        when the finger pads touch them; empty = Meta-World's own main-object geom (several v3
        tasks still look that up with a mujoco-py call that fails, so their cards name a body)."""
        cls = _metaworld_class(task)
        self.task = task
        self._env = cls(seed=0, render_mode=render_mode)
        self._env.camera_name = camera_name
        self._env._freeze_rand_vec = False  # new object/goal positions every reset...
        self._env.seeded_rand_vec = True  # ...drawn from the env's generator, which reset(seed) reseeds
        self._env.max_path_length = MAX_EPISODE_STEPS
        self.render_mode = render_mode
        self.action_space = self._env.action_space
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, self._env.observation_space.shape, np.float64)
        self.model, self.data, self.dt = self._env.model, self._env.data, float(self._env.dt)
        self.facts: dict[str, Any] = {}
        self._pads = (self._env.data.geom("leftpad_geom").id, self._env.data.geom("rightpad_geom").id)
        try:
            self._object_geoms = _subtree_geoms(self._env.model, object_body) if object_body else {int(self._env._get_id_main_object())}
        except (AttributeError, KeyError) as exc:
            raise gym.error.Error(f"Meta-World task {task!r}: cannot find its object ({exc}); pass object_body=<body name>") from exc
        self._last_tcp = np.zeros(3)
        self._last_obj = np.zeros(3)
        self._obj_start = np.zeros(3)
        self._steps = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self._env.seed(int(seed))  # Meta-World's reset ignores its seed argument
        obs, info = self._env.reset()
        # Meta-World moves some objects at reset (the drawer-open cabinet) without recomputing the
        # positions derived from the state, so the first facts read the old place: every rollout
        # of drawer-open then "opened" it by 0.015-0.07 m at the first step, which the preset's
        # partial credit paid. mj_forward only recomputes derived quantities (the state, and so
        # the episode, are unchanged); the observation stays Meta-World's own.
        import mujoco

        mujoco.mj_forward(self._env.model, self._env.data)
        self._steps = 0
        self._obj_start = self._object_pos().copy()
        self._last_tcp, self._last_obj = self._env.tcp_center.copy(), self._obj_start.copy()
        self.facts = self._facts(obs, {})
        return obs, info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._last_tcp, self._last_obj = self.facts["tcp_position"], self.facts["object_position"]
        obs, reward, terminated, truncated, info = self._env.step(np.asarray(action, dtype=np.float32))
        self._steps += 1
        self.facts = self._facts(obs, info)
        return obs, float(reward), bool(terminated), bool(truncated), info

    def render(self) -> Any:
        return self._env.render()

    def close(self) -> None:
        self._env.close()

    # -- the reward's facts ---------------------------------------------------------------------

    def _object_pos(self) -> np.ndarray:
        return np.asarray(self._env._get_pos_objects()[:3], dtype=np.float64)

    def _pad_contacts(self) -> tuple[bool, bool]:
        """Whether the left and right finger pads press on the task's main object (positive
        contact force, Meta-World's own ``touching_object`` test, per pad)."""
        objs = self._object_geoms
        left_id, right_id = self._pads
        left = right = False
        data = self._env.data
        for i in range(data.ncon):
            c = data.contact[i]
            pair = (int(c.geom1), int(c.geom2))
            if not (pair[0] in objs or pair[1] in objs) or data.efc_force[c.efc_address] <= 0:
                continue
            left |= left_id in pair
            right |= right_id in pair
        return left, right

    def _facts(self, obs: np.ndarray, info: dict) -> dict[str, Any]:
        env = self._env
        tcp = env.tcp_center.copy()
        obj = self._object_pos()
        goal = np.asarray(env._target_pos, dtype=np.float64).copy()
        left, right = self._pad_contacts()
        height = float(obj[2] - self._obj_start[2])
        grasped = bool(left and right)
        return {
            "step": self._steps,
            "tcp_position": tcp,
            "tcp_velocity": (tcp - self._last_tcp) / self.dt if self._steps else np.zeros(3),
            "gripper_opening": float(obs[3]),
            "left_pad_contact": left,
            "right_pad_contact": right,
            "object_position": obj,
            "object_quaternion": np.asarray(env._get_quat_objects()[:4], dtype=np.float64),
            "object_velocity": (obj - self._last_obj) / self.dt if self._steps else np.zeros(3),
            "object_start_position": self._obj_start.copy(),
            "object_height": height,
            "goal_position": goal,
            "grasped": grasped,
            "lifted": grasped and height > LIFT_HEIGHT,
            "success": bool(info.get("success", 0.0)),
            "env_task_distance": float(info.get("obj_to_target", np.nan)),
        }


def register() -> None:
    """Register ``autoreward/MetaWorld-v3`` with gymnasium (idempotent)."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point="autoreward.metaworld.env:MetaWorldEnv", max_episode_steps=MAX_EPISODE_STEPS)


register()


def metaworld_throughput(env: gym.Env, steps: int = 2000, seed: int = 0, state: Any = None) -> float:
    """Env steps per second under uniformly random actions, resets included. ``state``, a
    callable ``(obs, info, reward) -> state`` (a card's ``StateExtractor``), is also called
    every step, as training with a generated reward does."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        if state is not None:
            state(obs, info, reward)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - t0)
