"""Wrappers that apply a reward program, each doing one thing (gymnasium's style).

Order in the stack, inside out::

    env -> Monitor (records the env's own return, before anything changes it)
        -> StateWrapper (puts read-only state views in info)
    DummyVecEnv -> RewardProgramVecWrapper (replaces the reward, components in info)
               -> VecNormalize (reward normalization for learning)

With ``--shaping potential`` the program is a potential phi(state), and the stack is::

    env -> Monitor -> StateWrapper -> EpisodeFitnessWrapper (only when the task's signal is its fitness)
    DummyVecEnv -> PotentialShapingVecWrapper (r_task + gamma * phi(s') - phi(s)) -> VecNormalize

The state is extracted per env (so it works in subprocess VecEnvs too); the reward is applied
at the VecEnv level, where component statistics for all envs are gathered in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from autoreward.cards import EnvCard, StateExtractor, termination_cause
from autoreward.episode import Episode
from autoreward.program import NOT_IN_COMPONENTS, PotentialCaller, RewardCaller, RewardError, frozen_array, not_in_components, shaping_term

PREV, STATE = "autoreward_prev", "autoreward_state"
TASK_FITNESS = "autoreward_task_fitness"  # info key: the episode's fitness, on its last step
#: the components a shaped step adds beside phi's own terms (at s')
TASK_TERM, SHAPING_TERM = "(task reward)", "(shaping)"


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
    critic use too, made afresh for each env's every episode (``RewardCaller.episode``), so no
    value the program keeps outside ``memory`` outlives the episode. A total that is not the sum
    of its components trains as it is; from the first step where they differ, the difference is
    a component of its own, ``(not in components)`` (0.0 on steps where they agree), so the
    statistics show what the named terms do not explain.
    """

    def __init__(self, venv: VecEnv, reward: RewardCaller) -> None:
        super().__init__(venv)
        self.reward = reward
        self.memory: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        self.callers = [reward.episode() for _ in range(self.num_envs)]
        self.actions: np.ndarray | None = None
        self.steps = 0
        self.non_additive = False

    def reset(self) -> Any:
        self.memory = [{} for _ in range(self.num_envs)]
        self.callers = [self.reward.episode() for _ in range(self.num_envs)]
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
                total, comps = self.callers[i](info[PREV], self.actions[i], info[STATE], self.memory[i])
                if dones[i]:
                    self.memory[i], self.callers[i] = {}, self.reward.episode()
            except Exception as exc:
                raise RewardError(f"at training step {self.steps + 1} (env {i})") from exc
            info["env_reward"] = float(rewards[i])
            rest = not_in_components(total, comps)
            self.non_additive = self.non_additive or bool(rest)
            info["reward_components"] = {**comps, NOT_IN_COMPONENTS: rest} if self.non_additive else comps
            new[i] = total
        self.steps += 1
        return obs, new, dones, infos


class EpisodeFitnessWrapper(gym.Wrapper):
    """Puts the episode's task fitness in ``info[TASK_FITNESS]`` on its last step (terminated or
    truncated): the task's sparse signal for potential shaping when the task is not the env's
    own objective. The episode is built as evaluation builds it, so the fitness is the same
    expression on the same kind of :class:`~autoreward.episode.Episode`. Needs
    :class:`StateWrapper` inside it."""

    def __init__(self, env: gym.Env, card: EnvCard, fitness: Callable[[Episode], float], max_steps: int) -> None:
        super().__init__(env)
        self.card, self.fitness, self.max_steps = card, fitness, max_steps
        self._states: list[Any] = []
        self._actions: list[Any] = []
        self._rewards: list[float] = []

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        self._states, self._actions, self._rewards = [info[STATE]], [], []
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._states.append(info[STATE])
        self._actions.append(np.asarray(action))
        self._rewards.append(float(reward))
        if terminated or truncated:
            dt = getattr(self._states[0], "dt", None) or getattr(self.env.unwrapped, "dt", 1.0)
            ep = Episode(
                states=self._states, actions=np.asarray(self._actions), env_rewards=np.asarray(self._rewards, dtype=np.float64),
                terminated=bool(terminated), truncated=bool(truncated),
                cause=termination_cause(self.card, self._states[-1], bool(terminated), bool(truncated)),
                dt=float(dt), time_limit=self.max_steps,
            )
            info[TASK_FITNESS] = float(self.fitness(ep))
        return obs, reward, terminated, truncated, info


