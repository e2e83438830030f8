"""Recording the diverse rollouts the critic replays (trusted: runs the env, never a candidate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autoreward.cards import EnvCard, StateExtractor
from autoreward.episode import Episode, behaviour_policies, rollout, save_recording

MIN_TRANSITIONS = 1000
PROBE_EPISODES = 24


def record_rollouts(card: EnvCard, path: Path, seed: int = 0, make_kwargs: dict[str, Any] | None = None) -> Path:
    """Record >= MIN_TRANSITIONS transitions over >= PROBE_EPISODES diverse episodes, once.

    ``make_kwargs`` are the task's env settings (e.g. a starting inventory)."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    env = card.make_env(**(make_kwargs or {}))
    try:
        extractor = StateExtractor(card, env)
        max_steps = min(card.training.max_episode_steps or 1000, 200)
        policies = behaviour_policies(env.action_space, PROBE_EPISODES, seed)
        episodes: list[Episode] = []
        i = 0
        while len(episodes) < PROBE_EPISODES or sum(e.length for e in episodes) < MIN_TRANSITIONS:
            pol = policies[i % len(policies)]
            episodes.append(rollout(card, env, extractor, pol, seed=seed + i, max_steps=max_steps))
            i += 1
    finally:
        env.close()
    save_recording(path, card, episodes)
    return path
