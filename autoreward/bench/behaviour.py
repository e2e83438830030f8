"""Time to behaviour (``autoreward bench --suite behaviour``): how soon does a card's expert
reward reach its task's success threshold, with the card's training settings and with earlier
ones (a ``training.profiles`` entry: ``zoo``, the settings before issue 22)?

Every decision of the loop rests on policies trained with a reward; trained where the behaviour
has not appeared yet, the loop steers on noise. So a card's default budget is the steps at which
its expert reaches the threshold, measured here (``training.budget_steps``).

Per task (data: ``behaviour.yaml`` beside this module), per profile and seed, one sandboxed
training job of the expert reward evaluates every ``eval_every`` steps with the one protocol
(deterministic policy, episodes seeded 10000..); the parent reads each evaluation as it comes and
stops the job once the fitness reaches the threshold, or the job stops at the wall-time cap.
Recorded per job: env steps and wall seconds to the threshold (evaluations included, as a user
waits for them), the best fitness reached, training steps/s (from the job's progress events,
evaluations left out) and the curve. Per task: the speed-up in wall time to the same fitness
(the threshold, or the best fitness both profiles reached when one did not reach it), and the
raw simulator's steps/s (random actions, no policy, no reward) on the same core, the physical
limit that training steps/s is a fraction of.

Run it pinned to one core (``taskset -c 1 autoreward bench --suite behaviour``): the numbers are
per core. Results are written after every job, so a stopped suite keeps what it did.
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from autoreward.errors import ConfigError

DATA = Path(__file__).with_name("behaviour.yaml")
DEFAULT_PROFILE = "default"  # the card's own training section


def load_config(extra: Path | None = None) -> dict[str, Any]:
    """``behaviour.yaml`` with ``extra`` merged over it (the quality suite's rules)."""
    from autoreward.bench.quality import load_config as quality_config

    data = yaml.safe_load(DATA.read_text())
    if extra is not None:
        from autoreward.bench.quality import _merge

        try:
            more = yaml.safe_load(Path(extra).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"--config {extra} is not readable YAML: {' '.join(str(exc).split())}") from None
        if not isinstance(more, dict):
            raise ConfigError(f"--config {extra} must be a mapping like behaviour.yaml's", f"see {DATA}")
        data = _merge(data, more)
    data["quality_tasks"] = quality_config("quality")["tasks"]
    return data


def plan(data: dict[str, Any], tasks: list[str] | None, seeds: list[int] | None, cap_s: float | None,
         profiles: list[str] | None, device: str | None = None) -> list[dict[str, Any]]:
    """One resolved entry per task (card, preset, expert source, settings); every name checked here."""
    from autoreward.bench.quality import _example
    from autoreward.cards import load_card

    names = tasks or list(data["tasks"])
    unknown = [t for t in names if t not in data["tasks"]]
    if unknown:
        raise ConfigError(f"--tasks: unknown task {', '.join(unknown)}", f"choose from: {', '.join(data['tasks'])}")
    out = []
    for name in names:
        t = dict(data["tasks"][name] or {})
        if "quality" in t:
            q = data["quality_tasks"][t.pop("quality")]
            t = {"env": q["env"], "preset": q["preset"], "expert": q["expert"], "max_episode_steps": q.get("max_episode_steps"), **t}
        s = {**data["defaults"], **{k: v for k, v in t.items() if k in data["defaults"]}}
        if seeds is not None:
            s["seeds"] = seeds
        if cap_s is not None:
            s["cap_s"] = cap_s
        if profiles is not None:
            s["profiles"] = profiles
        if device is not None:
            s["device"] = device
        card = load_card(t["env"])
        task = card.task(t["preset"])
        expert = _example(t["expert"]) if t.get("expert") else None
        out.append({"name": name, "card": card, "task": task, "preset": t["preset"], "expert": expert, "settings": s})
    return out


def profile_card(card: Any, profile: str, folder: Path) -> tuple[Any, str]:
    """The card trained with ``profile`` and the path of a file holding it (a training job reads
    its card from a file); the card's own file for the default profile."""
    if profile == DEFAULT_PROFILE:
        return card, card.path
    pc = card.with_profile(profile)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{card.id}.{profile}.yaml"
    path.write_text(yaml.safe_dump(pc.model_dump(exclude={"path"}), sort_keys=False))
    return pc, str(path)


def run(
    console: Console, *, tasks: list[str] | None = None, seeds: list[int] | None = None, cap_s: float | None = None,
    profiles: list[str] | None = None, config: Path | None = None, out: Path | None = None, work: Path | None = None,
    device: str | None = None, **_: Any,
) -> dict[str, Any]:
    """Run the suite; returns plain data (top-level scalars are the headline numbers) and, with
    ``out``, writes it there after every job."""
    import os

    from autoreward.rundir import write_json

    todo = plan(load_config(config), tasks, seeds, cap_s, profiles, device)
    work = Path(work or Path("runs") / f"bench-behaviour-{datetime.now():%Y%m%d-%H%M%S}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    results: dict[str, Any] = {
        "suite": "behaviour", "work_dir": str(work), "config": str(config or DATA), "started": datetime.now().isoformat(timespec="seconds"),
        "cpus": cpus, "evaluation": "deterministic policy, the task's own fitness, episodes seeded 10000.. (the same for every job)",
        "speedup_definition": "per task and seed: wall seconds (evaluations included) for the reference profile to first reach a "
                              "fitness over those of the card's default settings; the fitness is the success threshold, or the best "
                              "fitness both reached when one did not reach it; median over seeds, then over tasks",
        "tasks": {},
    }
    if out and Path(out).exists():  # a suite run in parts (tasks, profiles): what was measured before stays
        from autoreward.rundir import read_json

        results["tasks"].update(read_json(Path(out)).get("tasks", {}))
    for i, t in enumerate(todo):
        console.rule(f"[{i + 1}/{len(todo)}] {t['name']}: {t['card'].id} {t['preset']}")
        before = results["tasks"].get(t["name"], {}).get("profiles", {})
        entry = run_task(console, t, work / t["name"], lambda e: _save(results, e, t["name"], out, t0), before)
        _save(results, entry, t["name"], out, t0)
    return results


def _save(results: dict[str, Any], entry: dict[str, Any], name: str, out: Path | None, t0: float) -> None:
    from autoreward.rundir import write_json

    results["tasks"][name] = entry
    results.update(summarize(results["tasks"]))
    results["wall_s"] = round(time.perf_counter() - t0, 1)
    if out:
        write_json(Path(out), results)


def run_task(console: Console, t: dict[str, Any], folder: Path, save: Any, before: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every (profile, seed) job of a task, one at a time, then its numbers; ``before``: profiles
    measured by an earlier part, kept unless measured again."""
    card, task, s = t["card"], t["task"], t["settings"]
    entry: dict[str, Any] = {
        "env": card.id, "preset": t["preset"], "success_threshold": task.success, "fitness": task.fitness,
        "expert_file": str(t["expert"]) if t["expert"] else None, "settings": {k: s[k] for k in sorted(s)},
        "raw_steps_per_s": raw_steps_per_s(card, int(s["raw_steps"]), task.make_kwargs, s.get("max_episode_steps")),
        "profiles": dict(before or {}),
    }
    console.print(f"raw simulator: {entry['raw_steps_per_s']:.0f} steps/s (random actions)", highlight=False)
    for profile in s["profiles"]:
        if profile != DEFAULT_PROFILE and profile not in card.training.profiles:
            entry["profiles"][profile] = {"skipped": f"card {card.id} has no training profile {profile!r}: the same settings as default"}
            continue
        pc, path = profile_card(card, profile, folder / "cards")
        # seeds measured by an earlier part stay, unless measured again
        rows = [j for j in entry["profiles"].get(profile, {}).get("jobs", []) if j["seed"] not in [int(x) for x in s["seeds"]]]
        for seed in s["seeds"]:
            row = run_job(t, pc, path, profile, int(seed), folder / f"{profile}-seed{seed}")
            rows.append(row)
            reached = f"reached {task.success:g} at {row['steps_to_threshold']:,} steps, {row['wall_s_to_threshold']:.0f} s" \
                if row["reached"] else f"not reached: best {_f(row['best_fitness'])} ({row['stopped']})"
            console.print(f"  {t['name']} {profile} seed {seed}: {reached}; {_f(row['train_steps_per_s'])} train steps/s, "
                          f"{row['steps_done']:,} steps in {row['wall_s']:.0f} s", highlight=False, markup=False)
            entry["profiles"][profile] = profile_stats(pc, rows, entry["raw_steps_per_s"])
            save(entry)
    entry.update(speedup(entry, list(entry["profiles"])))
    return entry


def run_job(t: dict[str, Any], card: Any, card_path: str, profile: str, seed: int, folder: Path) -> dict[str, Any]:
    """One training job that ends itself at the first evaluation at or over the threshold
    (``stop_at_success``; the judge then evaluates the policy as for any job), or that the parent
    stops at the cap. The curve is the job's evaluation events timed in the parent from the end of the
    untrained evaluation (process start-up left out, later evaluations counted); the job's own
    ``progress.csv`` holds the same evaluations."""
    from autoreward.sandbox import Limits
    from autoreward.sandbox.parent import JobsStopped, stop_all_jobs
    from autoreward.train.run import TrainSpec, train_candidate

    task, s = t["task"], t["settings"]
    spec = TrainSpec(
        card_path=card_path, task=t["preset"], fitness=task.fitness, success=task.success,
        source=t["expert"].read_text() if t["expert"] else None, steps=int(s["max_steps"]), seed=seed, eval_every=int(s["eval_every"]),
        eval_episodes=int(s["eval_episodes"]), max_episode_steps=s.get("max_episode_steps"), device=str(s.get("device") or "cpu"), threads=1,
        save_policy=False, make_kwargs=dict(task.make_kwargs), stop_at_success=True,
    )
    events: list[tuple[float, dict[str, Any]]] = []
    curve: list[list[float]] = []  # [step, seconds since the untrained evaluation ended, fitness], from the eval events
    state = {"stopped": "", "t0": 0.0}
    cap = float(s["cap_s"])

    def on_event(e: dict[str, Any]) -> None:
        now = time.monotonic()
        events.append((now, e))
        if e.get("event") == "eval":
            step = int(e.get("step", 0))
            if not curve:
                state["t0"] = now  # the clock starts when training does
            curve.append([step, round(now - state["t0"], 2), float(e.get("fitness", float("nan")))])
            if step > 0 and curve[-1][2] >= task.success:
                state["stopped"] = "success"  # the job stops itself here (stop_at_success)
        if curve and not state["stopped"] and now - state["t0"] > cap:
            state["stopped"] = "cap"
            stop_all_jobs()  # this suite runs one job at a time: the one to stop

    limits = Limits(wall_seconds=cap + 120.0, cpu_seconds=int(cap * 2) + 300, memory_mb=6144, call_seconds=2.0)  # 120 s: start-up, first evaluation
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    error, judged, own_rate = "", None, None
    try:
        res = train_candidate(spec, folder, limits, on_event)
        if not res.ok:
            error = res.error
        judged = res.result.get("fitness")  # the judge's evaluation of the policy where it stopped
        own_rate = res.result.get("steps_per_second")  # the job's own, evaluations left out
        state["stopped"] = state["stopped"] or ("error" if error else "max_steps")
    except JobsStopped:
        pass
    wall = time.monotonic() - t0
    hit = next((c for c in curve if c[0] > 0 and c[2] >= task.success), None)
    return {
        "seed": seed, "reached": hit is not None, "stopped": state["stopped"], "error": error,
        "steps_to_threshold": hit[0] if hit else None, "wall_s_to_threshold": hit[1] if hit else None,
        "best_fitness": max((c[2] for c in curve), default=None), "last_fitness": curve[-1][2] if curve else None,
        "steps_done": max((int(e.get("step", 0)) for _, e in events if e.get("event") in ("eval", "progress")), default=0),
        "wall_s": round(wall, 1), "judged_fitness": judged, "evaluations": len(curve), "train_steps_per_s": train_rate(events) or own_rate,
        "curve": curve, "dir": str(folder),
    }


def train_rate(events: list[tuple[float, dict[str, Any]]]) -> float | None:
    """Training steps/s from the job's progress events (every 0.5 s), leaving out every interval
    that holds an evaluation, so the rate is training's alone."""
    steps = secs = 0.0
    last: tuple[float, int] | None = None
    for t, e in events:
        kind = e.get("event")
        if kind == "eval":
            last = None
        elif kind == "progress":
            step = int(e.get("step", 0))
            if last is not None and step > last[1]:
                steps, secs = steps + step - last[1], secs + t - last[0]
            last = (t, step)
    return round(steps / secs, 1) if secs > 0 else None


def raw_steps_per_s(card: Any, n: int, make_kwargs: dict[str, Any], max_episode_steps: int | None) -> float:
    """The simulator alone on this core: random actions, no policy, no reward, no state views."""
    kw = dict(make_kwargs)
    if max_episode_steps:
        kw["max_episode_steps"] = max_episode_steps
    env = card.make_env(**kw)
    try:
        env.action_space.seed(0)
        env.reset(seed=0)
        t0 = time.perf_counter()
        for _ in range(n):
            _, _, term, trunc, _ = env.step(env.action_space.sample())
            if term or trunc:
                env.reset()
        return round(n / (time.perf_counter() - t0), 1)
    finally:
        env.close()


def profile_stats(card: Any, rows: list[dict[str, Any]], raw: float) -> dict[str, Any]:
    """A profile's jobs of one task: per seed and in summary."""
    reached = [r for r in rows if r["reached"]]
    rates = [r["train_steps_per_s"] for r in rows if r["train_steps_per_s"]]
    rate = statistics.median(rates) if rates else None
    return {
        "n_envs": card.training.n_envs, "algo": card.training.algo, "hyperparams": card.training.hyperparams.get(card.training.algo, {}),
        "seeds": len(rows), "seeds_reaching_success": len(reached),
        "median_steps_to_threshold": statistics.median([r["steps_to_threshold"] for r in reached]) if reached else None,
        "median_wall_s_to_threshold": statistics.median([r["wall_s_to_threshold"] for r in reached]) if reached else None,
        "median_train_steps_per_s": rate, "train_fraction_of_raw": round(rate / raw, 3) if rate and raw else None,
        "jobs": rows,
    }


def time_to(curve: list[list[float]], fitness: float) -> float | None:
    """Wall seconds of the first evaluation after training began at or over ``fitness``."""
    return next((t for step, t, f in curve if step > 0 and f >= fitness), None)


def speedup(entry: dict[str, Any], profiles: list[str]) -> dict[str, Any]:
    """Per seed, the reference profile's wall time to a fitness over the default settings' time
    to the same fitness: the threshold, or the best both reached when one fell short of it."""
    new = entry["profiles"].get(DEFAULT_PROFILE)
    others = [p for p in profiles if p != DEFAULT_PROFILE and "jobs" in entry["profiles"].get(p, {})]
    if not new or not others:
        return {"speedup": None, "speedup_why": "needs the default profile and another one measured"}
    ref = entry["profiles"][others[0]]
    per_seed = []
    for a in new["jobs"]:
        b = next((j for j in ref["jobs"] if j["seed"] == a["seed"]), None)
        if b is None or a["best_fitness"] is None or b["best_fitness"] is None:
            continue
        target = min(entry["success_threshold"], a["best_fitness"], b["best_fitness"])
        ta, tb = time_to(a["curve"], target), time_to(b["curve"], target)
        if ta and tb:
            per_seed.append({"seed": a["seed"], "fitness": target, "default_s": ta, f"{others[0]}_s": tb, "speedup": round(tb / ta, 2),
                             "lower_bound": not b["reached"]})
    vals = [p["speedup"] for p in per_seed]
    return {"speedup": statistics.median(vals) if vals else None, "speedup_against": others[0], "speedup_per_seed": per_seed,
            "speedup_why": "" if vals else "no fitness both profiles reached after training began"}


def summarize(tasks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Suite-level numbers: median speed-up over tasks, tasks whose every seed reached success."""
    ups = [t["speedup"] for t in tasks.values() if t.get("speedup")]
    new = [t["profiles"].get(DEFAULT_PROFILE) for t in tasks.values()]
    measured = [p for p in new if p and p.get("seeds")]
    return {
        "median_speedup": statistics.median(ups) if ups else None, "tasks_with_speedup": len(ups),
        "tasks_reaching_success": sum(1 for p in measured if p["seeds_reaching_success"] == p["seeds"]),
        "tasks_measured": len(measured),
    }


def markdown(results: dict[str, Any]) -> str:
    """One row per task and profile, every number read from ``results``."""
    rows = ["| task | profile | envs | train steps/s (of raw) | seeds at threshold | steps to threshold | wall s to threshold | best fitness / threshold | speed-up |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, t in results["tasks"].items():
        for p, e in t["profiles"].items():
            if "jobs" not in e:
                continue
            best = max((j["best_fitness"] for j in e["jobs"] if j["best_fitness"] is not None), default=None)
            frac = f" ({e['train_fraction_of_raw']:.0%})" if e.get("train_fraction_of_raw") else ""
            up = _f(t.get("speedup")) if p == DEFAULT_PROFILE else ""
            rows.append(f"| {name} | {p} | {e['n_envs']} | {_f(e['median_train_steps_per_s'])}{frac} | {e['seeds_reaching_success']}/{e['seeds']} | "
                        f"{_n(e['median_steps_to_threshold'])} | {_f(e['median_wall_s_to_threshold'])} | {_f(best)} / {t['success_threshold']:g} | {up} |")
    return "\n".join(rows) + "\n"


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _n(x: float | None) -> str:
    return "n/a" if x is None else f"{int(x):,}"