@dataclass
class Shaping:
    """Potential-based shaping as training and evaluation apply it: r_task + gamma * phi(s') -
    phi(s), phi(s') = 0 at a terminal state (not at a time-limit truncation: see
    :func:`~autoreward.program.shaping_term`).

    ``task_signal`` says what r_task is. ``"env"``: the env's own reward, when the task is the
    env's objective (its card preset says ``env_objective`` and the fitness is the preset's).
    ``"fitness"``: otherwise the env's reward means something else (HalfCheetah's rewards
    running forwards; the task may be to run backwards), so r_task is the task's own sparse
    signal, its fitness paid once on the episode's last step, 0 before. Either way the optimal
    policy is the one r_task alone defines; phi only changes how fast it is found."""

    potential: PotentialCaller
    gamma: float
    task_signal: Literal["env", "fitness"]


class PotentialShapingVecWrapper(VecEnvWrapper):
    """Replaces each env's reward by ``r_task + gamma * phi(s') - phi(s)`` (``--shaping potential``).

    ``info['reward_components']`` holds phi's own terms at s' (and ``(not in components)`` when
    phi is not the sum of them), ``(task reward)`` and ``(shaping)``; the env's reward stays in
    ``info['env_reward']``. phi(s) is the previous step's phi(s') (the same state object), so phi
    is called once per step."""

    def __init__(self, venv: VecEnv, shaping: Shaping) -> None:
        super().__init__(venv)
        self.shaping = shaping
        self.steps = 0
        self.non_additive = False
        self._last: list[tuple[Any, float]] = [(None, 0.0)] * self.num_envs  # (state, phi(state)) per env
        self.callers = [shaping.potential.episode() for _ in range(self.num_envs)]  # afresh per episode, as rewards are

    def reset(self) -> Any:
        self._last = [(None, 0.0)] * self.num_envs
        self.callers = [self.shaping.potential.episode() for _ in range(self.num_envs)]
        return self.venv.reset()

    def step_async(self, actions: np.ndarray) -> None:
        self.venv.step_async(actions)

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        new = np.empty(self.num_envs, dtype=np.float32)
        sh = self.shaping
        for i, info in enumerate(infos):
            prev, state = info[PREV], info[STATE]
            try:
                last, phi = self._last[i]
                if last is not prev:
                    phi = self.callers[i](prev)[0]
                phi_next, comps = self.callers[i](state)
                if dones[i]:
                    self.callers[i] = sh.potential.episode()
            except Exception as exc:
                raise RewardError(f"at training step {self.steps + 1} (env {i}), in compute_potential") from exc
            self._last[i] = (state, phi_next)
            terminal = bool(dones[i]) and not info.get("TimeLimit.truncated", False)
            r_task = float(rewards[i]) if sh.task_signal == "env" else float(info.get(TASK_FITNESS, 0.0))
            shaped = shaping_term(phi, phi_next, sh.gamma, terminal)
            rest = not_in_components(phi_next, comps)
            self.non_additive = self.non_additive or bool(rest)
            info["env_reward"] = float(rewards[i])
            info["reward_components"] = {**comps, **({NOT_IN_COMPONENTS: rest} if self.non_additive else {}), TASK_TERM: r_task, SHAPING_TERM: shaped}
            new[i] = r_task + shaped
        self.steps += 1
        return obs, new, dones, infos
