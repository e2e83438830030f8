"""The ``search`` benchmark suite (``autoreward bench --suite search``): what the search machinery
buys on this machine, each figure a ratio measured in one run.

1. ``parallel_speedup_2_workers``: two identical training jobs one after the other (a pool of 1)
   against both at once (a pool of 2), wall clock, job start-up included. Target >= 1.7 on 2
   cores; other load on the machine pulls it down.
2. A fixed pool of reward programs of known intent for HalfCheetah-v5 ``run_backwards``
   (``search_pool/``: good, mediocre, wrong-way-but-passing, breaks-at-run-time, hacking, and a
   rescaled copy of good). All go through the critic on one recording; behavioural dedupe runs
   over them in that order (``dedupe_caught``: the rescaled copy is found to duplicate good). The
   distinct ones are then, for each seed, trained fully (the truth: which is best) and by
   successive halving with the loop's own code and schedule. ``halving_step_fraction``: env
   steps halving spent over the steps of training all fully (target <= 0.5);
   ``halving_picks_best_rate``: seeds where halving's winner is the fully trained best (>= 0.9).
3. ``sbx_speedup_ppo`` / ``sbx_speedup_sac``: training steps/s of SBX over SB3 at equal settings
   (one thread each, the card's hyperparameters, the same job and evaluations): PPO on
   HalfCheetah-v5, SAC on Hopper-v5. SBX's JIT compilation counts against it.
4. ``subproc_speedup_ppo_2_envs``: PPO on HalfCheetah-v5 with 2 envs stepping in subprocesses
   over 2 envs in the training process (same rollout size, 2 x 256 steps), steps/s; what the
   card's ``training.vec_env`` default is set from.

Knobs (environment variables, or the keyword arguments of :func:`run`):
``AUTOREWARD_BENCH_SEARCH_STEPS`` (full budget per candidate; default 0: the card's budget for the task,
110,000 steps on HalfCheetah, where its expert reaches 3 m/s with the card's settings; at 20,000 one
env's PPO had barely begun and halving's first rung ranked fitnesses within 0.0002-0.0074 m/s),
``..._SEEDS`` (5), ``..._SPEEDUP_STEPS`` (6000), ``..._SBX_PPO_STEPS`` (8192),
``..._SBX_SAC_STEPS`` (3000), ``..._EPISODE_STEPS`` (max episode steps, 300).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

POOL_DIR = Path(__file__).parent / "search_pool"
#: the pool in the order the designer would have produced it; the rescaled copy comes last
POOL = ("good", "mediocre", "wrong_way", "breaks_at_runtime", "hacking", "rescaled")
ENV, TASK = "HalfCheetah-v5", "run_backwards"
DEFAULTS = {"steps": 0, "seeds": 5, "speedup_steps": 6000, "sbx_ppo_steps": 8192, "sbx_sac_steps": 3000, "episode_steps": 300}


def _knob(name: str, given: int | None) -> int:
    if given is not None:
        return int(given)
    raw = os.environ.get(f"AUTOREWARD_BENCH_SEARCH_{name.upper()}", "")
    return int(raw) if raw.strip() else DEFAULTS[name]


def run(
    console: Console, steps: int | None = None, seeds: int | None = None, speedup_steps: int | None = None,
    sbx_ppo_steps: int | None = None, sbx_sac_steps: int | None = None, episode_steps: int | None = None,
) -> dict[str, Any]:
    """Run the suite; returns plain data (top-level scalars are the headline numbers)."""
    from autoreward.cards import load_card

    k = {n: _knob(n, v) for n, v in (("steps", steps), ("seeds", seeds), ("speedup_steps", speedup_steps),
                                      ("sbx_ppo_steps", sbx_ppo_steps), ("sbx_sac_steps", sbx_sac_steps), ("episode_steps", episode_steps))}
    card = load_card(ENV)
    k["steps"] = k["steps"] or card.budget_steps(TASK)  # the loop's own default budget
    pool = {name: (POOL_DIR / f"{name}.py").read_text() for name in POOL}
    results: dict[str, Any] = {"suite": "search", "env": ENV, "task": TASK, "cpus": os.cpu_count(), "budget": k, "load_average_start": os.getloadavg()[0]}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="autoreward-bench-search-") as tmp:
        root = Path(tmp)
        results.update(_parallel(console, card, pool["good"], k, root / "parallel"))
        results.update(_pool(console, card, pool, k, root / "pool"))
        results.update(_sbx(console, k, root / "sbx"))
        results.update(_vec_envs(console, card, pool["good"], k, root / "vec"))
    results["wall_seconds"] = round(time.perf_counter() - t_all, 1)
    results["load_average_end"] = os.getloadavg()[0]
    results["targets"] = {"parallel_speedup_2_workers": ">= 1.7", "halving_step_fraction": "<= 0.5", "halving_picks_best_rate": ">= 0.9", "dedupe_caught": "true"}
    return results


def _spec(card: Any, source: str | None, steps: int, seed: int, k: dict[str, int], task: str = TASK, **kw: Any) -> Any:
    from autoreward.train.run import TrainSpec

    t = card.task(task)
    return TrainSpec(card_path=card.path, task=task, fitness=t.fitness, success=t.success, source=source, steps=steps, seed=seed,
                     eval_episodes=2, max_episode_steps=k["episode_steps"], save_policy=False, **kw)


def _parallel(console: Console, card: Any, good: str, k: dict[str, int], root: Path) -> dict[str, Any]:
    """Wall clock of two jobs in a pool of one against a pool of two."""
    from autoreward.executors import LocalPool

    wall: dict[int, float] = {}
    for workers in (1, 2):
        with console.status(f"parallel: 2 jobs of {k['speedup_steps']} steps, {workers} at a time"), LocalPool(workers) as pool:
            t0 = time.perf_counter()
            futures = [pool.submit(_spec(card, good, k["speedup_steps"], s, k), root / f"w{workers}_{s}") for s in (0, 1)]
            for f in futures:
                r = f.result()
                if not r.ok:
                    raise RuntimeError(f"benchmark training failed: {r.error}")
            wall[workers] = time.perf_counter() - t0
    speedup = wall[1] / wall[2]
    console.print(f"parallel: 1 worker {wall[1]:.1f} s, 2 workers {wall[2]:.1f} s: speedup {speedup:.2f}")
    return {"parallel_wall_s_1_worker": round(wall[1], 2), "parallel_wall_s_2_workers": round(wall[2], 2), "parallel_speedup_2_workers": round(speedup, 3)}


def _reached(m: dict[str, Any]) -> int:
    """Env steps a job's policy had seen when it stopped (its target, or where it failed)."""
    return int(m.get("steps", 0)) if m.get("ok") else int(m.get("failed_at_step", 0))


