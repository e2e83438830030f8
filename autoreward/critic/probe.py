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
from autoreward.sandbox.child import short_traceback

WRONG_WAY_RHO = -0.2  # at or below: the reward points against the task
WEAK_RHO = 0.2  # below: accepted with a warning


def probe(fitness: Callable[[Any], float], episodes: Sequence[Any], dry: DryRun) -> CheckResult:
    """Compare episode returns (from the dry run) with ``fitness`` over the same episodes."""
    from scipy.stats import spearmanr

    try:
        fit = np.array([fitness(ep) for ep in episodes])
    except Exception as exc:  # noqa: BLE001
        return CheckResult("probe", False, f"the fitness function failed on a recorded episode: {short_traceback(exc)}", kind="fitness_error")
    returns = np.array([sum(ep) for ep in dry.totals])
    result = CheckResult("probe", True, details={"episodes": len(episodes), "fitness": stats(fit), "returns": stats(returns)})
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
            f"the reward points the wrong way: over {len(episodes)} diverse rollouts, episodes with higher task "
            f"fitness get lower total reward (Spearman rho = {rho:.2f})"
            + (f"; components against the task: {', '.join(against)}" if against else "")
            + ". Check the signs and directions in the reward."
        )
    else:
        result.message = f"Spearman rho between episode reward and task fitness = {rho:.2f}"
        if rho < WEAK_RHO:
            result.warnings.append(f"weak agreement with the task fitness (rho = {rho:.2f})")
    return result
