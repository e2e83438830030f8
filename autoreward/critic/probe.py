"""The behaviour probe: does the reward rank diverse rollouts the way the task fitness does?

Spearman rank correlation between each recorded episode's return under the candidate and its
task fitness; a reward pointing the wrong way (rho <= :data:`WRONG_WAY_RHO`) is rejected and
the components that point against the task are named.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from autoreward.critic.dry_run import DryRun
from autoreward.critic.verdict import CheckResult, stats
from autoreward.program import NOT_IN_COMPONENTS
from autoreward.sandbox.child import short_traceback

WRONG_WAY_RHO = -0.2  # at or below: the reward points against the task
WEAK_RHO = 0.2  # below: accepted with a warning
FAIL_BONUS_SDS = 3.0  # the failing step paid this many standard deviations above the others: a bonus for failing
LIVING_COST_FRACTION = 0.9  # at least this share of the steps before the end negative: living costs
MIN_FAILED_EPISODES = 3  # fewer recorded failures than this: too little to judge


def probe(fitness: Callable[[Any], float], episodes: Sequence[Any], dry: DryRun) -> CheckResult:
    """Compare episode returns (from the dry run) with ``fitness`` over the same episodes
    (in-process, for tests; production computes the fitness in its own sandboxed job)."""
    try:
        fit = np.array([fitness(ep) for ep in episodes])
    except Exception as exc:  # noqa: BLE001
        return CheckResult("probe", False, f"the fitness function failed on a recorded episode: {short_traceback(exc)}", kind="fitness_error")
    return probe_values(fit, len(episodes), dry)


def probe_values(fit: np.ndarray, n_episodes: int, dry: DryRun) -> CheckResult:
    """The probe on each episode's fitness ``fit`` and the dry run's returns (in the parent)."""
    from scipy.stats import spearmanr

    returns = np.array([sum(ep) for ep in dry.totals])
    result = CheckResult("probe", True, details={"episodes": n_episodes, "fitness": stats(fit), "returns": stats(returns)})
    if float(np.std(fit)) < 1e-9 or float(np.std(returns)) < 1e-12:
        result.message = "inconclusive: the recorded rollouts do not vary enough to compare"
        result.warnings.append("behaviour probe inconclusive (no variation across rollouts)")
        return result
    rho = float(spearmanr(returns, fit).statistic)
    per_comp: dict[str, float] = {}
    starts = np.cumsum([0] + [len(ep) for ep in dry.totals[:-1]])  # every episode has >= 1 step
    for k, vals in dry.components.items():
        if len(vals) == dry.calls:  # components present at every step only
            ep_sums = np.add.reduceat(np.array(vals), starts)
            if np.std(ep_sums) > 1e-12:
                per_comp[k] = round(float(spearmanr(ep_sums, fit).statistic), 3)
    result.details.update(spearman=round(rho, 3), component_spearman=per_comp)
    if not math.isfinite(rho):
        rho = 0.0
    if rho <= WRONG_WAY_RHO:
        against = [k for k, r in per_comp.items() if r <= WRONG_WAY_RHO]
        result.passed = False
        result.kind = "wrong_way"
        result.details["against"] = against
        result.message = (
            f"the reward points the wrong way: over {n_episodes} diverse rollouts, episodes with higher task "
            f"fitness get lower total reward (Spearman rho = {rho:.2f})"
            + (f"; components against the task: {', '.join(against)}" if against else "")
            + ". Check the signs and directions in the reward."
        )
    else:
        result.message = f"Spearman rho between episode reward and task fitness = {rho:.2f}"
        if rho < WEAK_RHO:
            result.warnings.append(f"weak agreement with the task fitness (rho = {rho:.2f})")
    return result


def failing_pays(episodes: Sequence[Any], dry: DryRun) -> CheckResult:
    """In an env whose episodes end when the agent fails (the card names termination causes:
    fell, tilted, died), a reward must not make failing the better choice. Two shapes do:

    * a bonus at the failing step: the step that ends an episode pays far more than the others
      (the embedded model wrote ``total -= 100 * x_velocity`` when the hopper is unhealthy, for
      "hop backwards": its policy learned to fall backwards within 20 steps);
    * living costs: nearly every step before the end is negative (an effort penalty and nothing
      else), so the highest return is to end the episode at once.

    Both are read from the recorded rollouts, whose random behaviour fails often; neither is
    judged when fewer than :data:`MIN_FAILED_EPISODES` of them ended in a failure."""
    lengths = [len(ep) for ep in dry.totals]
    failed = [i for i, ep in enumerate(episodes) if getattr(ep, "terminated", False) and lengths[i]]
    totals = np.array([x for ep in dry.totals for x in ep], dtype=float)
    is_last = np.zeros(totals.size, dtype=bool)  # the transitions that ended an episode by failing
    is_last[[int(sum(lengths[:i])) + lengths[i] - 1 for i in failed]] = True
    alive, last = totals[~is_last], totals[is_last]
    result = CheckResult("termination", True, "")
    if len(failed) < MIN_FAILED_EPISODES or alive.size < 20:
        result.message = f"not judged: {len(failed)} recorded rollout(s) ended in a failure"
        return result
    m, sd, tm = float(alive.mean()), float(alive.std()), float(last.mean())
    negative = float(np.mean(alive < 0))
    result.details = {"failed_episodes": len(failed), "failing_step_mean": tm, "other_steps_mean": m, "other_steps_std": sd,
                      "other_steps_negative_fraction": negative}
    if tm > 0 and tm > m + FAIL_BONUS_SDS * sd + 1e-9:
        result.passed, result.kind = False, "failing_pays"
        source = _bonus_source(dry, is_last)
        result.details["bonus_from"] = source
        result.message = (f"failing pays: in this env an episode ends when the agent fails (falls, tips over, dies), and the step that "
                          f"ends it gets {tm:.3g} on average against {m:.3g} ± {sd:.3g} on the other steps of {len(episodes)} recorded "
                          f"rollouts, so a policy learns to fail on purpose. The bonus comes from {source}. Remove it: the failing "
                          "step must get no more than any other step (a branch on the unhealthy/dead state may only subtract)")
    elif m < 0 and negative >= LIVING_COST_FRACTION:
        result.passed, result.kind = False, "failing_pays"
        result.message = (f"failing pays: {negative:.0%} of the steps before an episode ends get a negative reward (mean {m:.3g}), and "
                          "the episode ends when the agent fails, so failing at once gives the highest return. Add a positive term "
                          "for every step it stays up or alive (e.g. +1.0 while healthy) that outweighs the costs")
    else:
        result.message = f"failing does not pay: the failing step gets {tm:.3g} on average, the others {m:.3g} ± {sd:.3g}"
    return result


def _bonus_source(dry: DryRun, is_last: np.ndarray) -> str:
    """Which term pays the failing step's bonus: the component (or the dry run's
    ``(not in components)`` term, the part of the total outside the components dict) whose mean
    rises most from the other steps to the failing ones (``is_last``). The 1.5B model, told only
    "do not reward the failing step", kept ``if not state.is_healthy: total -= 100 *
    state.x_velocity`` through three repairs; naming the term is the hint it lacked."""
    parts = {k: np.asarray(v, dtype=float) for k, v in dry.components.items() if len(v) == is_last.size}
    if not parts:
        return "the total"
    jumps = {k: float(v[is_last].mean() - v[~is_last].mean()) for k, v in parts.items()}
    name = max(jumps, key=lambda k: jumps[k])
    v = parts[name]
    where = ("the part of the total outside the components dict (an addition to the total at the failing step)"
             if name == NOT_IN_COMPONENTS else f"the component {name!r}")
    return f"{where}: {float(v[is_last].mean()):.3g} at the failing step against {float(v[~is_last].mean()):.3g} elsewhere"