def _pool(console: Console, card: Any, pool: dict[str, str], k: dict[str, int], root: Path) -> dict[str, Any]:
    """Critic and dedupe over the pool, then for each seed full training against halving."""
    from autoreward.critic import check_program, record_rollouts
    from autoreward.critic.check import REWARDS_FILE
    from autoreward.critic.dedupe import behavioural_duplicate, load_rewards
    from autoreward.executors import LocalPool
    from autoreward.halving import Schedule, successive_halving
    from autoreward.program import RewardProgram
    from autoreward.rundir import read_json

    rec = record_rollouts(card, root / "probe.npz")
    verdicts: dict[str, Any] = {}
    known: list[tuple[str, Any]] = []
    dupes: dict[str, dict[str, Any]] = {}
    with console.status("critic and behavioural dedupe over the pool"):
        for name, src in pool.items():
            v = check_program(RewardProgram(src), card, TASK, root / "check" / name, rec)
            probe = v.check("probe")
            verdicts[name] = {"accepted": v.accepted, "probe_rho": probe.details.get("spearman") if probe else None,
                              "failed": next((f"{c.name}: {c.message}" for c in v.checks if not c.passed), "")}
            rewards = load_rewards(root / "check" / name / REWARDS_FILE)
            dup = behavioural_duplicate(rewards, known) if rewards is not None else None
            if dup is not None:
                dupes[name] = {"of": dup.of, "how": dup.how, "score": round(dup.score, 6), "message": dup.message()}
            elif rewards is not None:
                known.append((name, rewards))
    shown = ", ".join(f"{n} of {d['of']}" for n, d in dupes.items()) or "none"
    console.print(f"critic: {sum(v['accepted'] for v in verdicts.values())}/{len(pool)} accepted; duplicates: {shown}")
    distinct = [n for n in pool if n not in dupes]
    schedule = Schedule()
    per_seed: list[dict[str, Any]] = []
    quiet = Console(quiet=True)
    with LocalPool(2) as ex:
        for seed in range(k["seeds"]):
            full_dir, halv_dir = root / f"seed{seed}" / "full", root / f"seed{seed}" / "halving"
            with console.status(f"seed {seed}: {len(distinct)} candidates trained fully ({k['steps']} steps)"):
                futures = [ex.submit(_spec(card, pool[n], k["steps"], seed, k), full_dir / n) for n in distinct]
                for f in futures:
                    f.result()
            full = {n: read_json(full_dir / n / "metrics.json") for n in distinct}
            fit = {n: m.get("fitness") if m.get("ok") else None for n, m in full.items()}
            best = max((n for n in distinct if fit[n] is not None), key=lambda n: fit[n])  # type: ignore[arg-type,return-value]

            def make_spec(cand: Path, seed: int = seed) -> Any:
                return replace(_spec(card, pool[cand.name], k["steps"], seed, k), save_policy=True)

            with console.status(f"seed {seed}: the same by successive halving"):
                log = successive_halving([halv_dir / n for n in distinct], make_spec, ex, schedule, quiet)
            winner = log[-1]["kept"][0] if log and log[-1]["kept"] else None
            spent = 0
            for n in distinct:
                before = 0
                for r in range(len(schedule.rungs)):
                    path = halv_dir / n / f"rung{r}" / "metrics.json"
                    if path.exists():
                        reached = _reached(read_json(path))
                        spent += max(reached - before, 0)
                        before = max(reached, before)
            full_steps = sum(_reached(m) for m in full.values())
            row = {"seed": seed, "full_fitness": fit, "best": best, "halving_winner": winner, "picked_best": winner == best,
                   "winner_full_fitness": fit.get(winner) if winner else None, "halving_steps": spent, "full_steps": full_steps,
                   "step_fraction": round(spent / full_steps, 4), "rungs": log}
            per_seed.append(row)
            shown = ", ".join(f"{n} {v:.3g}" if v is not None else f"{n} failed" for n, v in fit.items())
            console.print(f"seed {seed}: full: {shown}; halving picked {winner} ({'best' if row['picked_best'] else 'not the best'}), "
                          f"{row['step_fraction']:.0%} of the steps")
    caught = dupes.get("rescaled", {}).get("of") == "good"
    return {
        "pool": list(pool), "critic": verdicts, "duplicates": dupes, "dedupe_caught": bool(caught),
        "dedupe_false_positives": sorted(n for n in dupes if n != "rescaled"), "trained": distinct,
        "halving_schedule": {"rungs": list(schedule.rungs), "keep": schedule.keep},
        "halving_step_fraction": round(sum(r["halving_steps"] for r in per_seed) / sum(r["full_steps"] for r in per_seed), 4),
        "halving_picks_best_rate": round(sum(r["picked_best"] for r in per_seed) / len(per_seed), 3),
        "halving_seeds": per_seed,
    }


