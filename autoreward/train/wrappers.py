"""Wrappers that apply a reward program, each doing one thing (gymnasium's style).

Order in the stack, inside out::

    env -> Monitor (records the env's own return, before anything changes it)
        -> StateWrapper (puts read-only state views in info)
    DummyVecEnv -> RewardProgramVecWrapper (replaces the reward, components in info)
               -> VecNormalize (reward normalization for learning)

The state is extracted per env (so it works in subprocess VecEnvs too); the reward is applied
at the VecEnv level, where component statistics for all envs are gathered in one place.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from autoreward.cards import EnvCard, StateExtractor
from autoreward.program import NOT_IN_COMPONENTS, RewardCaller, RewardError, frozen_array, not_in_components

PREV, STATE = "autoreward_prev", "autoreward_state"


class StateWrapper(gym.Wrapper):
    """Adds ``info[PREV]`` and ``info[STATE]``: read-only views before and after each step."""

    def __init__(self, env: gym.Env, card: EnvCard) -> None:
        super().__init__(env)
        self.extractor = StateExtractor(card, env)
        self._state: Any = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        self._state = self.extractor(obs, info, 0.0)
        info[STATE] = self._state
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        state = self.extractor(obs, info, float(reward))
        info[PREV], info[STATE] = self._state, state
        self._state = state
        return obs, reward, terminated, truncated, info


class RewardProgramVecWrapper(VecEnvWrapper):
    """Replaces each env's reward by ``compute_reward(prev, action, state, memory)``.

    The env's own reward stays visible as ``info['env_reward']`` and the components as
    ``info['reward_components']``. ``memory`` is a fresh dict per env per episode. ``reward`` is
    the one guarded, validating caller (``program.RewardCaller``) that evaluation and the
    critic use too. A total that is not the sum of its components trains as it is; from the first
    step where they differ, the difference is a component of its own, ``(not in components)``
    (0.0 on steps where they agree), so the statistics show what the named terms do not explain.
    """

    def __init__(self, venv: VecEnv, reward: RewardCaller) -> None:
        super().__init__(venv)
        self.reward = reward
        self.memory: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        self.actions: np.ndarray | None = None
        self.steps = 0
        self.non_additive = False

    def reset(self) -> Any:
        self.memory = [{} for _ in range(self.num_envs)]
        return self.venv.reset()

    def step_async(self, actions: np.ndarray) -> None:
        self.actions = frozen_array(actions)  # our own copy; the reward gets rows it cannot write
        self.venv.step_async(actions)

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        new = np.empty(self.num_envs, dtype=np.float32)
        assert self.actions is not None
        for i, info in enumerate(infos):
            try:
                total, comps = self.reward(info[PREV], self.actions[i], info[STATE], self.memory[i])
            except Exception as exc:
                raise RewardError(f"at training step {self.steps + 1} (env {i})") from exc
            info["env_reward"] = float(rewards[i])
            rest = not_in_components(total, comps)
            self.non_additive = self.non_additive or bool(rest)
            info["reward_components"] = {**comps, NOT_IN_COMPONENTS: rest} if self.non_additive else comps
            new[i] = total
            if dones[i]:
                self.memory[i] = {}
        self.steps += 1
        return obs, new, dones, infos
