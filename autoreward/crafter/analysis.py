"""Analyzer numbers for Crafter episodes: success, deaths and their causes, the Crafter score.

Works on :class:`autoreward.episode.Episode` lists built from live rollouts or recordings of the
``Crafter-v1`` card (state fields ``achievements``, ``dead``, ``death_cause``). Which achievement
completes a task and which deaths fail it are the card's per-task ``analysis`` facts, not code.

The Crafter score is the paper's (Hafner 2021, eq. 1): the success rate ``s_i`` in percent of
each of the 22 achievements over all episodes, aggregated by a geometric mean,
``S = exp(mean(ln(1 + s_i))) - 1``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from autoreward.crafter.env import ACHIEVEMENTS
from autoreward.prompts_io import render

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


def _success_fn(
    success: str | Callable[[Any], bool], failure_deaths: Sequence[str] = ()
) -> tuple[Callable[[Any], bool], str | None]:
    if callable(success):
        return success, None
    if success not in ACHIEVEMENTS:
        raise ValueError(f"unknown achievement {success!r}")
    i = ACHIEVEMENTS.index(success)

    def ok(ep: Any) -> bool:
        return bool(np.asarray(ep.last.achievements)[i] > 0) and death_cause(ep) not in failure_deaths

    return ok, success


def crafter_numbers(
    episodes: Sequence[Any],
    success: str | Callable[[Any], bool] = "collect_wood",
    fitness: Callable[[Any], float] | None = None,
    failure_deaths: Sequence[str] = (),
) -> dict[str, Any]:
    """The analyzer's numbers for Crafter episodes.

    Args:
        episodes: autoreward.episode.Episode objects of the Crafter-v1 card.
        success: the achievement that completes the task, or a predicate over one episode.
        fitness: optional per-episode fitness (e.g. ``fitness_function(task.fitness)``).
        failure_deaths: death causes that fail an episode even when the achievement was
            unlocked (the diamond task: a lava death is failure).

    Returns a plain dict: n_episodes, success_rate, death_rate, death_causes (fraction of all
    episodes per cause), mean_steps_to_success (over successful episodes; None if none),
    mean_length, achievement_rates (percent), crafter_score (percent), mean_achievements and,
    with ``fitness``, mean_fitness and fitnesses.
    """
    ok, ach = _success_fn(success, failure_deaths)
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
    """A few lines for a report or an LLM summary prompt (``prompts/crafter_numbers.j2``)."""
    return render("crafter_numbers.j2", n=numbers).strip()


def analyze_episodes(
    episodes: Sequence[Any],
    fitness: Callable[[Any], float],
    success: float,
    achievement: str | None = None,
    failure_deaths: Sequence[str] = (),
) -> dict[str, Any]:
    """The env card's analyzer hook (``analyzer:`` in Crafter-v1.yaml), called by the trainer on
    the final evaluation episodes with the task's ``analysis`` facts: success by the task's
    achievement where it names one, else by fitness >= the success threshold. Adds ``text``
    for reports and prompts."""
    pred: str | Callable[[Any], bool] = achievement or (lambda ep: float(fitness(ep)) >= success)
    out = crafter_numbers(episodes, pred, fitness, failure_deaths)
    out["text"] = format_numbers(out)
    return out