def _sbx(console: Console, k: dict[str, int], root: Path) -> dict[str, Any]:
    """SB3 against SBX, steps/s of the same training job; SB3 first, then SBX, then both again."""
    from autoreward.cards import load_card
    from autoreward.train.run import train_candidate

    try:
        import sbx  # noqa: F401
    except ImportError:
        return {"sbx_speedup_ppo": None, "sbx_speedup_sac": None, "sbx_skipped": "sbx is not installed: pip install 'autoreward[sbx]'"}
    cheetah, hopper = load_card(ENV), load_card("Hopper-v5")
    good = (POOL_DIR / "good.py").read_text()
    jobs = {
        "ppo": lambda trainer: _spec(cheetah, good, k["sbx_ppo_steps"], 0, k, trainer=trainer, algo="ppo", eval_every=10 * k["sbx_ppo_steps"]),
        "sac": lambda trainer: _spec(hopper, None, k["sbx_sac_steps"], 0, k, task="default", trainer=trainer, algo="sac",
                                     hyperparams={"learning_starts": min(1000, k["sbx_sac_steps"] // 3)}, eval_every=10 * k["sbx_sac_steps"]),
    }
    out: dict[str, Any] = {}
    for algo, make in jobs.items():
        rates: dict[str, list[float]] = {"sb3": [], "sbx": []}
        for r in range(2):  # interleaved, so a change in the machine's load hits both
            for trainer in ("sb3", "sbx"):
                with console.status(f"{algo.upper()} with {trainer}, round {r + 1}/2"):
                    res = train_candidate(make(trainer), root / f"{algo}_{trainer}_{r}")
                if not res.ok:
                    raise RuntimeError(f"benchmark training failed ({algo}, {trainer}): {res.error}")
                rates[trainer].append(float(res.result["steps_per_second"]))
        out[f"{algo}_steps_per_s_sb3"], out[f"{algo}_steps_per_s_sbx"] = rates["sb3"], rates["sbx"]
        out[f"sbx_speedup_{algo}"] = round(sum(rates["sbx"]) / sum(rates["sb3"]), 3)
        console.print(f"{algo.upper()}: SB3 {rates['sb3']} steps/s, SBX {rates['sbx']} steps/s: speedup {out[f'sbx_speedup_{algo}']:.2f}")
    return out


def _vec_envs(console: Console, card: Any, good: str, k: dict[str, int], root: Path) -> dict[str, Any]:
    """PPO steps/s with 2 envs: in-process (DummyVecEnv) against subprocesses, interleaved twice."""
    from autoreward.train.run import train_candidate

    steps = k["sbx_ppo_steps"]
    rates: dict[str, list[float]] = {"dummy": [], "subproc": []}
    for r in range(2):
        for kind in ("dummy", "subproc"):
            spec = _spec(card, good, steps, 0, k, n_envs=2, vec_env=kind, hyperparams={"n_steps": 256}, eval_every=10 * steps)
            with console.status(f"PPO on 2 envs ({kind}), round {r + 1}/2"):
                res = train_candidate(spec, root / f"{kind}_{r}")
            if not res.ok:
                raise RuntimeError(f"benchmark training failed ({kind}): {res.error}")
            rates[kind].append(float(res.result["steps_per_second"]))
    ratio = round(sum(rates["subproc"]) / sum(rates["dummy"]), 3)
    console.print(f"PPO, 2 envs: in-process {rates['dummy']} steps/s, subprocesses {rates['subproc']}: ratio {ratio:.2f}")
    return {"ppo_2_envs_steps_per_s_dummy": rates["dummy"], "ppo_2_envs_steps_per_s_subproc": rates["subproc"], "subproc_speedup_ppo_2_envs": ratio}
