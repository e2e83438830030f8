"""The ``metaworld`` benchmark suite (``autoreward bench --suite metaworld``).

Two questions, answered in one run:

1. How fast are the Meta-World envs? Raw env steps/s under random actions, the same with the
   card's reward state read every step, and SAC training steps/s (from the training jobs).
2. What does SAC reach on a 2-core machine within a feasible budget? SAC with the card's
   hyperparameters is trained on the env's own dense reward (Meta-World's expert-written one,
   the ``env_objective``) and on a hand-written reward program (``examples/metaworld/``,
   standing in for a good designer answer), same budget, seeds and evaluation, on reach,
   button-press-topdown and drawer-open. The success rate of a job is its final evaluation's:
   deterministic actions, episodes seeded 10000.. (so every job sees the same goals), an
   episode succeeds when the env reported success at any step (the preset's fitness is 1).

Knobs (environment variables):

* ``AUTOREWARD_BENCH_METAWORLD_STEPS``: SAC steps per job (default :data:`DEFAULT_STEPS`);
* ``AUTOREWARD_BENCH_METAWORLD_SEEDS``: seeds per task and reward (default 3);
* ``AUTOREWARD_BENCH_METAWORLD_EPISODES``: evaluation episodes per job (default 10);
* ``AUTOREWARD_BENCH_METAWORLD_PARALLEL``: jobs at once (default 2, one torch thread each);
* ``AUTOREWARD_BENCH_METAWORLD_TASKS``: comma-separated card ids (default the three above);
* ``AUTOREWARD_BENCH_METAWORLD_TRAINER``: ``sb3`` (default) or ``sbx`` (SAC in JAX, about twice
  as fast here, so a larger budget fits the same time).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rich.console import Console

from autoreward.bench.crafter import _env_int, _spread
from autoreward.bench.examples import EXAMPLES, example

#: card id -> the hand-written reward in examples/metaworld/
TASKS: dict[str, str] = {
    "MetaWorld-reach-v3": "metaworld/reach_reward.py",
    "MetaWorld-button-press-topdown-v3": "metaworld/press_button_reward.py",
    "MetaWorld-drawer-open-v3": "metaworld/open_drawer_reward.py",
}
DEFAULT_STEPS = 5_000  # 10 episodes of 500 steps: what 18 SAC jobs fit in ~40 min on 2 shared cores
DEFAULT_SEEDS = 3
DEFAULT_EPISODES = 10
DEFAULT_PARALLEL = 2
THROUGHPUT_STEPS = 2000
KINDS = ("env_reward", "hand_written")


def run(console: Console) -> dict[str, Any]:
    """Run the suite; returns plain data (top-level scalars are the headline numbers)."""
    from autoreward.cards import load_card

    steps = _env_int("AUTOREWARD_BENCH_METAWORLD_STEPS", DEFAULT_STEPS, minimum=200)
    n_seeds = _env_int("AUTOREWARD_BENCH_METAWORLD_SEEDS", DEFAULT_SEEDS)
    episodes = _env_int("AUTOREWARD_BENCH_METAWORLD_EPISODES", DEFAULT_EPISODES)
    parallel = _env_int("AUTOREWARD_BENCH_METAWORLD_PARALLEL", DEFAULT_PARALLEL)
    ids = [t.strip() for t in os.environ.get("AUTOREWARD_BENCH_METAWORLD_TASKS", ",".join(TASKS)).split(",") if t.strip()]
    unknown = [t for t in ids if t not in TASKS]
    if unknown:
        raise RuntimeError(f"AUTOREWARD_BENCH_METAWORLD_TASKS: no hand-written reward for {unknown}; use some of {list(TASKS)}")
    trainer = os.environ.get("AUTOREWARD_BENCH_METAWORLD_TRAINER", "sb3").strip() or "sb3"
    if trainer not in ("sb3", "sbx"):
        raise RuntimeError(f"AUTOREWARD_BENCH_METAWORLD_TRAINER={trainer!r}: use sb3 or sbx")
    cards = {t: load_card(t) for t in ids}
    sources = {t: example(TASKS[t]) for t in ids}
    t_start = time.perf_counter()
    card0 = cards[ids[0]]
    results: dict[str, Any] = {
        "suite": "metaworld",
        "tasks": ids,
        "algo": card0.training.algo,
        "trainer": trainer,
        "steps_per_job": steps,
        "seeds": n_seeds,
        "eval_episodes": episodes,
        "parallel_jobs": parallel,
        "hyperparams": card0.training.hyperparams.get(card0.training.algo, {}),
        "hyperparams_source": card0.training.source,
        "hand_written_reward_files": {t: str(EXAMPLES / TASKS[t]) for t in ids},
        "success_definition": "final evaluation: deterministic policy, 500-step episodes seeded 10000.., an episode "
                              "succeeds when the env's own success flag was set at any step",
    }
    results["throughput"] = _throughput(console, cards)
    jobs = [(t, kind, seed) for t in ids for seed in range(n_seeds) for kind in KINDS]
    outcome = _train_jobs(console, cards, sources, jobs, steps, episodes, parallel, trainer)
    per_task: dict[str, Any] = {}
    for t in ids:
        entry: dict[str, Any] = {}
        for kind in KINDS:
            rows = [outcome[(t, kind, s)] for s in range(n_seeds)]
            good = [r for r in rows if r["ok"]]
            entry[kind] = {
                "success_rate": _spread([r["success_rate"] for r in good]),
                "fitness": _spread([r["fitness_mean"] for r in good]),
                "train_steps_per_s": _spread([r["steps_per_second"] for r in good]),
                "failed_seeds": [s for s, r in enumerate(rows) if not r["ok"]],
                "jobs": rows,
            }
            results[f"{t}_{kind}_success_mean"] = entry[kind]["success_rate"]["mean"]
        per_task[t] = entry
        console.print(f"{t}: env reward {_fmt(entry['env_reward'])}, hand-written {_fmt(entry['hand_written'])}", highlight=False)
    results["per_task"] = per_task
    rates = [r["steps_per_second"] for r in outcome.values() if r["ok"]]
    results["train_steps_per_s_mean"] = round(sum(rates) / len(rates), 1) if rates else None
    results["wall_s"] = round(time.perf_counter() - t_start, 1)
    return results


def _throughput(console: Console, cards: dict[str, Any]) -> dict[str, Any]:
    """Raw env steps/s and with the card's reward state, per task, best of 2 (shared machine)."""
    from autoreward.cards import StateExtractor
    from autoreward.metaworld.env import metaworld_throughput

    out: dict[str, Any] = {}
    with console.status("Meta-World env throughput"):
        for cid, card in cards.items():
            env = card.make_env()
            raw = max(metaworld_throughput(env, THROUGHPUT_STEPS) for _ in range(2))
            state = StateExtractor(card, env)
            with_state = max(metaworld_throughput(env, THROUGHPUT_STEPS, state=state) for _ in range(2))
            env.close()
            out[cid] = {"raw_steps_per_s": round(raw, 1), "with_state_steps_per_s": round(with_state, 1)}
            console.print(f"{cid}: {raw:.0f} env steps/s raw, {with_state:.0f} with the reward state", highlight=False)
    return out


