"""The dry run: call the reward on every recorded transition, in order, episode ends included.

Each call must return a finite float and finite float components; the reward must be
deterministic on replay and not constant. Components that do not add up to the total are a
warning, not a rejection: such a reward trains as well as any (Eureka-style rewards are often
``exp(t * sum(terms))`` or a product of terms), and the difference is reported as its own
``(not in components)`` term. Magnitudes and the time per call are reported. A plain function over recorded episodes and a :class:`RewardCaller`, so it runs in
the sandboxed child in production and in-process in tests (on trusted programs).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from autoreward.critic.verdict import CheckResult, stats
from autoreward.program import NOT_IN_COMPONENTS, PotentialCaller, RewardCaller, RewardOutputError, not_in_components
from autoreward.sandbox.child import CallTimeout, short_traceback

REPLAY_EPISODES = 3  # replayed with fresh memory to check determinism
#: a reward slower than this per call on average (after SLOW_AFTER calls) is rejected: each call
#: stays under the per-call budget, yet training would take hours and the dry run its whole job's
#: wall clock (rewards here take microseconds; 50 ms is 20,000 steps in 17 minutes of reward alone)
SLOW_MEAN_S = 0.05
SLOW_AFTER = 20
#: a total larger than this at any recorded transition goes back to the designer before training:
#: the policy soon visits states past the recording's, where a term such as exp(velocity) grows
#: without bound (5.5e13 on a random policy's recording became an infinite total at training's
#: first evaluation); the shipped rewards stay within 1e2 per step
MAX_ABS_TOTAL = 1e6


@dataclass
class DryRun:
    """What the dry run measured, for the probe: per-episode totals and every component."""

    totals: list[list[float]] = field(default_factory=list)
    components: dict[str, list[float]] = field(default_factory=dict)
    calls: int = 0


def describe_state(s: Any) -> str:
    """``name=value, ...`` of a state view, short enough for an error message."""
    parts = []
    for k, v in zip(s._fields, s):
        if isinstance(v, np.ndarray):
            v = np.array2string(v, precision=3, max_line_width=200, threshold=8)
        elif isinstance(v, float):
            v = f"{v:.4g}"
        parts.append(f"{k}={v}")
    return ", ".join(parts)[:800]


def sum_mismatch(total: float, comps: dict[str, float]) -> str:
    """'' when the components add up to the total, else a message (for the warning) that names
    the likely culprit: a component left out of the total, or a term not listed."""
    if not not_in_components(total, comps):
        return ""
    s = sum(comps.values())
    tol = 1e-6 * max(1.0, abs(total), abs(s))
    left_out = [k for k, v in comps.items() if v != 0 and abs(s - v - total) <= tol]
    hint = (
        f"component {left_out[0]!r} seems to be missing from the total"
        if left_out
        else f"the total contains {total - s:+.4g} that is not in any component"
    )
    return f"the components add up to {s:.6g} but the total is {total:.6g}: {hint}. Make the total the sum of the components"


@dataclass
class Calls:
    """What calling the program on the recording produced, as plain numbers: no verdict.

    The sandboxed child, where the program runs, fills it (:func:`call_program`); the parent
    judges it (:func:`judge_calls`), so no check's outcome is computed beside the program (a
    program that patched numpy once forged the dry run's statistics and the probe's rho)."""

    totals: list[list[float]] = field(default_factory=list)  # per episode, per step
    components: list[dict[str, float]] = field(default_factory=list)  # per transition, all episodes in order
    replay: list[list[float]] = field(default_factory=list)  # the first REPLAY_EPISODES again, each afresh
    seconds: float = 0.0  # time spent in the calls
    resets: list[tuple[float, dict[str, float]]] = field(default_factory=list)  # a potential's phi(s_0) per episode

    def to_json(self) -> dict[str, Any]:
        return {"totals": self.totals, "components": self.components, "replay": self.replay, "seconds": self.seconds,
                "resets": [list(r) for r in self.resets]}

    @classmethod
    def from_json(cls, d: Any, episodes: Sequence[Any]) -> "Calls":
        """Read what the child sent, checking every shape and number: it came from the process
        that ran the program. Raises ValueError saying what was malformed."""
        if not isinstance(d, dict):
            raise ValueError("no call data")
        totals, comps, replay, seconds = d.get("totals"), d.get("components"), d.get("replay"), d.get("seconds")
        lengths = [ep.length for ep in episodes]
        if not isinstance(totals, list) or [len(t) if isinstance(t, list) else -1 for t in totals] != lengths:
            raise ValueError("the rewards do not match the recording's episodes")
        if not isinstance(replay, list) or [len(t) if isinstance(t, list) else -1 for t in replay] != lengths[: len(replay)]:
            raise ValueError("the replayed rewards do not match the recording's episodes")
        if not isinstance(comps, list) or len(comps) != sum(lengths) or not all(isinstance(c, dict) for c in comps):
            raise ValueError("the components do not match the recording's transitions")
        numbers = [x for t in [*totals, *replay] for x in t] + [v for c in comps for v in c.values()]
        if not all(type(x) is float and math.isfinite(x) for x in numbers) or not all(type(k) is str for c in comps for k in c):
            raise ValueError("a value is not a finite float")
        if type(seconds) not in (int, float) or not math.isfinite(seconds) or seconds < 0:
            raise ValueError("the call time is not a number")
        resets = d.get("resets") or []
        if not isinstance(resets, list) or not all(isinstance(r, list) and len(r) == 2 and isinstance(r[1], dict) for r in resets):
            raise ValueError("the reset potentials are malformed")
        if resets and len(resets) != len(episodes):
            raise ValueError("the reset potentials do not match the recording's episodes")
        values = [r[0] for r in resets] + [v for r in resets for v in r[1].values()]
        if not all(type(x) is float and math.isfinite(x) for x in values) or not all(type(k) is str for r in resets for k in r[1]):
            raise ValueError("a reset potential is not a finite float")
        return cls(totals, comps, replay, float(seconds), [(r[0], r[1]) for r in resets])


def _fail(where: str, message: str, kind: str, calls: int) -> CheckResult:
    return CheckResult("dry_run", False, f"at {where}: {message}", {"transition": calls}, kind=kind)


def call_program(caller: RewardCaller, episodes: Sequence[Any], field_names: Sequence[str] = ()) -> tuple[CheckResult | None, Calls]:
    """Call ``caller`` on every transition of ``episodes`` in order, each episode with a fresh
    instance of the program and a fresh ``memory``, then replay the first episodes afresh. The
    first call that fails (raises, returns a malformed value, runs out of time) is returned as a
    failed check with where and why; otherwise None and the numbers, for :func:`judge_calls`."""
    out = Calls()
    n = 0
    for ei, ep in enumerate(episodes):
        memory: dict[str, Any] = {}
        ep_totals: list[float] = []
        for t in range(ep.length):
            prev, action, state = ep.states[t], ep.actions[t], ep.states[t + 1]
            where = f"transition {n} (episode {ei}, step {t}{', the last of its episode' if t == ep.length - 1 else ''})"
            t0 = time.perf_counter()
            try:
                if t == 0:
                    caller = caller.episode()
                total, comps = caller(prev, action, state, memory)
            except CallTimeout as exc:
                return _fail(where, str(exc), "timeout", n), out
            except RewardOutputError as exc:
                return _fail(where, f"{exc}. state: {describe_state(state)}", "output", n), out
            except MemoryError:
                return _fail(where, "the memory limit was exceeded (MemoryError)", "memory", n), out
            except Exception as exc:  # noqa: BLE001 - report, don't crash
                hint = ""
                if isinstance(exc, AttributeError) and "'State'" in str(exc) and field_names:
                    hint = f" The state has only these attributes: {', '.join(field_names)}."
                return _fail(where, f"{short_traceback(exc)}.{hint} prev: {describe_state(prev)}; state: {describe_state(state)}", "exception", n), out
            out.seconds += time.perf_counter() - t0
            n += 1
            if n >= SLOW_AFTER and out.seconds / n > SLOW_MEAN_S:
                return _fail(where, _too_slow(out.seconds / n, n), "timeout", n - 1), out
            ep_totals.append(total)
            out.components.append(comps)
        out.totals.append(ep_totals)
    for ei, ep in enumerate(episodes[:REPLAY_EPISODES]):
        memory = {}
        caller = caller.episode()
        try:
            out.replay.append([caller(ep.states[t], ep.actions[t], ep.states[t + 1], memory)[0] for t in range(ep.length)])
        except Exception as exc:  # noqa: BLE001 - it did not fail the first time: not deterministic
            msg = f"not deterministic: episode {ei} failed on replay ({short_traceback(exc)}) but not the first time; {_DETERMINISM}"
            return CheckResult("dry_run", False, msg, kind="nondeterministic"), out
    return None, out


_DETERMINISM = "use only prev, action, state and memory (no random numbers, no state kept outside memory)"


def _too_slow(mean: float, calls: int) -> str:
    return (f"too slow: a call took {1000 * mean:.0f} ms on average over {calls} calls, longer than the "
            f"{1000 * SLOW_MEAN_S:.0f} ms a reward may take; training would spend hours in the reward. "
            "Compute only what the task needs from prev, action and state (no large arrays or loops)")


def judge_calls(calls: Calls, episodes: Sequence[Any]) -> tuple[CheckResult, DryRun]:
    """The dry run's verdict on what the program returned (in the parent, never beside the
    program): deterministic on replay, not constant, fast enough; components that do not add
    up to the total are a warning and become the ``(not in components)`` term."""
    data = DryRun(totals=calls.totals, calls=len(calls.components))
    for ei, again in enumerate(calls.replay):
        for t, total in enumerate(again):
            first = calls.totals[ei][t]
            if not math.isclose(total, first, rel_tol=1e-9, abs_tol=1e-12):
                msg = f"not deterministic: episode {ei} step {t} gave {first!r} the first time and {total!r} on replay; {_DETERMINISM}"
                return CheckResult("dry_run", False, msg, kind="nondeterministic"), data
    if data.calls >= SLOW_AFTER and calls.seconds / data.calls > SLOW_MEAN_S:
        return CheckResult("dry_run", False, _too_slow(calls.seconds / data.calls, data.calls), kind="timeout"), data
    flat = np.array([x for ep in calls.totals for x in ep])
    if not flat.size:
        return CheckResult("dry_run", False, "the recording has no transitions", kind="no_transitions"), data
    if float(np.std(flat)) <= 1e-12 * max(1.0, float(np.abs(flat).max())):
        msg = f"constant: it returned {flat[0]!r} for all {data.calls} transitions, so it cannot guide learning"
        return CheckResult("dry_run", False, msg, kind="constant"), data
    too_large = _too_large(flat, calls)
    if too_large:
        return CheckResult("dry_run", False, too_large, kind="magnitude"), data
    residuals: list[float] = []  # total - sum(components) per transition
    first_mismatch = ""
    for i, (total, comps) in enumerate(zip(flat.tolist(), calls.components)):
        residuals.append(not_in_components(total, comps))
        for k, v in comps.items():
            data.components.setdefault(k, []).append(v)
        if residuals[-1] and not first_mismatch:
            first_mismatch = f"at transition {i}: {sum_mismatch(total, comps)}"
    mismatched = sum(1 for r in residuals if r)
    if mismatched:  # every transition gets the term (0 where they agree), so the probe can rank it
        data.components[NOT_IN_COMPONENTS] = residuals
    details = {
        "transitions": data.calls,
        "episodes": len(episodes),
        "total": stats(flat),
        "components": {k: stats(np.array(v)) for k, v in data.components.items()},
        "per_call_us": round(1e6 * calls.seconds / max(data.calls, 1), 2),
    }
    result = CheckResult("dry_run", True, f"{data.calls} transitions over {len(episodes)} episodes", details)
    if mismatched:
        details["not_in_components"] = {"transitions": mismatched, "first": first_mismatch}
        result.warnings.append(
            f"the total is not the sum of its components at {mismatched} of {data.calls} transitions ({first_mismatch}). "
            f"It is accepted and trains; the difference is shown as the '{NOT_IN_COMPONENTS}' term. An additive total "
            "(total = sum of the components) lets each term's effect be read"
        )
    return result, data


def _too_large(flat: np.ndarray, calls: Calls) -> str:
    """Where the largest total exceeds MAX_ABS_TOTAL, the message naming its transition and the
    term that made it, else ""."""
    at = int(np.argmax(np.abs(flat)))
    if not abs(float(flat[at])) > MAX_ABS_TOTAL:
        return ""
    ep, step = at, 0
    for ep, totals in enumerate(calls.totals):  # flat index -> (episode, step)
        if step + len(totals) > at:
            step = at - step
            break
        step += len(totals)
    comps = calls.components[at] if at < len(calls.components) else {}
    term = max(comps, key=lambda k: abs(comps[k])) if comps else ""
    why = f"its largest term is '{term}' = {comps[term]:.3g}" if term else "it has no components to say which term"
    return (f"too large: the total reached {float(flat[at]):.3g} at episode {ep} step {step} of the recording ({why}); "
            f"a step's reward must stay within +-{MAX_ABS_TOTAL:g}, and a trained policy reaches states past the "
            "recording's: bound exponentials and powers of the state (clip their argument, or use tanh or 1/(1+x))")


def dry_run(caller: RewardCaller, episodes: Sequence[Any], field_names: Sequence[str] = ()) -> tuple[CheckResult, DryRun]:
    """Both halves in one process, for tests on trusted programs: :func:`call_program`, then
    :func:`judge_calls`. Production runs the first in the sandboxed child, the second in the parent."""
    failed, calls = call_program(caller, episodes, field_names)
    if failed is not None:
        return failed, DryRun(totals=calls.totals, calls=len(calls.components))
    return judge_calls(calls, episodes)


class _PotentialOfNextState:
    """A potential seen through the reward's calling convention: phi(state) for each transition,
    so :func:`call_program` calls phi on every state after a step with the same messages."""

    def __init__(self, potential: PotentialCaller) -> None:
        self.potential = potential

    def episode(self) -> "_PotentialOfNextState":
        return _PotentialOfNextState(self.potential.episode())

    def __call__(self, prev: Any, action: Any, state: Any, memory: dict[str, Any]) -> tuple[float, dict[str, float]]:
        return self.potential(state)


def call_potential(potential: PotentialCaller, episodes: Sequence[Any], field_names: Sequence[str] = ()) -> tuple[CheckResult | None, Calls]:
    """:func:`call_program` for a potential: phi on every state after a step, then phi on each
    episode's reset state (``Calls.resets``, one ``[phi, components]`` per episode)."""
    failed, calls = call_program(_PotentialOfNextState(potential), episodes, field_names)  # type: ignore[arg-type]
    if failed is not None:
        return failed, calls
    for ei, ep in enumerate(episodes):
        try:
            phi0, comps0 = potential.episode()(ep.states[0])
        except Exception as exc:  # noqa: BLE001 - report, don't crash
            msg = f"at the reset state of episode {ei}: {short_traceback(exc)}. state: {describe_state(ep.states[0])}"
            return CheckResult("dry_run", False, msg, kind="output" if isinstance(exc, RewardOutputError) else "exception"), calls
        calls.resets.append((phi0, comps0))
    return None, calls


