"""The ``quick`` benchmark suite: what a generated reward costs per training step.

These machines are shared and noisy, so each figure is a ratio of two things measured in the
same run, interleaved (A B A B) and compared by median.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from autoreward.bench.examples import example


def run(console: Console, steps: int = 6000, rounds: int = 3) -> dict[str, Any]:
    """reward_overhead_ratio: PPO steps/s with a generated reward over steps/s with the env's own
    reward (one env, interleaved rounds, medians). Target >= 0.95.

    Measured twice: with the card's rl-zoo3 hyperparameters (how users train; the headline
    figure) and with a deliberately light PPO (5 epochs over 1024 steps, small default network),
    where the per-step cost of extracting the state and calling the reward weighs the most."""
    from autoreward.cards import load_card
    from autoreward.critic import check_program, record_rollouts
    from autoreward.program import RewardProgram
    from autoreward.train.run import TrainSpec, train_candidate

    card = load_card("HalfCheetah-v5")
    task = card.task("run_backwards")
    reward = example("halfcheetah_backwards.py")
    results: dict[str, Any] = {"suite": "quick", "env": card.id, "steps_per_job": steps, "rounds": rounds}
    with tempfile.TemporaryDirectory(prefix="autoreward-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        rec = record_rollouts(card, root / "rec.npz")
        results["record_rollouts_s"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        verdict = check_program(RewardProgram(reward), card, "run_backwards", root / "check", rec)
        results["critic_check_s"] = round(time.perf_counter() - t0, 3)
        dry = verdict.check("dry_run")
        assert dry is not None
        results["reward_call_us"] = dry.details.get("per_call_us")
        results["state_extract_us"] = round(_extract_cost(card), 2)
        for label, hp in (("", {}), ("_light_ppo", {"n_steps": 1024, "n_epochs": 5, "policy_kwargs": {}})):
            rates: dict[str, list[float]] = {"program": [], "env": []}
            for r in range(rounds):
                for kind in ("env", "program"):
                    spec = TrainSpec(
                        card_path=card.path, task="run_backwards", fitness=task.fitness, success=task.success,
                        source=reward if kind == "program" else None, steps=steps, seed=r,
                        eval_every=10 * steps, eval_episodes=1, max_episode_steps=200, save_policy=False,
                        hyperparams=hp,
                    )
                    with console.status(f"round {r + 1}/{rounds}{label}: PPO with the {kind} reward"):
                        job = train_candidate(spec, root / f"{kind}{label}{r}")
                    if not job.ok:
                        raise RuntimeError(f"benchmark training failed: {job.error}")
                    rates[kind].append(float(job.result["steps_per_second"]))
            results[f"ppo_steps_per_s_env_reward{label}"] = rates["env"]
            results[f"ppo_steps_per_s_program_reward{label}"] = rates["program"]
            results[f"reward_overhead_ratio{label}"] = round(statistics.median(rates["program"]) / statistics.median(rates["env"]), 4)
        results["reward_overhead_target"] = 0.95
    return results


def _extract_cost(card: Any, n: int = 5000) -> float:
    """Microseconds to build one state view (the per-step cost the reward adds before its call)."""
    from autoreward.cards import StateExtractor

    env = card.make_env()
    env.reset(seed=0)
    ex = StateExtractor(card, env)
    t0 = time.perf_counter()
    for _ in range(n):
        ex(None, {}, 0.0)
    env.close()
    return 1e6 * (time.perf_counter() - t0) / n
