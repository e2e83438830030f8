"""The Critic's checks that need no LLM, in order, stopping at the first failure.

1. static policy (``program.check_source``), in the parent: it only parses;
2. dry run in the sandbox over >= 1,000 recorded transitions from diverse rollouts, episode
   ends included: every call returns a finite float and finite float components, is
   deterministic, is not constant; magnitudes and per-call time are reported;
3. behaviour probe: Spearman rank correlation between the candidate's episode returns and the
   task's fitness over those rollouts; a reward pointing the wrong way is rejected.

Each check returns a :class:`CheckResult` (data, like SB3's ``env_checker`` findings) whose
message is precise enough for an LLM to repair the code. The verdict is saved as JSON.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autoreward.envcards import EnvCard, StateExtractor, load_card_file
from autoreward.episode import Episode, behaviour_policies, load_recording, rollout, save_recording
from autoreward.program import RewardProgram, check_source
from autoreward.rundir import write_json
from autoreward.sandbox import Limits, run_job

MIN_TRANSITIONS = 1000
PROBE_EPISODES = 24
WRONG_WAY_RHO = -0.2  # at or below: the reward points against the task
WEAK_RHO = 0.2  # below: accepted with a warning


@dataclass
class CheckResult:
    """The outcome of one check."""

    name: str
    passed: bool
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Verdict:
    """The Critic's structured verdict on one program (saved as ``critic.json``)."""

    accepted: bool
    checks: list[CheckResult]
    program_sha: str = ""
    env_id: str = ""
    task: str = ""
    network_isolated: bool | None = None

    @property
    def failed(self) -> CheckResult | None:
        return next((c for c in self.checks if not c.passed), None)

    @property
    def message(self) -> str:
        f = self.failed
        return f"{f.name}: {f.message}" if f else "accepted"

    @property
    def warnings(self) -> list[str]:
        return [w for c in self.checks for w in c.warnings]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["message"] = self.message
        d["warnings"] = self.warnings
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Verdict":
        checks = [CheckResult(**c) for c in d.get("checks", [])]
        return cls(
            accepted=bool(d["accepted"]),
            checks=checks,
            program_sha=d.get("program_sha", ""),
            env_id=d.get("env_id", ""),
            task=d.get("task", ""),
            network_isolated=d.get("network_isolated"),
        )


# ---------------------------------------------------------------------------------------------
# Recording diverse rollouts (trusted: runs the env, never the candidate)


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


# ---------------------------------------------------------------------------------------------
# Parent side


def check_program(
    program: RewardProgram,
    card: EnvCard,
    task_name: str,
    workdir: Path,
    recording: Path,
    fitness_expr: str | None = None,
    limits: Limits | None = None,
) -> Verdict:
    """Run the checks in order and save the verdict to ``workdir/critic.json``."""
    workdir.mkdir(parents=True, exist_ok=True)
    task = card.task(task_name) if fitness_expr is None else None
    fitness = fitness_expr if fitness_expr is not None else task.fitness  # type: ignore[union-attr]
    checks: list[CheckResult] = []
    findings = check_source(program.source)
    static = CheckResult(
        "static",
        not findings,
        "; ".join(str(f) for f in findings),
        {"findings": [asdict(f) for f in findings]},
    )
    checks.append(static)
    verdict = Verdict(False, checks, program.sha, card.id, task_name)
    if static.passed:
        payload = {
            "source": program.source,
            "card_path": card.path,
            "recording": str(Path(recording).resolve()),
            "fitness": fitness,
        }
        job = run_job("check", payload, workdir, limits or Limits.for_check())
        verdict.network_isolated = job.result.get("network_isolated")
        if job.result.get("checks"):
            checks += [CheckResult(**c) for c in job.result["checks"]]
        else:
            checks.append(CheckResult("dry_run", False, job.error or "the check produced no result"))
    verdict.accepted = all(c.passed for c in checks)
    write_json(workdir / "critic.json", verdict.to_dict())
    return verdict


# ---------------------------------------------------------------------------------------------
# Child side (runs inside autoreward.worker)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _as_float(x: Any) -> Any:
    if isinstance(x, np.ndarray) and x.size == 1:
        x = x.reshape(()).item()
    if isinstance(x, np.generic):
        x = x.item()
    return x


class RewardOutputError(ValueError):
    """The reward function returned something that is not (finite float, {name: finite float})."""


