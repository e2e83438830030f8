"""The Critic's checks that need no LLM, in order, stopping at the first failure.

1. static policy and example copy (``static``), in the parent: it only parses;
2. dry run (``dry_run``) over >= 1,000 recorded transitions from diverse rollouts;
3. behaviour probe (``probe``): does the reward rank the rollouts as the task fitness does?

:func:`check_program` runs the first in the parent and the other two in the sandboxed child,
where :func:`run_check_job` only composes them. The verdict is saved as ``critic.json``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from autoreward.cards import EnvCard, load_card_file
from autoreward.critic.dry_run import dry_run, dry_run_potential
from autoreward.critic.probe import failing_pays, probe
from autoreward.critic.static import check_static
from autoreward.critic.verdict import CheckResult, Verdict
from autoreward.episode import fitness_function, load_recording
from autoreward.errors import RewardProgramError
from autoreward.program import FUNCTION_NAME, POTENTIAL_FUNCTION, PotentialCaller, RewardCaller, RewardProgram
from autoreward.rundir import write_json
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
    the potential they gained (``dry_run.dry_run_potential``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    fitness = fitness_expr if fitness_expr is not None else card.task(task_name).fitness
    static = check_static(program.source, example, POTENTIAL_FUNCTION if shaping == "potential" else FUNCTION_NAME)
    verdict = Verdict(False, [static], program.sha, card.id, task_name)
    if static.passed:
        payload = {
            "source": program.source,
            "card_path": card.path,
            "recording": str(Path(recording).resolve()),
            "fitness": fitness,
            "rewards_path": str((workdir / REWARDS_FILE).resolve()),
            "shaping": shaping,
        }
        (workdir / REWARDS_FILE).unlink(missing_ok=True)
        result = run_job("check", payload, workdir, limits or Limits.for_check())
        verdict.network_isolated = result.result.get("network_isolated")
        verdict.confinement = result.result.get("confinement")
        if result.result.get("checks"):
            verdict.checks += [CheckResult(**c) for c in result.result["checks"]]
        else:
            kind = {"call_timeout": "timeout", "wall_timeout": "timeout"}.get(result.killed, "sandbox")
            verdict.checks.append(CheckResult("dry_run", False, result.error or "the check produced no result", kind=kind))
    verdict.accepted = all(c.passed for c in verdict.checks)
    write_json(workdir / "critic.json", verdict.to_dict())
    return verdict


@job("check")
def run_check_job(payload: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    """Child side: compile, dry run, probe. Returns {'ok', 'checks', 'error'}."""
    card = load_card_file(Path(payload["card_path"]))
    episodes = load_recording(Path(payload["recording"]), card)
    checks: list[CheckResult] = []
    potential = payload.get("shaping") == "potential"
    try:
        caller: Any = (PotentialCaller if potential else RewardCaller).compile(payload["source"], float(limits["call_seconds"]))
    except RewardProgramError as exc:
        checks.append(CheckResult("static", False, exc.message, kind="static"))
    except Exception as exc:  # module-level code failed while defining the program
        checks.append(CheckResult("dry_run", False, f"the program failed while being defined: {short_traceback(exc)}", kind="definition"))
    else:
        if potential:
            dry, data = dry_run_potential(caller, episodes, card.field_names)
        else:
            dry, data = dry_run(caller, episodes, card.field_names)
        checks.append(dry)
        if dry.passed:
            # every transition's reward, for the behavioural dedupe (critic/dedupe.py) in the parent
            np.save(Path(payload["rewards_path"]), np.array([x for ep in data.totals for x in ep], dtype=np.float64))
            try:
                fitness = fitness_function(payload["fitness"], card.measure_exprs, card.field_names)
            except RewardProgramError as exc:
                checks.append(CheckResult("probe", False, exc.message, kind="fitness_error"))
            else:
                checks.append(probe(fitness, episodes, data))
                if not potential and card.termination_causes and checks[-1].passed:
                    checks.append(failing_pays(episodes, data))
    failed = next((c for c in checks if not c.passed), None)
    return {"ok": failed is None, "checks": [asdict(c) for c in checks], "error": f"{failed.name}: {failed.message}" if failed else ""}
