"""Analyzer numbers for Meta-World episodes: success, grasp and lift rates, steps to success.

Works on :class:`autoreward.episode.Episode` lists of any Meta-World card (state fields
``success``, ``grasped``, ``lifted``, ``task_distance``). Whether a task needs a grasp or a lift
is the card's per-task ``analysis`` fact, not code; the text then says when a needed grasp
never happened, the usual reason a manipulation policy fails.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from autoreward.prompts_io import render


def steps_to_success(ep: Any) -> int | None:
    """Steps taken when the env first reported success in ``ep`` (None if never)."""
    hit = np.flatnonzero(ep.steps("success"))
    return int(hit[0]) + 1 if hit.size else None


def metaworld_numbers(episodes: Sequence[Any], fitness: Callable[[Any], float] | None = None) -> dict[str, Any]:
    """Success rate (env's flag at any step), final success rate, grasp and lift rates (episodes
    with at least one grasped / lifted step) and fractions of steps, mean steps to success over
    the successful episodes, closest and final task distances, mean fitness with ``fitness``."""
    n = len(episodes)
    if not n:
        return {"n_episodes": 0, "success_rate": 0.0, "mean_steps_to_success": None}
    steps = [s for s in (steps_to_success(ep) for ep in episodes) if s is not None]

    def rate(name: str) -> float:
        return float(np.mean([bool(np.any(ep.steps(name))) for ep in episodes]))

    def frac(name: str) -> float:
        return float(np.mean([float(np.mean(ep.steps(name))) for ep in episodes]))

    out: dict[str, Any] = {
        "n_episodes": n,
        "success_rate": rate("success"),
        "final_success_rate": float(np.mean([bool(ep.last.success) for ep in episodes])),
        "grasp_rate": rate("grasped"),
        "lift_rate": rate("lifted"),
        "grasped_fraction": frac("grasped"),
        "lifted_fraction": frac("lifted"),
        "mean_steps_to_success": float(np.mean(steps)) if steps else None,
        "mean_min_task_distance": float(np.mean([np.min(ep.series("task_distance")) for ep in episodes])),
        "mean_final_task_distance": float(np.mean([ep.last.task_distance for ep in episodes])),
        "mean_length": float(np.mean([ep.length for ep in episodes])),
    }
    if fitness is not None:
        fits = [float(fitness(ep)) for ep in episodes]
        out["fitnesses"] = fits
        out["mean_fitness"] = float(np.mean(fits))
    return out


def analyze_episodes(
    episodes: Sequence[Any],
    fitness: Callable[[Any], float],
    success: float,
    grasp_needed: bool = False,
    lift_needed: bool = False,
) -> dict[str, Any]:
    """The Meta-World cards' analyzer hook (``analyzer:`` in ``envs/_metaworld-v3.yaml``), called
    by the trainer on the final evaluation episodes with the task's ``analysis`` facts. Adds
    ``text`` (``prompts/metaworld_numbers.j2``) for reports and the analyzer's prompt."""
    out = metaworld_numbers(episodes, fitness)
    out["fitness_success_rate"] = float(np.mean([f >= success for f in out.get("fitnesses", [])])) if episodes else 0.0
    out["grasp_needed"], out["lift_needed"] = bool(grasp_needed), bool(lift_needed)
    out["text"] = render("metaworld_numbers.j2", n=out).strip()
    return out
