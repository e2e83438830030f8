"""The ``fitness`` benchmark suite: how often does the model's fitness proposal for a free-form
task come back usable?

For each task of :data:`TASKS` (written for this suite, not the presets' texts) the model
proposes a fitness twice, in one run:

* ``baseline``: the way autoreward worked before proposals were checked: one answer to the
  proposal prompt without the card's named measures, no repair;
* ``pipeline``: what ``autoreward run`` does now: the prompt lists the card's named measures,
  the proposal is checked on the recorded rollouts in the sandbox, and each failure goes back
  to the proposer with its message (up to 3 repairs).

Both are judged by the same sandboxed check (one finite number per episode, not constant over
the diverse rollouts, a plausible threshold). Whether a valid proposal *points the right way*
is judged by hand from the saved expressions; the judgement is kept beside the results in
``benchmarks/``. Knobs: ``AUTOREWARD_BENCH_MODEL`` (default: the embedded model),
``AUTOREWARD_BENCH_FITNESS_TASKS`` (comma-separated indexes into TASKS).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from autoreward.bench import llm_workspace, picked

#: (env id, task text): free-form tasks over >= 5 cards, none of them a preset's description
TASKS: list[tuple[str, str]] = [
    ("HalfCheetah-v5", "run forward while keeping the torso high off the ground"),
    ("HalfCheetah-v5", "move backwards slowly and steadily without flipping over"),
    ("Hopper-v5", "hop backwards while staying upright"),
    ("Hopper-v5", "hop forward as far as possible without falling"),
    ("Walker2d-v5", "walk forward slowly without falling over"),
    ("Walker2d-v5", "stay standing for as long as possible"),
    ("Ant-v5", "walk towards the left, along +y"),
    ("Ant-v5", "spin counterclockwise on the spot"),
    ("Swimmer-v5", "swim backwards, towards -x"),
    ("Reacher-v5", "keep the fingertip as close to the target as possible"),
    ("InvertedPendulum-v5", "keep the pole balanced while keeping the cart near the centre"),
    ("Humanoid-v5", "stand up tall and do not fall"),
    ("Crafter-v1", "collect as much wood as possible"),
    ("Crafter-v1", "survive as long as possible without dying"),
]


def run(console: Console) -> dict[str, Any]:
    """Propose, check and (pipeline) repair a fitness for every task; plain data back."""
    from autoreward.cards import load_card, render_card
    from autoreward.critic import record_rollouts
    from autoreward.critic.fitness import check_fitness_expr
    from autoreward.designer import propose_fitness
    from autoreward.errors import ConfigError

    tasks = picked(TASKS, "AUTOREWARD_BENCH_FITNESS_TASKS")
    rows: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    with llm_workspace("fitness") as (root, client):
        for i, (env_id, task) in enumerate(tasks):
            card = load_card(env_id)
            rec = record_rollouts(card, root / "recordings" / f"{env_id}.npz")
            work = root / f"task{i}"
            for mode in ("baseline", "pipeline"):
                measures = card.measures if mode == "pipeline" else {}
                n = [0]

                def check(expr: str, success: float) -> Any:
                    n[0] += 1
                    return check_fitness_expr(expr, success, card, rec, work / f"{mode}{n[0]}", task=task if mode == "pipeline" else "")

                t0 = time.perf_counter()
                tokens0 = _tokens(root)
                try:
                    prop = propose_fitness(client.complete, render_card(card), task, measures, check, seed=1000 * i,
                                           max_repairs=3 if mode == "pipeline" else 0)
                    row = {"valid": True, "fitness": prop.expr, "success": prop.success, "description": prop.description,
                           "proposals": len(prop.attempts), "values": prop.check["details"]["values"]}
                except ConfigError as exc:
                    row = {"valid": False, "error": exc.message, "proposals": None}
                row.update(env=env_id, task=task, mode=mode, seconds=round(time.perf_counter() - t0, 1), tokens=_tokens(root) - tokens0)
                rows.append(row)
                console.print(f"[{i + 1}/{len(tasks)}] {env_id} {mode}: " + (f"{row['fitness']}  >= {row['success']}" if row["valid"] else f"INVALID: {row['error'][:160]}"), highlight=False, markup=False)
    out: dict[str, Any] = {"suite": "fitness", "model": os.environ.get("AUTOREWARD_BENCH_MODEL") or "local", "tasks": len(tasks), "rows": rows}
    for mode in ("baseline", "pipeline"):
        mine = [r for r in rows if r["mode"] == mode]
        out[f"{mode}_valid_rate"] = round(sum(r["valid"] for r in mine) / max(len(mine), 1), 3)
        out[f"{mode}_tokens"] = sum(r["tokens"] for r in mine)
        out[f"{mode}_seconds"] = round(sum(r["seconds"] for r in mine), 1)
    out["wall_s"] = round(time.perf_counter() - t_start, 1)
    return out


def _tokens(log_dir: Path) -> int:
    from autoreward.llm import read_log

    return sum(int(e.get("prompt_tokens", 0)) + int(e.get("completion_tokens", 0)) for e in read_log(log_dir))