def judge_potential_calls(calls: Calls, episodes: Sequence[Any]) -> tuple[CheckResult, DryRun]:
    """The dry run of a potential (``--shaping potential``), checked like a reward: phi on every
    recorded state must be a finite float with finite components, deterministic on replay and not
    constant (a constant phi shapes nothing).

    What the probe and the behavioural dedupe then see is each transition's change of potential,
    ``phi(s') - phi(s)`` (and each term's own change as its component): summed over an episode it
    is the potential gained, which must rise with the task's fitness. Training pays
    ``gamma * phi(s') - phi(s)``, whose extra ``-(1 - gamma) * phi(s')`` per step only cancels in
    the discounted return: summed plainly over 200 recorded steps it outweighs the gain (a right
    way potential, -x for running backwards, ranked rollouts at rho = -0.84), so the direction is
    judged on the change alone."""
    result, next_phi = judge_calls(calls, episodes)
    if not result.passed:
        return result, next_phi
    data = DryRun(calls=next_phi.calls)
    starts = np.cumsum([0] + [ep.length for ep in episodes])
    for ei, ep in enumerate(episodes):
        phi0, comps0 = calls.resets[ei]
        comps0 = {**comps0, NOT_IN_COMPONENTS: not_in_components(phi0, comps0)}
        phis = [phi0, *next_phi.totals[ei]]
        data.totals.append([phis[t + 1] - phis[t] for t in range(ep.length)])
        for k, vals in next_phi.components.items():
            if len(vals) == next_phi.calls:  # terms present at every state only, as the probe ranks them
                c = [comps0.get(k, 0.0), *vals[starts[ei]:starts[ei + 1]]]
                data.components.setdefault(k, []).extend(c[t + 1] - c[t] for t in range(ep.length))
    details = dict(result.details)
    details.update(potential=details.pop("total"), total=stats(np.array([x for ep in data.totals for x in ep])))
    msg = f"phi on {data.calls + len(episodes)} states over {len(episodes)} episodes"
    return CheckResult("dry_run", True, msg, details, warnings=result.warnings), data


def dry_run_potential(potential: PotentialCaller, episodes: Sequence[Any], field_names: Sequence[str] = ()) -> tuple[CheckResult, DryRun]:
    """Both halves of a potential's dry run in one process, for tests on trusted programs."""
    failed, calls = call_potential(potential, episodes, field_names)
    if failed is not None:
        return failed, DryRun(totals=calls.totals, calls=len(calls.components))
    return judge_potential_calls(calls, episodes)
