"""Successive halving over the accepted candidates of an iteration: spend env steps where they pay.

Every candidate trains the first rung's fraction of the budget; the better part by task fitness
(ties broken by the candidate's own return) continues from where it stopped, and so on until the
survivors have had the full budget. A candidate whose training fails or whose fitness is not a
finite number is cut at once. With the default schedule (0.25, 0.5, 1.0; keep half) a pool of n
candidates costs about n/2 full trainings instead of n.

Each rung trains in ``<candidate>/rung<k>/`` (a later rung continues the earlier rung's saved
policy, normalization statistics and, for off-policy algorithms, replay buffer). When a candidate
is cut or finishes, its last rung's results are copied up into the candidate folder with a
``halving`` record, so the analyzer, ``show`` and ``export`` read it like any other candidate.
The decisions are made again from the rung results on resume, so a killed run ends the same way.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.markup import escape

from autoreward.executors import Executor
from autoreward.rundir import read_json, write_json
from autoreward.train.run import TrainSpec

COPIED = ("policy.zip", "vecnormalize.pkl", "normalization.npz", "progress.csv")


@dataclass(frozen=True)
class Schedule:
    """The rung fractions of the full budget (ascending, the last 1.0) and the fraction kept."""

    rungs: tuple[float, ...] = (0.25, 0.5, 1.0)
    keep: float = 0.5


def _finished_without_halving(cand: Path) -> bool:
    m = cand / "metrics.json"
    return m.exists() and "halving" not in read_json(m)


def _rank_key(m: dict[str, Any]) -> tuple[float, float]:
    """Judged numbers only (``train/judge.py``): fitness, then success rate. The candidate's own
    return once broke ties, and a reward can make its own return anything."""
    return float(m["fitness"]), float(m.get("success_rate") or 0.0)


def _usable(m: dict[str, Any]) -> bool:
    return bool(m.get("ok")) and m.get("fitness") is not None and math.isfinite(float(m["fitness"]))


def _finalize(cand: Path, rung: int, steps: int, schedule: Schedule, cut: str) -> None:
    rung_dir = cand / f"rung{rung}"
    m = read_json(rung_dir / "metrics.json")
    for name in COPIED:
        if (rung_dir / name).exists():
            shutil.copy2(rung_dir / name, cand / name)
    m["halving"] = {"rung": rung, "steps": steps, "rungs": list(schedule.rungs), "keep": schedule.keep, "cut": cut}
    if cut and m.get("ok"):
        m["partial"] = True  # trained on part of the budget only
    write_json(cand / "metrics.json", m)


def successive_halving(
    cands: list[Path], make_spec: Callable[[Path], TrainSpec], pool: Executor, schedule: Schedule, console: Console
) -> list[dict[str, Any]]:
    """Train ``cands`` by successive halving; returns one record per rung (also for the log)."""
    alive = [c for c in cands if not _finished_without_halving(c)]
    log: list[dict[str, Any]] = []
    if not alive:
        return log
    for k, frac in enumerate(schedule.rungs):
        last = k == len(schedule.rungs) - 1
        full = make_spec(alive[0]).steps if alive else 0
        steps = full if last else max(1, int(round(full * frac)))
        pending = [c for c in alive if not (c / f"rung{k}" / "metrics.json").exists()]
        futures = []
        for cand in pending:
            base = make_spec(cand)  # evaluations on the full budget's grid, so the rungs make one curve
            spec = replace(base, steps=steps, save_policy=True, save_replay_buffer=not last, eval_every=base.eval_every or max(full // 5, 1),
                           continue_dir=str(cand / f"rung{k - 1}") if k else "")
            futures.append(pool.submit(spec, cand / f"rung{k}"))
        if pending:
            console.print(f"  rung {k}: training {len(pending)} candidate(s) to {steps} steps, {min(pool.workers, len(pending))} at a time")
        for f in futures:
            f.result()
        results = {c: read_json(c / f"rung{k}" / "metrics.json") for c in alive}
        ranked = sorted([c for c in alive if _usable(results[c])], key=lambda c: _rank_key(results[c]), reverse=True)
        n_keep = len(ranked) if last else max(1, math.ceil(len(ranked) * schedule.keep))
        record: dict[str, Any] = {"rung": k, "steps": steps, "fitness": {}, "kept": [], "cut": {}}
        for cand in alive:
            m, name = results[cand], cand.name
            record["fitness"][name] = m.get("fitness") if _usable(m) else None
            if not _usable(m):
                why = m.get("error") or f"fitness {m.get('fitness')} is not a finite number"
                record["cut"][name] = f"failed at rung {k}: {why}"
            elif cand in ranked[:n_keep]:
                record["kept"].append(name)
            else:
                record["cut"][name] = f"ranked {ranked.index(cand) + 1} of {len(ranked)} at rung {k} ({steps} steps)"
        for cand in alive:
            if cand.name in record["cut"]:
                _finalize(cand, k, steps, schedule, record["cut"][cand.name])
            elif last:
                _finalize(cand, k, steps, schedule, "")
        shown = ", ".join(f"{n} {v:.3g}" if v is not None else f"{n} failed" for n, v in record["fitness"].items())
        console.print(f"  rung {k} ({steps} steps): {escape(shown)}" + ("" if last else f"; continuing: {', '.join(record['kept']) or 'none'}"))
        log.append(record)
        alive = [c for c in alive if c.name in record["kept"]]
        if not alive:
            break
    return log
