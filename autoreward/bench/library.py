"""The ``library`` benchmark suite: does showing the reward library make the designer's first
samples better? (Issue 11 part 5, the "library" lever, measured cheaply: no training.)

For each task of :data:`TASKS` the designer's first prompt is asked for ``samples`` rewards twice
in one run, with the same seeds: ``no-library`` (the prompt as before the library) and
``library`` (the loop's retrieval, leave-one-out: the task's own expert and any entry for the
same preset or task text are excluded, so the model never sees an answer to its own task). Every
sample is judged by the critic exactly as the loop judges it before any repair: accepted as
written or not, and the behaviour probe's Spearman correlation between the reward's episode
returns and the task fitness on the recorded rollouts (does the reward rise with the task?).
Training is the quality suite's business (HNS with and without the library); this suite isolates
the prompt. Knobs: ``AUTOREWARD_BENCH_MODEL`` (default: the embedded model),
``AUTOREWARD_BENCH_LIBRARY_SAMPLES`` (default 3), ``AUTOREWARD_BENCH_LIBRARY_TASKS``
(comma-separated indexes into TASKS).
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from rich.console import Console

from autoreward.bench import llm_workspace, picked

#: (env id, preset): tasks whose own expert is in the library, so leave-one-out matters
TASKS: list[tuple[str, str]] = [
    ("HalfCheetah-v5", "run_backwards"),
    ("Hopper-v5", "hop_in_place"),
    ("Walker2d-v5", "walk_backwards"),
    ("Swimmer-v5", "swim_backwards"),
]
MODES = ("no-library", "library")


def run(console: Console) -> dict[str, Any]:
    """Sample, then judge with the critic, with and without the library; plain data back."""
    from autoreward.cards import load_card, render_card
    from autoreward.critic import check_program, record_rollouts
    from autoreward.designer import Designer, default_example
    from autoreward.library import Exclude, Library
    from autoreward.program import RewardProgram

    samples = int(os.environ.get("AUTOREWARD_BENCH_LIBRARY_SAMPLES", "3"))
    tasks = picked(TASKS, "AUTOREWARD_BENCH_LIBRARY_TASKS")
    rows: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    with llm_workspace("library") as (root, client):
        lib = Library(root / "library")  # the shipped rewards only: no user's runs in the measurement
        for i, (env_id, preset) in enumerate(tasks):
            card = load_card(env_id)
            t = card.task(preset)
            rec = record_rollouts(card, root / "recordings" / f"{env_id}.npz")
            env = card.make_env()
            example = card.reward_example or default_example(env.action_space)
            env.close()
            leave_out = [Exclude(env=card.id, preset=preset), Exclude(env=card.id, task=t.description)]
            shown = lib.relevant(card.id, t.description, 2, preset=preset, exclude=leave_out, fields=[f.name for f in card.state])
            for mode in MODES:
                examples = [{**e.model_dump(), "same_env": e.env == card.id} for e in shown] if mode == "library" else []
                designer = Designer(client, render_card(card), t.description, t.fitness_doc or t.fitness, example=example, library=examples)
                t0 = time.perf_counter()
                drafts = designer.sample(samples, seed=1000 * i)
                seconds = time.perf_counter() - t0
                for d in drafts:
                    row: dict[str, Any] = {"env": env_id, "preset": preset, "mode": mode, "sample": d.index,
                                           "shown": [f"{e['id']} {e['env']} {e['preset'] or e['task']}" for e in examples],
                                           "seconds_per_sample": round(seconds / max(len(drafts), 1), 1), "source": d.source}
                    if d.source is None:
                        row.update(accepted=False, kind="no_code", spearman=None)
                    else:
                        v = check_program(RewardProgram(d.source), card, preset, root / f"task{i}" / mode / f"s{d.index}", rec,
                                          fitness_expr=t.fitness, example=example)
                        probe = v.check("probe")
                        rho = probe.details.get("spearman") if probe is not None else None
                        row.update(accepted=v.accepted, kind=v.failure_kind, message=v.message[:300], spearman=rho)
                    rows.append(row)
                    verdict = "accepted" if row["accepted"] else f"rejected ({row['kind']})"
                    probe_txt = "" if row["spearman"] is None else f", probe spearman {row['spearman']:.2f}"
                    console.print(f"[{i + 1}/{len(tasks)}] {env_id} {preset} {mode} s{d.index}: {verdict}{probe_txt}", highlight=False, markup=False)
    out: dict[str, Any] = {"suite": "library", "model": os.environ.get("AUTOREWARD_BENCH_MODEL") or "local", "tasks": len(tasks), "samples_per_task": samples}
    for mode in MODES:
        mine = [r for r in rows if r["mode"] == mode]
        rhos = [r["spearman"] for r in mine if r["spearman"] is not None]
        out[f"{mode}_accepted_rate"] = round(sum(r["accepted"] for r in mine) / max(len(mine), 1), 3)
        out[f"{mode}_rises_with_task_rate"] = round(sum(1 for r in rhos if r > 0) / max(len(mine), 1), 3)
        out[f"{mode}_median_spearman"] = round(statistics.median(rhos), 3) if rhos else None
    out["wall_s"] = round(time.perf_counter() - t_start, 1)
    out["rows"] = rows
    return out
