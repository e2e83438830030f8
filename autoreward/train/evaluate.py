"""The one evaluation protocol used everywhere a policy is judged.

Deterministic actions, the env's own termination and time limit, episode ``i`` seeded with
``seed + i``: the untrained baseline, the periodic evaluations during training, the final
evaluation and the analyzer's rollouts all call :func:`evaluate`, so their numbers compare.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from autoreward.cards import EnvCard, StateExtractor
from autoreward.episode import Episode, rollout
from autoreward.program import RewardCaller, RewardError, shaping_term

if TYPE_CHECKING:
    from autoreward.train.wrappers import Shaping

EVAL_SEED = 10_000


@contextlib.contextmanager
def evaluation_mode(policy: Any) -> Iterator[None]:
    """An SB3 policy in evaluation mode for a whole evaluation, not one step at a time.

    SB3's ``predict`` switches the policy to evaluation mode at every call, a walk over its
    module tree (a quarter of a HalfCheetah evaluation step), and torch checks each action
    distribution's arguments; neither changes a value. Inside this block the switch is made
    once and the checks are off; afterwards both are as they were (training goes on)."""
    import torch

    was_training = bool(getattr(policy, "training", False))
    validate = torch.distributions.Distribution._validate_args
    policy.set_training_mode(False)
    policy.set_training_mode = lambda mode: None  # this instance only: ``predict``'s per-step switch
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        del policy.set_training_mode  # the class's method again
        policy.set_training_mode(was_training)
        torch.distributions.Distribution.set_default_validate_args(validate)


def evaluate(
    card: EnvCard,
    fitness: Callable[[Episode], float],
    success: float,
    act: Callable[[Any], Any],
    n_episodes: int = 5,
    seed: int = EVAL_SEED,
    reward: RewardCaller | None = None,
    max_steps: int | None = None,
    keep_episodes: bool = False,
    make_kwargs: dict[str, Any] | None = None,
    shaping: "Shaping | None" = None,
) -> dict[str, Any]:
    """Run ``n_episodes`` with ``act(obs) -> action``; fitness, success and the candidate's
    own return per episode (``reward`` given, or the shaped return r_task + gamma * phi(s') -
    phi(s) summed, ``shaping`` given), plus the env's return and why each ended."""
    env = card.make_env(**(make_kwargs or {}), **({"max_episode_steps": max_steps} if max_steps else {}))
    extractor = StateExtractor(card, env)
    limit = max_steps or card.training.max_episode_steps or 1000
    ours = reward is not None or shaping is not None
    rows: list[dict[str, Any]] = []
    episodes: list[Episode] = []
    try:
        for i in range(n_episodes):
            on_step, shaped = _scorer(i, reward, shaping)
            ep = rollout(card, env, extractor, lambda t, obs: act(obs), seed=seed + i, max_steps=limit, on_step=on_step)
            rows.append(_row(ep, float(fitness(ep)), success, shaped if ours else None, shaping))
            if keep_episodes:
                episodes.append(ep)
    finally:
        env.close()
    out = _aggregate(rows, ours)
    if keep_episodes:
        out["_episodes"] = episodes
    return out


def _scorer(i: int, reward: RewardCaller | None, shaping: "Shaping | None") -> tuple[Callable[[Any, Any, Any], None] | None, list[float]]:
    """The candidate's own signal on episode ``i``, step by step: the ``on_step`` that
    :func:`rollout` calls (None without a reward or potential) and the list it fills, the reward
    per step, or phi per state (s_0 first) with shaping. The program is made afresh for each
    episode: nothing outside memory carries over."""
    shaped: list[float] = []
    if reward is None and shaping is None:
        return None, shaped
    memory: dict[str, Any] = {}
    try:
        ep_reward = reward.episode() if reward is not None else None
        ep_phi = shaping.potential.episode() if shaping is not None else None
    except Exception as exc:
        raise RewardError(f"during evaluation (episode {i}, defining the program)") from exc

    def on_step(prev: Any, a: Any, s: Any) -> None:
        try:
            if ep_phi is not None:
                if not shaped:
                    shaped.append(ep_phi(prev)[0])
                shaped.append(ep_phi(s)[0])
            else:
                assert ep_reward is not None
                shaped.append(ep_reward(prev, a, s, memory)[0])
        except Exception as exc:
            raise RewardError(f"during evaluation (episode {i}, step {len(shaped) + 1})") from exc

    return on_step, shaped


def _row(ep: Episode, f: float, success: float, shaped: list[float] | None, shaping: "Shaping | None") -> dict[str, Any]:
    """One episode's numbers: fitness, success, the env's return, the candidate's own return
    (``shaped`` summed; with shaping, the task's signal + gamma * phi(s') - phi(s) per step), its
    length and why it ended."""
    if shaped is not None and shaping is not None:
        phi = shaped
        task = ep.env_return if shaping.task_signal == "env" else f
        shaped = [task] + [shaping_term(phi[t], phi[t + 1], shaping.gamma, ep.terminated and t == ep.length - 1) for t in range(ep.length)]
    return {
        "fitness": f,
        "success": bool(f >= success),
        "env_return": ep.env_return,
        "reward_return": float(np.sum(shaped)) if shaped is not None else None,
        "length": ep.length,
        "cause": ep.cause,
    }


def _aggregate(rows: list[dict[str, Any]], ours: bool) -> dict[str, Any]:
    """Means over the episodes (the candidate's own return too when it has one, ``ours``), the
    causes counted, and the episodes' rows."""
    fit = np.array([r["fitness"] for r in rows])
    out: dict[str, Any] = {
        "fitness_mean": float(fit.mean()),
        "fitness_std": float(fit.std()),
        "success_rate": float(np.mean([r["success"] for r in rows])),
        "env_return_mean": float(np.mean([r["env_return"] for r in rows])),
        "length_mean": float(np.mean([r["length"] for r in rows])),
        "causes": dict(Counter(r["cause"] for r in rows)),
        "episodes": rows,
    }
    if ours:
        out["reward_return_mean"] = float(np.mean([r["reward_return"] for r in rows]))
    return out
