"""The fitness check: a proposed fitness is generated text like a reward, so before any reward is
designed it runs in the sandbox on the recorded rollouts.

It must give one finite number per episode, differ across the diverse rollouts (else it cannot
tell better behaviour from worse), and have a success threshold that most open-loop rollouts do
not already reach (half of them reaching it means no learning is needed) but that is not absurdly
far above them. A failure's message goes back to the
fitness proposer, never to the reward designer.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from autoreward.cards import EnvCard, load_card_file
from autoreward.critic.verdict import CheckResult, stats
from autoreward.directions import wanted_measures
from autoreward.episode import compile_fitness, load_recording
from autoreward.errors import RewardProgramError
from autoreward.rundir import write_json
from autoreward.sandbox import Limits, run_job
from autoreward.sandbox.child import short_traceback
from autoreward.sandbox.registry import job

#: a threshold further above the rollouts' best than this many times their spread is implausible
PLAUSIBLE_SPREADS = 25.0
#: a proposal whose values rank against a measure the task wants this strongly points the wrong way
AGAINST_RHO = 0.8


def _as_number(value: Any) -> float | str:
    """The value as a float, or a message saying what it is instead."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return f"an array of shape {value.shape}, not one number: reduce it to one value (e.g. np.mean(...) or its last element)"
        value = value.reshape(()).item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, (int, float)):
        return f"a {type(value).__name__}, not a number"
    return float(value)


def check_fitness(fitness: Callable[[Any], Any], success: float, episodes: Sequence[Any],
                  against: Callable[[np.ndarray], str] | None = None) -> CheckResult:
    """Evaluate the raw fitness on every recorded episode (see the module docstring); last,
    ``against`` (the values -> why they point the wrong way, or "") judges their direction."""
    values: list[float] = []
    for i, ep in enumerate(episodes):
        try:
            v = _as_number(fitness(ep))
        except Exception as exc:  # noqa: BLE001 - the proposer gets the exact error
            return CheckResult("fitness", False, f"on recorded episode {i}: {short_traceback(exc)}", kind="fitness_error")
        if isinstance(v, str):
            return CheckResult("fitness", False, f"on recorded episode {i} it returned {v}", kind="fitness_error")
        if not math.isfinite(v):
            return CheckResult("fitness", False, f"on recorded episode {i} it returned {v}; it must be a finite number", kind="fitness_error")
        values.append(v)
    a = np.array(values)
    lo, hi = float(a.min()), float(a.max())
    details = {
        "episodes": len(values), "values": stats(a), "threshold": success,
        "best": {"episode": int(a.argmax()), "value": hi}, "worst": {"episode": int(a.argmin()), "value": lo},
    }
    if hi - lo <= 1e-9 * max(1.0, abs(hi)):
        msg = (f"it gives {lo:.6g} for every one of the {len(values)} diverse recorded rollouts, so it cannot tell better "
               "behaviour from worse; measure something that changes with how well the task is done")
        return CheckResult("fitness", False, msg, details, kind="fitness_constant")
    if success <= lo:
        msg = (f"every recorded rollout of untrained, open-loop behaviour already reaches the threshold {success:g} "
               f"(values {lo:.4g} to {hi:.4g}); raise the threshold so that only doing the task reaches it")
        return CheckResult("fitness", False, msg, details, kind="fitness_threshold")
    reached = int((a >= success).sum())
    if reached * 2 >= len(values):
        # a Hopper proposal's threshold 0.7 sat below the rollouts' mean 1.0 (the untrained policy
        # scored 1.41), so the run stopped as "solved" with a policy worse than untrained
        msg = (f"{reached} of the {len(values)} recorded rollouts of untrained, open-loop behaviour already reach the threshold "
               f"{success:g} (median {float(np.median(a)):.4g}, best {hi:.4g}); a threshold must need learning: "
               f"raise it above what untrained behaviour does, at least above {hi:.4g}")
        return CheckResult("fitness", False, msg, details, kind="fitness_threshold")
    if success > hi + PLAUSIBLE_SPREADS * (hi - lo):
        msg = (f"the threshold {success:g} is implausibly far above the recorded rollouts' values ({lo:.4g} to {hi:.4g}); "
               "check the units and choose a threshold a good policy can reach")
        return CheckResult("fitness", False, msg, details, kind="fitness_threshold")
    why = against(a) if against is not None else ""
    if why:
        return CheckResult("fitness", False, why, details, kind="fitness_direction")
    return CheckResult("fitness", True, f"values {lo:.4g} to {hi:.4g} over {len(values)} rollouts; threshold {success:g}", details)


