"""Analyzer numbers for Crafter episodes: success, deaths and their causes, the Crafter score.

Works on :class:`autoreward.episode.Episode` lists built from live rollouts or recordings of the
``Crafter-v1`` card (state fields ``achievements``, ``dead``, ``death_cause``).

The Crafter score is the paper's (Hafner 2021, eq. 1): the success rate ``s_i`` in percent of
each of the 22 achievements over all episodes, aggregated by a geometric mean,
``S = exp(mean(ln(1 + s_i))) - 1``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from autoreward.crafter_env import ACHIEVEMENTS

#: per-episode success of each preset, as the achievement that completes it (Auto MC-Reward
#: measures success rate the same way: the goal item obtained within the episode)
PRESET_ACHIEVEMENT = {
    "collect_wood": "collect_wood",
    "place_table": "place_table",
    "eat_cow": "eat_cow",
    "collect_stone": "collect_stone",
    "explore_diamond": "collect_diamond",
}
DEATH_CAUSES = ("lava", "zombie", "arrow", "starvation", "thirst", "fatigue", "unknown")


def unlocked_matrix(episodes: Sequence[Any]) -> np.ndarray:
    """[n_episodes, 22] 0/1: which achievements each episode unlocked."""
    if not episodes:
        return np.zeros((0, len(ACHIEVEMENTS)), np.int64)
    return np.array([np.asarray(ep.last.achievements) > 0 for ep in episodes], np.int64)


def achievement_rates(episodes: Sequence[Any]) -> dict[str, float]:
    """Success rate in percent of each achievement over the episodes."""
    m = unlocked_matrix(episodes)
    rates = 100.0 * m.mean(0) if len(m) else np.zeros(len(ACHIEVEMENTS))
    return {name: float(r) for name, r in zip(ACHIEVEMENTS, rates)}


def crafter_score(episodes_or_rates: Sequence[Any] | np.ndarray | dict[str, float]) -> float:
    """The Crafter score in percent: ``exp(mean(ln(1 + s_i))) - 1``, ``s_i`` in percent.

    Accepts episodes, a dict of per-achievement rates in percent, an array of 22 rates in
    percent, or an [n_episodes, 22] 0/1 matrix.
    """
    x = episodes_or_rates
    if isinstance(x, dict):
        rates = np.array([x.get(a, 0.0) for a in ACHIEVEMENTS], np.float64)
    elif isinstance(x, np.ndarray) and x.ndim == 2:
        rates = 100.0 * x.astype(np.float64).mean(0)
    elif isinstance(x, np.ndarray) or (len(x) and isinstance(x[0], (int, float, np.number))):
        rates = np.asarray(x, np.float64)
    else:
        rates = np.array(list(achievement_rates(x).values()))
    if rates.shape != (len(ACHIEVEMENTS),):
        raise ValueError(f"expected {len(ACHIEVEMENTS)} achievement rates, got shape {rates.shape}")
    return float(np.exp(np.mean(np.log1p(rates))) - 1.0)


def first_step(ep: Any, achievement: str) -> int | None:
    """Steps taken when ``achievement`` was first unlocked in ``ep`` (None if never)."""
    i = ACHIEVEMENTS.index(achievement)
    col = ep.series("achievements")[:, i]
    hit = np.flatnonzero(col > 0)
    return int(hit[0]) if hit.size else None


def death_cause(ep: Any) -> str | None:
    """Why the player died ('lava', 'zombie', ...), or None if it did not die."""
    last = ep.last
    if not bool(last.dead):
        return None
    cause = str(last.death_cause)
    return cause if cause and cause != "none" else "unknown"


def _success_fn(success: str | Callable[[Any], bool]) -> tuple[Callable[[Any], bool], str | None]:
    if callable(success):
        return success, None
    ach = PRESET_ACHIEVEMENT.get(success, success)
    if ach not in ACHIEVEMENTS:
        raise ValueError(f"unknown preset or achievement {success!r}")
    i = ACHIEVEMENTS.index(ach)

    def ok(ep: Any) -> bool:
        won = bool(np.asarray(ep.last.achievements)[i] > 0)
        if ach == "collect_diamond":  # a lava death counts as failure in the diamond task
            won = won and death_cause(ep) != "lava"
        return won

    return ok, ach


def crafter_numbers(
    episodes: Sequence[Any],
    success: str | Callable[[Any], bool] = "collect_wood",
    fitness: Callable[[Any], float] | None = None,
) -> dict[str, Any]:
    """The analyzer's numbers for Crafter episodes.

    Args:
        episodes: autoreward.episode.Episode objects of the Crafter-v1 card.
        success: a preset name (see PRESET_ACHIEVEMENT), an achievement name, or a predicate
            over one episode.
        fitness: optional per-episode fitness (e.g. ``fitness_function(task.fitness)``).

    Returns a plain dict: n_episodes, success_rate, death_rate, death_causes (fraction of all
    episodes per cause), mean_steps_to_success (over successful episodes; None if none),
    mean_length, achievement_rates (percent), crafter_score (percent), mean_achievements and,
    with ``fitness``, mean_fitness and fitnesses.
    """
    ok, ach = _success_fn(success)
    n = len(episodes)
    wins = [ok(ep) for ep in episodes]
    causes = [death_cause(ep) for ep in episodes]
    counts: dict[str, int] = {}
    for c in causes:
        if c is not None:
            counts[c] = counts.get(c, 0) + 1
    steps: list[int] = []
    for ep, w in zip(episodes, wins):
        if not w:
            continue
        if ach is not None:
            s = first_step(ep, ach)
            if s is not None:
                steps.append(s)
        else:
            steps.append(int(ep.length))
    out: dict[str, Any] = {
        "n_episodes": n,
        "success": ach if ach is not None else getattr(success, "__name__", "custom"),
        "success_rate": float(np.mean(wins)) if n else 0.0,
        "death_rate": float(sum(c is not None for c in causes) / n) if n else 0.0,
        "death_causes": {k: v / n for k, v in sorted(counts.items(), key=lambda kv: -kv[1])},
        "mean_steps_to_success": float(np.mean(steps)) if steps else None,
        "mean_length": float(np.mean([ep.length for ep in episodes])) if n else 0.0,
        "mean_achievements": float(unlocked_matrix(episodes).sum(1).mean()) if n else 0.0,
        "achievement_rates": achievement_rates(episodes),
        "crafter_score": crafter_score(unlocked_matrix(episodes)) if n else 0.0,
    }
    if fitness is not None:
        fits = [float(fitness(ep)) for ep in episodes]
        out["fitnesses"] = fits
        out["mean_fitness"] = float(np.mean(fits)) if fits else 0.0
    return out


def format_numbers(numbers: dict[str, Any]) -> str:
    """A few lines for a report or an LLM summary prompt."""
    lines = [
        f"episodes: {numbers['n_episodes']}, success ({numbers['success']}): "
        f"{100 * numbers['success_rate']:.0f}%, deaths: {100 * numbers['death_rate']:.0f}%",
    ]
    if numbers["death_causes"]:
        lines.append("death causes: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in numbers["death_causes"].items()))
    if numbers["mean_steps_to_success"] is not None:
        lines.append(f"mean steps to success: {numbers['mean_steps_to_success']:.0f}")
    lines.append(f"mean episode length: {numbers['mean_length']:.0f}; Crafter score: {numbers['crafter_score']:.2f}%")
    if "mean_fitness" in numbers:
        lines.append(f"mean fitness: {numbers['mean_fitness']:.3f}")
    return "\n".join(lines)


def analyze_episodes(episodes: Sequence[Any], task: str, fitness: Callable[[Any], float], success: float) -> dict[str, Any]:
    """The env card's analyzer hook (``analyzer:`` in Crafter-v1.yaml), called by the trainer on
    the final evaluation episodes: success by the preset's achievement where it has one, else
    by fitness >= the success threshold. Adds ``text`` for reports and prompts."""
    pred: str | Callable[[Any], bool] = task if task in PRESET_ACHIEVEMENT else (lambda ep: float(fitness(ep)) >= success)
    out = crafter_numbers(episodes, pred, fitness)
    out["text"] = format_numbers(out)
    return out