def _train_jobs(
    console: Console, cards: dict[str, Any], sources: dict[str, str], jobs: list[tuple[str, str, int]],
    steps: int, episodes: int, parallel: int, trainer: str = "sb3",
) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Train every (task, reward kind, seed) job, ``parallel`` at a time; one row per job."""
    from autoreward.sandbox import Limits
    from autoreward.train.run import TrainSpec, train_candidate

    limits = Limits(wall_seconds=900.0 + steps / 10.0, cpu_seconds=int(1800 + steps / 5), memory_mb=6144, call_seconds=2.0)
    lock = threading.Lock()
    outcome: dict[tuple[str, str, int], dict[str, Any]] = {}

    with tempfile.TemporaryDirectory(prefix="autoreward-bench-metaworld-") as tmp:
        root = Path(tmp)

        def one(job: tuple[str, str, int]) -> None:
            cid, kind, seed = job
            card = cards[cid]
            name, task = next(iter(card.tasks.items()))
            spec = TrainSpec(
                card_path=card.path, task=name, fitness=task.fitness, success=task.success,
                source=sources[cid] if kind == "hand_written" else None, steps=steps, seed=seed,
                eval_every=steps, eval_episodes=episodes, device="cpu", threads=1, save_policy=False, trainer=trainer,
            )
            res = train_candidate(spec, root / f"{cid}-{kind}-{seed}", limits)
            m = res.result if res.ok else {}
            row: dict[str, Any] = {"ok": bool(res.ok and m.get("ok")), "wall_s": round(res.wall_seconds, 1)}
            if row["ok"]:
                env_analysis = m.get("env_analysis", {})
                row.update(
                    success_rate=float(m["final"]["success_rate"]), fitness_mean=float(m["final"]["fitness_mean"]),
                    steps_per_second=float(m["steps_per_second"]), env_return_mean=float(m["final"]["env_return_mean"]),
                    untrained_success_rate=float(m["untrained"]["success_rate"]),
                    analysis={k: v for k, v in env_analysis.items() if k not in ("text", "fitnesses")},
                )
            else:
                row["error"] = res.error or m.get("error") or "unknown failure"
            with lock:
                outcome[job] = row
                msg = (f"success {row['success_rate']:.2f}, fitness {row['fitness_mean']:.2f}, {row['steps_per_second']:.0f} SAC steps/s"
                       if row["ok"] else f"FAILED: {row['error']}")
                console.print(f"[{len(outcome)}/{len(jobs)}] {cid} {kind} seed {seed}: {msg} ({row['wall_s']:.0f} s)", highlight=False)

        with console.status(f"SAC on Meta-World: {len(jobs)} jobs of {steps} steps, {parallel} at a time"):
            with ThreadPoolExecutor(max_workers=parallel) as pool:
                list(pool.map(one, jobs))
    return outcome


def _fmt(s: dict[str, Any]) -> str:
    if s["success_rate"]["mean"] is None:
        return "n/a"
    return f"{s['success_rate']['mean']:.2f}±{s['success_rate']['std']:.2f} {s['success_rate']['per_seed']}"
