"""The ``crafter`` benchmark suite (``autoreward bench --suite crafter``).

Two questions, answered in one run:

1. Does a good dense reward beat the env's own sparse reward on Crafter? PPO is trained with a
   hand-written dense reward program (``examples/crafter/<preset>_reward.py``, which the tests
   also use; it stands in for a good designer answer) and with the env's own reward (+1 per
   first unlock of any achievement, +-0.1 per health point), with the same hyperparameters,
   step budget, seeds, episode limit and evaluation protocol, on the presets ``collect_wood``
   and ``place_table``. The success rate of a job is the success rate of its final evaluation
   (deterministic actions, fixed evaluation worlds, the preset's fitness >= its success
   threshold); the same evaluation runs :data:`CURVE_POINTS` times during training for the
   learning curves. Target: dense >= 2x
   sparse on each preset. The final policy is also evaluated with sampled actions (seeded), and
   that success rate and ratio are reported beside the greedy ones: the greedy protocol is
   harsh on Crafter (a policy pushing into a wall repeats forever), and sampling narrows the gap.
2. How fast is the env? Crafter env steps/s with the compact observation (target >= 1,000 on
   one core) and with pixels, and the world-generation time of a reset.

Knobs (environment variables; defaults finish in about 20-25 minutes on a 2-core machine):

* ``AUTOREWARD_BENCH_CRAFTER_STEPS``: PPO steps per job (default :data:`DEFAULT_STEPS`);
* ``AUTOREWARD_BENCH_CRAFTER_SEEDS``: seeds per preset and reward (default 3);
* ``AUTOREWARD_BENCH_CRAFTER_EPISODES``: evaluation episodes per job and evaluation (default 20);
* ``AUTOREWARD_BENCH_CRAFTER_MAX_STEPS``: episode limit, training and evaluation (default 500);
* ``AUTOREWARD_BENCH_CRAFTER_PARALLEL``: jobs run at once (default 2; each uses one torch thread);
* ``AUTOREWARD_BENCH_CRAFTER_PRESETS``: comma-separated presets (default both);
* ``AUTOREWARD_BENCH_CRAFTER_THROUGHPUT_STEPS``: env steps of each compact throughput run
  (default 3000; pixels use half; the best of 3 runs is reported, as the machine may be shared).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rich.console import Console

from autoreward.bench.examples import EXAMPLES, example

PRESETS = ("collect_wood", "place_table")
DEFAULT_STEPS = 61_440  # 30 PPO rollouts of 2048 steps
DEFAULT_SEEDS = 3
DEFAULT_EPISODES = 20
CURVE_POINTS = 4  # evaluations during training (same protocol), for the learning curves
DEFAULT_MAX_STEPS = 500
DEFAULT_PARALLEL = 2
RATIO_TARGET = 2.0
COMPACT_TARGET = 1000.0
THROUGHPUT_REPEATS = 3  # best of, per observation mode
#: the same for dense and sparse; the card's SB3 defaults otherwise (n_steps 2048, 10 epochs)
HYPERPARAMS: dict[str, Any] = {}


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(float(raw))
    except ValueError as exc:
        raise RuntimeError(f"{name}={raw!r} is not a number") from exc
    if value < minimum:
        raise RuntimeError(f"{name}={raw!r}: must be at least {minimum}")
    return value


def dense_reward_source(preset: str) -> tuple[str, Path]:
    """The hand-written dense reward of a preset (``examples/crafter/<preset>_reward.py``)."""
    name = f"crafter/{preset}_reward.py"
    return example(name), EXAMPLES / name


def _spread(values: list[float]) -> dict[str, Any]:
    return {
        "mean": round(statistics.fmean(values), 4) if values else None,
        "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        "per_seed": [round(v, 4) for v in values],
    }


def run(console: Console) -> dict[str, Any]:
    """Run the suite; returns plain data (top-level scalars are the headline numbers)."""
    from autoreward.cards import load_card

    steps = _env_int("AUTOREWARD_BENCH_CRAFTER_STEPS", DEFAULT_STEPS, minimum=64)
    n_seeds = _env_int("AUTOREWARD_BENCH_CRAFTER_SEEDS", DEFAULT_SEEDS)
    episodes = _env_int("AUTOREWARD_BENCH_CRAFTER_EPISODES", DEFAULT_EPISODES)
    max_steps = _env_int("AUTOREWARD_BENCH_CRAFTER_MAX_STEPS", DEFAULT_MAX_STEPS)
    parallel = _env_int("AUTOREWARD_BENCH_CRAFTER_PARALLEL", DEFAULT_PARALLEL)
    tp_steps = _env_int("AUTOREWARD_BENCH_CRAFTER_THROUGHPUT_STEPS", 3000, minimum=10)
    presets = [p.strip() for p in os.environ.get("AUTOREWARD_BENCH_CRAFTER_PRESETS", ",".join(PRESETS)).split(",") if p.strip()]

    card = load_card("Crafter-v1")
    sources = {p: dense_reward_source(p) for p in presets}  # fail before any work
    for p in presets:
        card.task(p)  # an unknown preset fails here, with the card's message
    t_start = time.perf_counter()
    results: dict[str, Any] = {
        "suite": "crafter",
        "env": card.id,
        "steps_per_job": steps,
        "seeds": n_seeds,
        "eval_episodes": episodes,
        "max_episode_steps": max_steps,
        "parallel_jobs": parallel,
        "policy": card.training.policy,
        "hyperparams": {**card.training.hyperparams.get("ppo", {}), **HYPERPARAMS},
        "dense_reward_files": {p: str(src[1]) for p, src in sources.items()},
        "sparse_reward": "the env's own reward: +1 per first unlock of any achievement, +-0.1 per health point",
        "success_definition": "final evaluation success rate: deterministic policy, evaluation worlds seeded 10000.., "
                              "episode succeeds when the preset's fitness >= its success threshold (the goal achievement)",
    }
    # 1. env throughput, first, while nothing else of ours runs (one process, one core)
    results.update(_throughput(console, tp_steps))
    # 2. dense vs sparse PPO
    jobs = [(p, kind, seed) for p in presets for seed in range(n_seeds) for kind in ("dense", "sparse")]
    outcome = _train_jobs(console, card, jobs, {p: src[0] for p, src in sources.items()}, steps, episodes, max_steps, parallel)
    failures = {f"{p}/{k}/seed{s}": r["error"] for (p, k, s), r in outcome.items() if not r["ok"]}
    if failures:
        results["failures"] = failures
    # 3. per preset: success rates over seeds, learning curves, the dense/sparse ratio
    floor = 1.0 / (2 * episodes)
    per_preset = {p: _preset_summary(console, p, [outcome[(p, kind, s)] for kind in ("dense", "sparse") for s in range(n_seeds)], n_seeds, floor, results) for p in presets}
    results["presets"] = per_preset
    results["ratio_target"] = RATIO_TARGET
    results["ratio_floor_note"] = (
        f"ratio = dense mean success / max(sparse mean success, 1/(2*eval_episodes) = {floor:g}); "
        "the floor avoids dividing by zero when sparse never succeeds, and understates the ratio then"
    )
    results["ratio_meets_target"] = bool(per_preset) and all(e["meets_target"] for e in per_preset.values())
    results["wall_s"] = round(time.perf_counter() - t_start, 1)
    return results


def _throughput(console: Console, tp_steps: int) -> dict[str, Any]:
    """Crafter reset time and env steps/s, compact and pixel observations. The machine may be
    shared, so each figure is the best of THROUGHPUT_REPEATS runs."""
    from autoreward.crafter.env import crafter_reset_time, crafter_throughput

    out: dict[str, Any] = {}
    with console.status("Crafter throughput: reset, compact and pixel observations"):
        out["crafter_reset_s"] = round(crafter_reset_time(5), 4)
        runs: dict[str, list[float]] = {"compact": [], "compact_with_state": [], "pixels": []}
        for _ in range(THROUGHPUT_REPEATS):
            runs["compact"].append(crafter_throughput("compact", tp_steps))
            runs["compact_with_state"].append(crafter_throughput("compact", tp_steps, with_state=True))
            runs["pixels"].append(crafter_throughput("pixels", max(tp_steps // 2, 10)))
        for name, values in runs.items():
            out[f"crafter_steps_per_s_{name}"] = round(max(values), 1)
        out["crafter_throughput_runs"] = {k: [round(v, 1) for v in vs] for k, vs in runs.items()}
    out["crafter_steps_per_s_compact_target"] = COMPACT_TARGET
    out["crafter_compact_meets_target"] = out["crafter_steps_per_s_compact"] >= COMPACT_TARGET
    console.print(
        f"Crafter: reset {1000 * out['crafter_reset_s']:.0f} ms, compact {out['crafter_steps_per_s_compact']:.0f} "
        f"steps/s (with reward state {out['crafter_steps_per_s_compact_with_state']:.0f}), "
        f"pixels {out['crafter_steps_per_s_pixels']:.0f} steps/s"
    )
    return out


def _train_jobs(
    console: Console, card: Any, jobs: list[tuple[str, str, int]], sources: dict[str, str],
    steps: int, episodes: int, max_steps: int, parallel: int,
) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Train every (preset, dense|sparse, seed) job, ``parallel`` at a time; dense and sparse of
    one seed side by side, so they share the load. One row of results per job."""
    from autoreward.sandbox import Limits
    from autoreward.train.run import TrainSpec, train_candidate

    limits = Limits(wall_seconds=600.0 + steps / 25.0, cpu_seconds=int(1200 + steps / 12), memory_mb=6144, call_seconds=2.0)
    lock = threading.Lock()
    done: list[int] = [0]
    outcome: dict[tuple[str, str, int], dict[str, Any]] = {}

    with tempfile.TemporaryDirectory(prefix="autoreward-bench-crafter-") as tmp:
        root = Path(tmp)

        def one(job: tuple[str, str, int]) -> None:
            preset, kind, seed = job
            task = card.task(preset)
            spec = TrainSpec(
                card_path=card.path, task=preset, fitness=task.fitness, success=task.success,
                source=sources[preset] if kind == "dense" else None, steps=steps, seed=seed,
                eval_every=max(steps // CURVE_POINTS, 1), eval_episodes=episodes, max_episode_steps=max_steps,
                device="cpu", threads=1, save_policy=False, hyperparams=dict(HYPERPARAMS), sampled_eval=True,
            )
            res = train_candidate(spec, root / f"{preset}-{kind}-{seed}", limits)
            row = _job_row(res)
            with lock:
                outcome[job] = row
                done[0] += 1
                msg = (f"success {row['success_rate']:.2f}, fitness {row['fitness_mean']:.2f}, "
                       f"{row['steps_per_second']:.0f} PPO steps/s" if row["ok"] else f"FAILED: {row['error']}")
                console.print(f"[{done[0]}/{len(jobs)}] {preset} {kind} seed {seed}: {msg} ({row['wall_s']:.0f} s)",
                              highlight=False)

        with console.status(f"PPO on Crafter: {len(jobs)} jobs of {steps} steps, {parallel} at a time"):
            with ThreadPoolExecutor(max_workers=parallel) as pool:
                list(pool.map(one, jobs))
    return outcome


def _job_row(res: Any) -> dict[str, Any]:
    """The numbers of one finished training job (or why it failed)."""
    m = res.result if res.ok else {}
    row: dict[str, Any] = {"ok": bool(res.ok and m.get("ok")), "wall_s": round(res.wall_seconds, 1)}
    if not row["ok"]:
        row["error"] = res.error or m.get("error") or "unknown failure"
        return row
    final = m["final"]
    row.update(
        success_rate=float(final["success_rate"]),
        success_rate_sampled=float(m["final_sampled"]["success_rate"]),
        fitness_mean=float(final["fitness_mean"]),
        untrained_success_rate=float(m["untrained"]["success_rate"]),
        curve=[[int(r["step"]), float(r["task/success_rate"])] for r in m["progress"]],
        untrained_fitness_mean=float(m["untrained"]["fitness_mean"]),
        env_return_mean=float(final["env_return_mean"]),
        length_mean=float(final["length_mean"]),
        causes=final.get("causes", {}),
        steps_per_second=float(m["steps_per_second"]),
    )
    return row


def _preset_summary(
    console: Console, preset: str, rows: list[dict[str, Any]], n_seeds: int, floor: float, results: dict[str, Any]
) -> dict[str, Any]:
    """Dense and sparse over seeds for one preset (``rows``: dense seeds, then sparse seeds);
    adds the headline scalars to ``results`` and prints them."""
    entry: dict[str, Any] = {}
    for i, kind in enumerate(("dense", "sparse")):
        mine = rows[i * n_seeds : (i + 1) * n_seeds]
        good = [r for r in mine if r["ok"]]
        entry[kind] = {
            "success_rate": _spread([r["success_rate"] for r in good]),
            "success_rate_sampled": _spread([r["success_rate_sampled"] for r in good]),
            "fitness": _spread([r["fitness_mean"] for r in good]),
            "untrained_success_rate": _spread([r["untrained_success_rate"] for r in good]),
            "ppo_steps_per_s": _spread([r["steps_per_second"] for r in good]),
            "success_curve": _curve([r["curve"] for r in good]),
            "failed_seeds": [s for s, r in enumerate(mine) if not r["ok"]],
            "jobs": mine,
        }
    d, s = entry["dense"]["success_rate"]["mean"], entry["sparse"]["success_rate"]["mean"]
    if d is not None and s is not None:
        entry["ratio"] = _ratio(d, s, floor)
        entry["ratio_sparse_floored"] = s < floor
        entry["meets_target"] = entry["ratio"] >= RATIO_TARGET
    else:
        entry["ratio"], entry["ratio_sparse_floored"], entry["meets_target"] = None, False, False
    ds, ss = entry["dense"]["success_rate_sampled"]["mean"], entry["sparse"]["success_rate_sampled"]["mean"]
    entry["ratio_sampled"] = _ratio(ds, ss, floor) if ds is not None and ss is not None else None
    results[f"{preset}_ratio_sampled"] = entry["ratio_sampled"]
    results[f"{preset}_dense_success_mean"] = d
    results[f"{preset}_dense_success_std"] = entry["dense"]["success_rate"]["std"]
    results[f"{preset}_sparse_success_mean"] = s
    results[f"{preset}_sparse_success_std"] = entry["sparse"]["success_rate"]["std"]
    results[f"{preset}_dense_fitness_mean"] = entry["dense"]["fitness"]["mean"]
    results[f"{preset}_sparse_fitness_mean"] = entry["sparse"]["fitness"]["mean"]
    results[f"{preset}_ratio"] = entry["ratio"]
    results[f"{preset}_ratio_sparse_floored"] = entry["ratio_sparse_floored"]
    console.print(
        f"{preset} success during training (step: dense / sparse): "
        + ", ".join(f"{a[0]}: {a[1]:.2f} / {b[1]:.2f}" for a, b in zip(entry["dense"]["success_curve"], entry["sparse"]["success_curve"])),
        highlight=False,
    )
    console.print(
        f"{preset}: dense {_fmt(entry['dense']['success_rate'])} vs sparse {_fmt(entry['sparse']['success_rate'])}"
        f" -> ratio {entry['ratio']}" + (" (sparse floored)" if entry["ratio_sparse_floored"] else ""),
        highlight=False,
    )
    console.print(
        f"{preset}, sampled actions (reported only): dense {_fmt(entry['dense']['success_rate_sampled'])} vs sparse "
        f"{_fmt(entry['sparse']['success_rate_sampled'])} -> ratio {entry['ratio_sampled']}",
        highlight=False,
    )
    return entry


def _ratio(dense: float, sparse: float, floor: float) -> float:
    """dense / sparse, with sparse floored so a never-succeeding baseline does not divide by zero."""
    return round(dense / max(sparse, floor), 3)


def _curve(curves: list[list[list[float]]]) -> list[list[float]]:
    """Mean success over seeds at each evaluation step: [[step, mean, std], ...]."""
    if not curves:
        return []
    n = min(len(c) for c in curves)
    out = []
    for i in range(n):
        vals = [c[i][1] for c in curves]
        out.append([curves[0][i][0], round(statistics.fmean(vals), 4), round(statistics.stdev(vals), 4) if len(vals) > 1 else 0.0])
    return out


def _fmt(s: dict[str, Any]) -> str:
    if s["mean"] is None:
        return "n/a"
    return f"{s['mean']:.2f}±{s['std']:.2f} {s['per_seed']}"
