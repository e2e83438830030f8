"""The Critic's checks that need no LLM, in order, stopping at the first failure.

1. static policy and example copy (``static``), in the parent: it only parses;
2. dry run (``dry_run``) over >= 1,000 recorded transitions from diverse rollouts;
3. behaviour probe (``probe``): does the reward rank the rollouts as the task fitness does?

:func:`check_program` runs the first in the parent; the sandboxed child (:func:`run_check_job`)
only calls the program on the recording and sends the numbers back; the parent judges them and
takes the recorded episodes' fitness from another sandboxed job that never sees the program.
The judge never runs beside the defendant. The verdict is saved as ``critic.json``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from autoreward.cards import EnvCard, load_card_file
from autoreward.critic.dry_run import Calls, call_potential, call_program, judge_calls, judge_potential_calls
from autoreward.critic.probe import failing_pays, probe_values
from autoreward.critic.static import check_static
from autoreward.critic.verdict import CheckResult, Verdict
from autoreward.episode import fitness_function, load_recording
from autoreward.errors import RewardProgramError
from autoreward.program import FUNCTION_NAME, POTENTIAL_FUNCTION, PotentialCaller, RewardCaller, RewardProgram
from autoreward.rundir import read_json, write_json
from autoreward.sandbox import Limits, run_job
from autoreward.sandbox.child import short_traceback
from autoreward.sandbox.registry import job

#: the reward of every recorded transition, written by the dry run (plain float64 .npy)
REWARDS_FILE = "recording_rewards.npy"


def check_program(
    program: RewardProgram,
    card: EnvCard,
    task_name: str,
    workdir: Path,
    recording: Path,
    fitness_expr: str | None = None,
    limits: Limits | None = None,
    example: str = "",
    shaping: str = "reward",
) -> Verdict:
    """Run the checks in order and save the verdict to ``workdir/critic.json``.

    ``example``: the reward example the designer was shown; a program that is that example
    unchanged is rejected (small models hand it back). ``shaping="potential"``: the program
    defines ``compute_potential(state)``, checked like a reward; the probe ranks the rollouts by
    the potential they gained (``dry_run.dry_run_potential``).

    Where each number comes from: the sandboxed ``check`` job only calls the program on the
    recording and sends back what it returned (``dry_run.Calls``); every verdict on those numbers
    (determinism, constancy, the probe's rho, failing pays) is computed here, in the parent, and
    the recorded episodes' fitness comes from a separate sandboxed job in which the program
    never ran (:func:`recording_fitness`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    fitness = fitness_expr if fitness_expr is not None else card.task(task_name).fitness
    potential = shaping == "potential"
    static = check_static(program.source, example, POTENTIAL_FUNCTION if potential else FUNCTION_NAME)
    verdict = Verdict(False, [static], program.sha, card.id, task_name)
    if static.passed:
        payload = {"source": program.source, "card_path": card.path, "recording": str(Path(recording).resolve()), "shaping": shaping}
        (workdir / REWARDS_FILE).unlink(missing_ok=True)
        result = run_job("check", payload, workdir, limits or Limits.for_check())
        verdict.network_isolated = result.result.get("network_isolated")
        verdict.confinement = result.result.get("confinement")
        if isinstance(result.result.get("failed"), dict):
            verdict.checks.append(_failure(result.result["failed"]))
        elif result.ok:
            verdict.checks += _judge(result.result.get("calls"), card, Path(recording), fitness, workdir, potential)
        else:
            kind = {"call_timeout": "timeout", "wall_timeout": "timeout"}.get(result.killed, "sandbox")
            verdict.checks.append(CheckResult("dry_run", False, result.error or "the check produced no result", kind=kind))
    verdict.accepted = all(c.passed for c in verdict.checks)
    write_json(workdir / "critic.json", verdict.to_dict())
    return verdict


def _failure(d: dict[str, Any]) -> CheckResult:
    """The child's report of the call that failed: its text is the program's own, kept as text."""
    name = d.get("name") if d.get("name") in ("static", "dry_run") else "dry_run"
    where = d.get("details") if isinstance(d.get("details"), dict) else {}
    details = {"transition": where["transition"]} if isinstance(where.get("transition"), int) else {}
    return CheckResult(str(name), False, str(d.get("message", ""))[:4000], details, kind=str(d.get("kind", "exception"))[:40])


def _judge(raw: Any, card: EnvCard, recording: Path, fitness: str, workdir: Path, potential: bool) -> list[CheckResult]:
    """The parent's verdicts on what the program returned: dry run, probe, failing pays."""
    episodes = load_recording(recording, card)
    try:
        calls = Calls.from_json(raw, episodes)
        if potential and len(calls.resets) != len(episodes):
            raise ValueError("the reset potentials are missing")
    except ValueError as exc:
        return [CheckResult("dry_run", False, f"the check job sent back malformed results ({exc})", kind="sandbox")]
    dry, data = (judge_potential_calls if potential else judge_calls)(calls, episodes)
    checks = [dry]
    if not dry.passed:
        return checks
    # every transition's reward, for the behavioural dedupe (critic/dedupe.py)
    np.save(workdir / REWARDS_FILE, np.array([x for ep in data.totals for x in ep], dtype=np.float64))
    values = recording_fitness(card, recording, fitness, workdir)
    if isinstance(values, str):
        return checks + [CheckResult("probe", False, values, kind="fitness_error")]
    checks.append(probe_values(np.asarray(values), len(episodes), data))
    if not potential and card.termination_causes and checks[-1].passed:
        checks.append(failing_pays(episodes, data))
    return checks


def recording_fitness(card: EnvCard, recording: Path, fitness: str, workdir: Path) -> list[float] | str:
    """The fitness of every recorded episode, or why it could not be computed: from the
    sandboxed ``episode_fitness`` job, in which no reward program ever runs (a fitness a
    designer proposed is generated text too, so it is never run in this process). Cached beside
    the recording, one file per fitness expression."""
    key = hashlib.sha256(f"{card.id}\n{fitness}\n{sorted(card.measure_exprs.items())}".encode()).hexdigest()[:16]
    cache = recording.with_name(f"{recording.stem}.fitness-{key}.json")
    if cache.exists():
        return read_json(cache)["values"]
    jobdir = workdir / "fitness"
    res = run_job("episode_fitness", {"card_path": card.path, "recording": str(recording.resolve()), "fitness": fitness},
                  jobdir, Limits.for_check())
    if not res.ok:
        return res.error or "the fitness job produced no result"
    values = res.result.get("values")
    if not isinstance(values, list) or not all(type(v) is float and math.isfinite(v) for v in values):
        return "the fitness job sent back malformed values"
    write_json(cache, {"fitness": fitness, "values": values})
    return values


@job("episode_fitness")
def run_episode_fitness_job(payload: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    """Child side: the fitness of each recorded episode, in a process that never sees a reward."""
    card = load_card_file(Path(payload["card_path"]))
    episodes = load_recording(Path(payload["recording"]), card)
    try:
        fitness = fitness_function(payload["fitness"], card.measure_exprs, card.field_names)
    except RewardProgramError as exc:
        return {"ok": False, "error": exc.message}
    values: list[float] = []
    for i, ep in enumerate(episodes):
        try:
            v = float(fitness(ep))
        except Exception as exc:  # noqa: BLE001
            return {"ok": False, "error": f"the fitness function failed on recorded episode {i}: {short_traceback(exc)}"}
        if not math.isfinite(v):
            return {"ok": False, "error": f"the fitness function gave {v} on recorded episode {i}"}
        values.append(v)
    return {"ok": True, "values": values}


@job("check")
def run_check_job(payload: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    """Child side: compile and call the program on the recording; the numbers go back as they
    are (``Calls``) and the parent judges them. Returns {'ok', 'calls'} or {'ok', 'failed'}."""
    card = load_card_file(Path(payload["card_path"]))
    episodes = load_recording(Path(payload["recording"]), card)
    potential = payload.get("shaping") == "potential"
    try:
        caller: Any = (PotentialCaller if potential else RewardCaller).compile(payload["source"], float(limits["call_seconds"]))
    except RewardProgramError as exc:
        return {"ok": False, "failed": asdict(CheckResult("static", False, exc.message, kind="static")), "error": exc.message}
    except Exception as exc:  # module-level code failed while defining the program
        msg = f"the program failed while being defined: {short_traceback(exc)}"
        return {"ok": False, "failed": asdict(CheckResult("dry_run", False, msg, kind="definition")), "error": msg}
    failed, calls = (call_potential if potential else call_program)(caller, episodes, card.field_names)
    if failed is not None:
        return {"ok": False, "failed": asdict(failed), "error": f"{failed.name}: {failed.message}"}
    return {"ok": True, "calls": calls.to_json()}
