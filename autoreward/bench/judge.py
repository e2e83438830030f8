"""The ``judge`` benchmark suite: what judging a trained policy in a clean process costs.

Every candidate's numbers come from the sandboxed judge job (``train/judge.py``) after its
training job; this suite trains the shipped HalfCheetah expert at the card's default budget a
few times in one folder and reports, per candidate, the training job's wall time and the
judge's, so the judge's share is a ratio measured in one run (target <= 10 %). The suite points
the untrained baselines' cache at an empty folder, so the first candidate of each seed also
evaluates the untrained policy, as the first run with new settings does.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console

from autoreward.bench.examples import example


def run(console: Console, rounds: int = 3, steps: int = 0) -> dict[str, Any]:
    """judge_share: the judge's wall time over the training job's, median over ``rounds``
    candidates trained with the card's settings at its default budget (``steps``: another)."""
    from autoreward.cards import load_card
    from autoreward.rundir import read_json
    from autoreward.train.run import TrainSpec, train_candidate

    card = load_card("HalfCheetah-v5")
    task = card.task("run_backwards")
    steps = steps or card.budget_steps("run_backwards")
    out: dict[str, Any] = {"suite": "judge", "env": card.id, "task": "run_backwards", "steps": steps, "n_envs": card.training.n_envs,
                           "rounds": []}
    with tempfile.TemporaryDirectory(prefix="autoreward-bench-") as tmp, _cache_in(Path(tmp) / "cache"):
        for r in range(rounds):
            spec = TrainSpec(card_path=card.path, task="run_backwards", fitness=task.fitness, success=task.success,
                             source=example("halfcheetah_backwards.py"), steps=steps, seed=r % 2, save_policy=False)
            fresh = spec.seed not in {row["seed"] for row in out["rounds"]}  # else its untrained numbers are cached
            with console.status(f"round {r + 1}/{rounds}: training {steps} steps, then judging"):
                job = train_candidate(spec, Path(tmp) / f"cand{r}")
            if not job.ok:
                raise RuntimeError(f"benchmark training failed: {job.error}")
            m = read_json(Path(tmp) / f"cand{r}" / "metrics.json")
            train_s, judge_s = float(m["judge"]["training_job_seconds"]), float(m["judge"]["seconds"])
            row = {"seed": spec.seed, "untrained_evaluated": fresh, "train_job_s": round(train_s, 2), "judge_s": judge_s,
                   "share": round(judge_s / train_s, 4), "fitness": m["fitness"], "self_reported_fitness": m["self_reported"]["fitness_mean"],
                   "steps_per_second": m.get("steps_per_second")}
            out["rounds"].append(row)
            console.print(f"  round {r + 1}: training job {train_s:.1f} s, judge {judge_s:.1f} s ({100 * row['share']:.1f} %), "
                          f"fitness {m['fitness']:.3f} (self-reported {row['self_reported_fitness']:.3f})")
    shares = [r["share"] for r in out["rounds"]]
    out["judge_share"] = round(statistics.median(shares), 4)
    out["judge_seconds_median"] = round(statistics.median(r["judge_s"] for r in out["rounds"]), 2)
    out["judge_share_target"] = 0.10
    return out


@contextlib.contextmanager
def _cache_in(path: Path) -> Iterator[None]:
    """``AUTOREWARD_CACHE_DIR`` set to ``path`` for the suite, restored after."""
    old = os.environ.get("AUTOREWARD_CACHE_DIR")
    os.environ["AUTOREWARD_CACHE_DIR"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("AUTOREWARD_CACHE_DIR", None)
        else:
            os.environ["AUTOREWARD_CACHE_DIR"] = old