def against_the_task(values: Sequence[float], wanted: dict[str, int], measured: dict[str, Sequence[float]]) -> str:
    """Why the proposal's values move against a measure whose direction the task states, or "".

    ``wanted`` (from :func:`autoreward.directions.wanted_measures`): +1 for a measure the task
    wants higher, -1 for one it wants lower; ``measured``: each one's values on the same
    episodes. A proposal written over ``ep`` (the model wrote ``(ep.first.y_position -
    ep.last.y_position) / ep.duration`` for "walk towards the left, along +y", which rises going
    right) cannot be read by name, but its values can: a rank correlation this strong over
    diverse rollouts is not chance."""
    from scipy.stats import spearmanr

    v = np.asarray(values, dtype=float)
    for name, sign in wanted.items():
        m = np.asarray(measured[name], dtype=float)
        if np.std(v) < 1e-12 or np.std(m) < 1e-12:
            continue
        rho = float(spearmanr(v, m).statistic)
        if not math.isfinite(rho):
            continue
        if sign > 0 and rho <= -AGAINST_RHO:
            return (f"over the {len(v)} recorded rollouts it falls as {name} rises (Spearman rho = {rho:.2f}), but the task asks for "
                    f"what {name} measures: it points the opposite way; use {name} (or flip the sign)")
        if sign < 0 and rho >= AGAINST_RHO:
            return (f"over the {len(v)} recorded rollouts it rises with {name} (Spearman rho = {rho:.2f}), which is lower when the task "
                    f"is done better: it points the opposite way; use -{name} (or flip the sign)")
    return ""


def check_fitness_expr(expr: str, success: float, card: EnvCard, recording: Path, workdir: Path, limits: Limits | None = None,
                       task: str = "") -> CheckResult:
    """Parent side: run :func:`check_fitness` in the sandbox; saved as ``workdir/fitness_check.json``.
    With ``task`` (a proposal for that task, not the user's own expression) its values are also
    compared with the measures whose direction the task states (:func:`against_the_task`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    payload = {"fitness": expr, "success": float(success), "card_path": card.path, "recording": str(Path(recording).resolve()),
               "task": task}
    result = run_job("fitness", payload, workdir, limits or Limits.for_check())
    if result.result.get("check"):
        check = CheckResult(**result.result["check"])
    else:
        check = CheckResult("fitness", False, result.error or "the fitness check produced no result", kind="fitness_error")
    write_json(workdir / "fitness_check.json", {"fitness": expr, "success": success, **asdict(check)})
    return check


@job("fitness")
def run_fitness_job(payload: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    """Child side: compile the expression (with the card's measures) and check it."""
    card = load_card_file(Path(payload["card_path"]))
    try:
        fitness = compile_fitness(payload["fitness"], card.measure_exprs, card.field_names)
    except RewardProgramError as exc:
        check = CheckResult("fitness", False, exc.message, kind="fitness_error")
    else:
        episodes = load_recording(Path(payload["recording"]), card)
        wanted = wanted_measures(payload.get("task") or "", card.measures)

        def against(values: np.ndarray) -> str:
            measured = {n: [float(f(ep)) for ep in episodes] for n in wanted
                        for f in [compile_fitness(n, card.measure_exprs, card.field_names)]}
            return against_the_task(values, wanted, measured)

        check = check_fitness(fitness, float(payload["success"]), episodes, against if wanted else None)
    return {"ok": check.passed, "check": asdict(check), "error": "" if check.passed else check.message}


def fitness_text(expr: str, success: float, measures: dict[str, Any], description: str = "", unit: str = "") -> str:
    """How a free-form task's fitness reads in the designer's prompts: the expression, its
    threshold, and the card's own words for each measure it uses. A proposer's prose is kept only
    when the expression uses no named measure: the 1.5B proposer described
    ``backward_speed * alive_fraction`` as "the product of the forward speed and ...", and the
    designer then wrote rewards for forward motion."""
    used = [n for n in measures if re.search(rf"\b{re.escape(n)}\b", expr)]
    head = f"fitness = {expr} per episode (success at >= {success:g}{' ' + unit if unit else ''}; higher is better)"
    if not used:
        return f"{head}. {description}".strip() if description else head
    lines = [f"- {n}: {measures[n].doc}{f' ({measures[n].unit})' if measures[n].unit else ''}" for n in used]
    return head + ", where\n" + "\n".join(lines)