def validate_output(out: Any) -> tuple[float, dict[str, float]]:
    """Turn a reward function's return value into (total, components) or raise RewardOutputError
    with a message saying exactly what was wrong."""
    # fast path for the common, well-formed answer: this runs once per training step
    if type(out) is tuple and len(out) == 2 and type(out[0]) is float and type(out[1]) is dict and math.isfinite(out[0]):
        comps = out[1]
        if all(type(k) is str and type(v) is float and math.isfinite(v) for k, v in comps.items()):
            return out[0], comps
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise RewardOutputError(
            f"compute_reward must return a pair (total, components_dict), got {type(out).__name__}"
            + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "")
        )
    total, comps = _as_float(out[0]), out[1]
    if isinstance(total, bool) or not isinstance(total, (int, float)):
        raise RewardOutputError(f"the total reward must be a float, got {type(total).__name__}")
    if not math.isfinite(total):
        raise RewardOutputError(f"the total reward is {total}")
    if not isinstance(comps, dict):
        raise RewardOutputError(f"the components must be a dict of name -> float, got {type(comps).__name__}")
    clean: dict[str, float] = {}
    for k, v in comps.items():
        v = _as_float(v)
        if not isinstance(k, str):
            raise RewardOutputError(f"component names must be strings, got {k!r}")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise RewardOutputError(f"component {k!r} must be a float, got {type(v).__name__}")
        if not math.isfinite(v):
            raise RewardOutputError(f"component {k!r} is {v}")
        clean[k] = float(v)
    return float(total), clean


def _sum_mismatch(total: float, comps: dict[str, float]) -> str:
    """'' when the components add up to the total (the interface's contract), else a message
    that names the likely culprit: a component left out of the total, or a term not listed."""
    if not comps:
        return ""
    s = sum(comps.values())
    tol = 1e-6 * max(1.0, abs(total), abs(s))
    if abs(s - total) <= tol:
        return ""
    left_out = [k for k, v in comps.items() if v != 0 and abs(s - v - total) <= tol]
    hint = (
        f"component {left_out[0]!r} seems to be missing from the total"
        if left_out
        else f"the total contains {total - s:+.4g} that is not in any component"
    )
    return f"the components add up to {s:.6g} but the total is {total:.6g}: {hint}. Make the total the sum of the components"


def _describe_state(s: Any) -> str:
    parts = []
    for k, v in zip(s._fields, s):
        if isinstance(v, np.ndarray):
            v = np.array2string(v, precision=3, max_line_width=200, threshold=8)
        elif isinstance(v, float):
            v = f"{v:.4g}"
        parts.append(f"{k}={v}")
    return ", ".join(parts)[:800]


def run_check_job(payload: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    """Dry run and behaviour probe, in the sandboxed child. Returns {'ok', 'checks'}."""
    from scipy.stats import spearmanr

    from autoreward.episode import fitness_function
    from autoreward.errors import RewardProgramError
    from autoreward.program import compile_program
    from autoreward.worker import CallGuard, CallTimeout, short_traceback

    card = load_card_file(Path(payload["card_path"]))
    episodes = load_recording(Path(payload["recording"]), card)
    checks: list[dict[str, Any]] = []

    def fail(name: str, message: str, **details: Any) -> dict[str, Any]:
        checks.append(asdict(CheckResult(name, False, message, details)))
        return {"ok": False, "checks": checks, "error": f"{name}: {message}"}

    try:
        fn = compile_program(payload["source"])
    except RewardProgramError as exc:
        return fail("static", exc.message)
    except Exception as exc:  # module-level code failed while defining the program
        return fail("dry_run", f"the program failed while being defined: {short_traceback(exc)}")

    guard = CallGuard(float(limits["call_seconds"]))
    totals: list[list[float]] = []
    comp_values: dict[str, list[float]] = {}
    n_calls = 0
    t_calls = 0.0
    for ei, ep in enumerate(episodes):
        memory: dict[str, Any] = {}
        ep_totals: list[float] = []
        for t in range(ep.length):
            prev, action, state = ep.states[t], ep.actions[t], ep.states[t + 1]
            where = f"transition {n_calls} (episode {ei}, step {t}{', the last of its episode' if t == ep.length - 1 else ''})"
            t0 = time.perf_counter()
            try:
                out = guard.call(fn, prev, action, state, memory)
                total, comps = validate_output(out)
            except CallTimeout as exc:
                return fail("dry_run", f"at {where}: {exc}", transition=n_calls)
            except RewardOutputError as exc:
                return fail("dry_run", f"at {where}: {exc}. state: {_describe_state(state)}", transition=n_calls)
            except MemoryError:
                return fail("dry_run", f"at {where}: memory limit of {limits['memory_mb']} MB exceeded (MemoryError)", transition=n_calls)
            except Exception as exc:  # noqa: BLE001 - report, don't crash
                hint = ""
                if isinstance(exc, AttributeError) and "'State'" in str(exc):
                    hint = f" The state has only these attributes: {', '.join(card.field_names)}."
                return fail("dry_run", f"at {where}: {short_traceback(exc)}.{hint} prev: {_describe_state(prev)}; state: {_describe_state(state)}", transition=n_calls)
            t_calls += time.perf_counter() - t0
            mismatch = _sum_mismatch(total, comps)
            if mismatch:
                return fail("dry_run", f"at {where}: {mismatch}", transition=n_calls)
            n_calls += 1
            ep_totals.append(total)
            for k, v in comps.items():
                comp_values.setdefault(k, []).append(v)
        totals.append(ep_totals)

    flat = np.array([x for ep in totals for x in ep])
    # determinism: replay the first episodes with fresh memory and compare
    replay = 0
    for ei, ep in enumerate(episodes[:3]):
        memory = {}
        for t in range(ep.length):
            total, _ = validate_output(guard.call(fn, ep.states[t], ep.actions[t], ep.states[t + 1], memory))
            if not math.isclose(total, totals[ei][t], rel_tol=1e-9, abs_tol=1e-12):
                return fail(
                    "dry_run",
                    f"not deterministic: episode {ei} step {t} gave {totals[ei][t]!r} the first time and {total!r} "
                    "on replay; use only prev, action, state and memory (no random numbers, no state kept outside memory)",
                )
            replay += 1
    if float(np.std(flat)) <= 1e-12 * max(1.0, float(np.abs(flat).max())):
        return fail("dry_run", f"constant: it returned {flat[0]!r} for all {n_calls} transitions, so it cannot guide learning")

    stats = {
        "transitions": n_calls,
        "episodes": len(episodes),
        "total": _stats(flat),
        "components": {k: _stats(np.array(v)) for k, v in comp_values.items()},
        "per_call_us": round(1e6 * t_calls / max(n_calls, 1), 2),
    }
    dry = CheckResult("dry_run", True, f"{n_calls} transitions over {len(episodes)} episodes", stats)
    checks.append(asdict(dry))

    # behaviour probe
    try:
        fit_fn = fitness_function(payload["fitness"])
        fitness = np.array([fit_fn(ep) for ep in episodes])
    except Exception as exc:  # noqa: BLE001
        return fail("probe", f"the fitness function failed on a recorded episode: {short_traceback(exc)}")
    returns = np.array([sum(ep) for ep in totals])
    probe = CheckResult("probe", True)
    probe.details = {
        "episodes": len(episodes),
        "fitness": _stats(fitness),
        "returns": _stats(returns),
    }
    if float(np.std(fitness)) < 1e-9 or float(np.std(returns)) < 1e-12:
        probe.message = "inconclusive: the recorded rollouts do not vary enough to compare"
        probe.warnings.append("behaviour probe inconclusive (no variation across rollouts)")
        checks.append(asdict(probe))
        return {"ok": True, "checks": checks}
    rho = float(spearmanr(returns, fitness).statistic)
    per_comp = {}
    starts = np.cumsum([0] + [len(ep) for ep in totals[:-1]])  # every episode has >= 1 step
    for k, vals in comp_values.items():
        if len(vals) == n_calls:  # components present at every step only
            ep_sums = np.add.reduceat(np.array(vals), starts)
            if np.std(ep_sums) > 1e-12:
                per_comp[k] = round(float(spearmanr(ep_sums, fitness).statistic), 3)
    probe.details.update(spearman=round(rho, 3), component_spearman=per_comp)
    if not math.isfinite(rho):
        rho = 0.0
    if rho <= WRONG_WAY_RHO:
        against = [k for k, r in per_comp.items() if r <= WRONG_WAY_RHO]
        probe.passed = False
        probe.message = (
            f"the reward points the wrong way: over {len(episodes)} diverse rollouts, episodes with higher task "
            f"fitness get lower total reward (Spearman rho = {rho:.2f})"
            + (f"; components against the task: {', '.join(against)}" if against else "")
            + ". Check the signs and directions in the reward."
        )
    else:
        probe.message = f"Spearman rho between episode reward and task fitness = {rho:.2f}"
        if rho < WEAK_RHO:
            probe.warnings.append(f"weak agreement with the task fitness (rho = {rho:.2f})")
    checks.append(asdict(probe))
    return {"ok": probe.passed, "checks": checks, "error": "" if probe.passed else f"probe: {probe.message}"}


def _stats(a: np.ndarray) -> dict[str, float]:
    return {
        "min": float(np.min(a)),
        "mean": float(np.mean(a)),
        "max": float(np.max(a)),
        "std": float(np.std(a)),
        "mean_abs": float(np.mean(np.abs(a))),
    }


def load_verdict(path: Path) -> Verdict:
    return Verdict.from_dict(json.loads(Path(path).read_text()))
