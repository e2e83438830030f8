"""The reward-quality suite (``autoreward bench --suite quality|quality-quick``): are the loop's
rewards as good as an expert's? Eureka's human-normalised score, measured.

Per task (tasks and budgets are data: ``quality.yaml`` beside this module):

1. the loop runs through the Python API (:func:`autoreward.api.synthesize`) with the chosen model,
   once per variant (``library``: as a user runs it, leave-one-out, so the task's own expert and
   earlier winners never reach its prompt; ``no-library``; ``potential``: ``--shaping
   potential``), and picks its best by task fitness as usual;
2. that best is RE-TRAINED from scratch with fresh seeds (distinct from the loop's), beside the
   expert reward (``examples/experts/``, or the env's reward restated where the task is the
   env's) and the sparse baseline (``examples/experts/sparse/``: the task's success signal), at
   the same budget, with the same deterministic final evaluation (episodes seeded 10000..);
3. the untrained policy is each re-training job's own evaluation before training (the policy at
   a seed does not depend on the reward it will learn from).

HNS = (generated − untrained) / (expert − untrained) over the seed means of final fitness; a
variant whose loop handed back no reward scores as the untrained policy (HNS 0); a task whose
expert did not beat the untrained policy at the budget has no HNS (``null``, said why). Suite
level: mean and median HNS, the fraction of tasks with HNS ≥ 1, tokens, cost, LLM seconds, env
steps and wall time. Results are written after every task, so a stopped suite keeps what it did.

The reward library is a fresh folder inside the suite's work folder (seeded by the shipped
examples), so the user's own library neither helps nor is touched, and a task may see winners of
the tasks before it, never its own.
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from autoreward.errors import AutorewardError, ConfigError

DATA = Path(__file__).with_name("quality.yaml")
VARIANTS = {  # name -> (library on, shaping)
    "library": (True, "reward"),
    "no-library": (False, "reward"),
    "potential": (True, "potential"),
    "potential-no-library": (False, "potential"),
}
KINDS = ("expert", "sparse")


def load_config(suite: str, extra: Path | None = None) -> dict[str, Any]:
    """``quality.yaml`` with ``extra`` (a file of the same shape) merged over it."""
    data = yaml.safe_load(DATA.read_text())
    if extra is not None:
        try:
            more = yaml.safe_load(Path(extra).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"--config {extra} does not exist") from None
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"--config {extra} is not readable YAML: {' '.join(str(exc).split())}") from None
        if not isinstance(more, dict):
            raise ConfigError(f"--config {extra} must be a mapping like quality.yaml's", f"see {DATA}")
        data = _merge(data, more)
    if suite not in data.get("suites", {}):
        raise ConfigError(f"no suite {suite!r} in the quality config", f"choose one of: {', '.join(data.get('suites', {}))}")
    return data


def _merge(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        return {**a, **{k: _merge(a.get(k), v) for k, v in b.items()}}
    return b


def plan(data: dict[str, Any], suite: str, tasks: list[str] | None, variants: list[str] | None) -> list[dict[str, Any]]:
    """One resolved entry per task: card, preset, reward files and budget, and its variants.
    Every name is checked here, before any work."""
    from autoreward.cards import load_card

    s = data["suites"][suite]
    names = tasks or list(s["tasks"])
    unknown = [t for t in names if t not in data["tasks"]]
    if unknown:
        raise ConfigError(f"--tasks: unknown task {', '.join(unknown)}", f"choose from: {', '.join(data['tasks'])}")
    chosen = variants if variants is not None else list(s.get("variants", ["library"]))
    bad = [v for v in chosen if v not in VARIANTS]
    if bad:
        raise ConfigError(f"--variants: unknown variant {', '.join(bad)}", f"choose from: {', '.join(VARIANTS)} (or none)")
    limited = set(s.get("potential_tasks") or names) if variants is None else set(names)
    budget_keys = set(data["defaults"])
    out = []
    for name in names:
        t = data["tasks"][name]
        budget = {**data["defaults"], **{k: v for k, v in s.items() if k in budget_keys}, **{k: v for k, v in t.items() if k in budget_keys}}
        if len(budget["seeds"]) < 1 or budget["loop_seed"] in budget["seeds"]:
            raise ConfigError(f"task {name}: re-training seeds {budget['seeds']} must be given and differ from loop_seed {budget['loop_seed']}")
        card = load_card(t["env"])
        task = card.task(t["preset"])
        if not budget["steps"]:  # the card's budget: where its expert reaches the task's success threshold
            budget["steps"] = card.budget_steps(t["preset"])
        files = {k: _example(t[k]) for k in KINDS}
        vs = [v for v in chosen if not v.startswith("potential") or name in limited]
        out.append({"name": name, "env": card.id, "preset": t["preset"], "text": task.description, "card": card, "task": task,
                    "files": files, "budget": budget, "variants": vs})
    return out


def choose_variants(variants: str | None, no_library: bool = False, shaping: str | None = None) -> list[str] | None:
    """The variants that ``bench``'s flags ask for; None: the suite's own. ``--variants a,b``
    (``none``: experts and baselines only); ``--no-library`` turns each into its no-library
    form; ``--shaping potential`` adds the potential variant beside the normal mode."""
    if shaping not in (None, "reward", "potential"):
        raise ConfigError(f"--shaping {shaping!r}: choose reward or potential")
    chosen = None if variants is None else [v.strip() for v in variants.split(",") if v.strip() and v.strip() != "none"]
    if no_library:
        chosen = [{"library": "no-library", "potential": "potential-no-library"}.get(v, v) for v in (chosen or ["library"])]
    if shaping == "potential":
        chosen = (chosen or ["no-library" if no_library else "library"]) + ["potential-no-library" if no_library else "potential"]
    return None if chosen is None else list(dict.fromkeys(chosen))


def _example(rel: str) -> Path:
    from autoreward.library import shipped_dir

    root = shipped_dir()
    path = (root / rel) if root else Path(rel)
    if not path.is_file():
        raise ConfigError(f"reward file {rel} not found under {root}", "run from a checkout, or fix the path in the quality config")
    return path


def run(
    console: Console, *, suite: str = "quality", model: str | None = None, tasks: list[str] | None = None,
    variants: list[str] | None = None, config: Path | None = None, out: Path | None = None, work: Path | None = None,
) -> dict[str, Any]:
    """Run the suite; returns plain data (top-level scalars are the headline numbers) and, with
    ``out``, writes it there after every task."""
    from autoreward.llm import get_client, resolve_model
    from autoreward.rundir import write_json

    data = load_config(suite, config)
    todo = plan(data, suite, tasks, variants)
    if any(t["variants"] for t in todo):
        get_client(model)  # an unknown model or a missing key fails here, before any work
    work = Path(work or Path("runs") / f"bench-{suite}-{datetime.now():%Y%m%d-%H%M%S}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results: dict[str, Any] = {
        "suite": suite, "model": resolve_model(model), "work_dir": str(work), "library_dir": str(work / "library"),
        "config": str(config) if config else str(DATA), "started": datetime.now().isoformat(timespec="seconds"),
        "hns_definition": "(generated - untrained) / (expert - untrained), each the mean over re-training seeds of the final "
                          "evaluation's mean fitness; null when the expert did not beat the untrained policy",
        "evaluation": "deterministic policy, the task's own fitness, episodes seeded 10000.. (the same for every job)",
        "tasks": {},
    }
    for i, t in enumerate(todo):
        console.rule(f"[{i + 1}/{len(todo)}] {t['name']}: {t['env']} {t['preset']}")
        results["tasks"][t["name"]] = run_task(console, t, model, work)
        results.update(summarize(results["tasks"]))
        results["wall_s"] = round(time.perf_counter() - t0, 1)
        if out:
            write_json(out, results)
    return results


def run_task(console: Console, t: dict[str, Any], model: str | None, work: Path) -> dict[str, Any]:
    """Loop per variant, then every re-training job of the task, then its numbers."""
    t0 = time.perf_counter()
    b = t["budget"]
    loops = {v: run_loop(console, t, v, model, work) for v in t["variants"]}
    sources: dict[str, tuple[str, str]] = {k: (t["files"][k].read_text(), "reward") for k in KINDS}
    for v, lp in loops.items():
        if lp.get("best_source"):
            sources[v] = (lp.pop("best_source"), VARIANTS[v][1])
        lp.pop("best_source", None)
    jobs = train_all(console, t, sources, work / t["name"] / "retrain")
    # the untrained policy at a seed is the same whatever reward it then learns from: the first job that ran at that seed
    untrained = [next(j["untrained"] for j in (jobs[(k, s)] for k in sources) if j["ok"]) for s in b["seeds"]
                 if any(jobs[(k, s)]["ok"] for k in sources)]
    entry: dict[str, Any] = {
        "env": t["env"], "preset": t["preset"], "task": t["text"], "fitness": t["task"].fitness,
        "success_threshold": t["task"].success, "budget": {k: b[k] for k in sorted(b)},
        "expert_file": str(t["files"]["expert"]), "sparse_file": str(t["files"]["sparse"]),
        "untrained": _stats([u["fitness"] for u in untrained], [u["success_rate"] for u in untrained]),
    }
    for kind in KINDS:
        entry[kind] = _kind_stats([jobs[(kind, s)] for s in b["seeds"]])
    entry["variants"] = {}
    for v, lp in loops.items():
        rows = [jobs[(v, s)] for s in b["seeds"]] if (v, b["seeds"][0]) in jobs else []
        gen = _kind_stats(rows) if rows else None
        entry["variants"][v] = {**lp, "generated": gen, "hns": hns(gen, entry["expert"], entry["untrained"])}
        entry["variants"][v]["env_steps_total"] = lp["loop_env_steps"] + sum(b["steps"] for r in rows if r["ok"])
    entry["retrain_env_steps"] = sum(b["steps"] for j in jobs.values() if j["ok"])
    entry["wall_s"] = round(time.perf_counter() - t0, 1)
    for v, e in entry["variants"].items():
        g = e["generated"]["fitness"]["mean"] if e["generated"] else None
        console.print(f"{t['name']} [{v}]: generated {_f(g)}, expert {_f(entry['expert']['fitness']['mean'])}, sparse "
                      f"{_f(entry['sparse']['fitness']['mean'])}, untrained {_f(entry['untrained']['fitness']['mean'])} -> HNS {_f(e['hns']['value'])}",
                      highlight=False, markup=False)  # "[library]" is text, not a rich tag
    return entry


def run_loop(console: Console, t: dict[str, Any], variant: str, model: str | None, work: Path) -> dict[str, Any]:
    """One loop run through the API; what it cost and its best source (popped by the caller)."""
    from autoreward import api
    from autoreward.llm import read_log

    library, shaping = VARIANTS[variant]
    b = t["budget"]
    exclude = [{"env": t["env"], "preset": t["preset"]}, {"env": t["env"], "task": t["text"]}]
    t0 = time.perf_counter()
    try:
        res = api.synthesize(
            t["text"], t["env"], out=work / t["name"] / variant, console=console, preset=t["preset"], model=model,
            iterations=b["iterations"], samples=b["samples"], steps=b["steps"], seed=b["loop_seed"], review=b["review"],
            max_episode_steps=b["max_episode_steps"], eval_episodes=b["eval_episodes"], hyperparams=dict(b["hyperparams"]),
            n_envs=int(b["n_envs"]), workers=b["workers"], device="cpu", report=False, shaping=shaping, library=library, library_dir=str(work / "library"),
            library_k=b["library_k"], library_exclude=exclude if library else [],
        )
    except AutorewardError as exc:  # recorded; the other tasks and variants still run
        return {"error": str(exc), "run_dir": None, "best_source": None, "tokens": 0, "cost": 0.0, "llm_seconds": 0.0,
                "llm_answers": 0, "llm_cached": 0, "library_shown": [],
                "loop_env_steps": 0, "loop_wall_s": round(time.perf_counter() - t0, 1)}
    log = read_log(res.run_dir)
    return {
        "run_dir": str(res.run_dir), "best": str(res.best_path.parent.relative_to(res.run_dir)) if res.best_path else None,
        "best_source": res.best_source, "loop_best_fitness": res.fitness, "stopped": res.stopped,
        "tokens": int(res.summary.get("tokens", 0)), "cost": float(res.summary.get("cost", 0.0)),
        **llm_spend(log),
        "library_shown": library_shown(res.run_dir),
        "candidates": len(res.candidates), "candidates_trained": sum(1 for c in res.candidates if c.trained),
        "loop_env_steps": sum(_steps(c.metrics) for c in res.candidates if c.metrics),
        "loop_wall_s": round(time.perf_counter() - t0, 1),
    }


def library_shown(run_dir: Path) -> list[str]:
    """Ids of the library entries the run's first prompt showed (its ``library.json``). Empty in
    a library variant means its prompt was the no-library one, so the two variants' results
    are the same run twice, not a measure of the library."""
    from autoreward.rundir import read_json

    path = run_dir / "library.json"
    return [e["id"] for e in read_json(path).get("examples", [])] if path.exists() else []


def llm_spend(log: list[dict[str, Any]]) -> dict[str, Any]:
    """Calls, seconds and answers of a run's LLM log (``read_log``). ``llm_cached`` counts the
    answers the on-disk cache gave back because an earlier run asked the same prompt with the
    same seed: they cost 0 s and 0 tokens, so the table says how many there were, and a cold
    measurement points AUTOREWARD_CACHE_DIR at an empty folder."""
    answers = [r for e in log for r in e.get("responses") or []]
    return {"llm_calls": len(log), "llm_seconds": round(sum(float(e.get("duration_s") or 0.0) for e in log), 1),
            "llm_answers": len(answers), "llm_cached": sum(1 for r in answers if r.get("cached"))}


def _steps(m: dict[str, Any]) -> int:
    """Env steps one loop candidate trained (successive halving records its own total)."""
    return int((m.get("halving") or {}).get("steps") or m.get("steps") or 0)


def train_all(console: Console, t: dict[str, Any], sources: dict[str, tuple[str, str]], root: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """Every (reward, seed) re-training job of a task, ``parallel`` at a time; one row per job."""
    from autoreward.sandbox import Limits
    from autoreward.train.algos import algorithm
    from autoreward.train.run import TrainSpec, train_candidate

    b, card, task = t["budget"], t["card"], t["task"]
    algo = card.training.algo
    limits = Limits.for_training(b["steps"], algorithm(algo).budget_steps_per_s)
    jobs = [(kind, seed) for kind in sources for seed in b["seeds"]]
    out: dict[tuple[str, int], dict[str, Any]] = {}
    lock = threading.Lock()

    def one(job: tuple[str, int]) -> None:
        kind, seed = job
        source, shaping = sources[kind]
        spec = TrainSpec(
            card_path=card.path, task=t["preset"], fitness=task.fitness, success=task.success, source=source, shaping=shaping,
            steps=b["steps"], algo=algo, seed=seed, hyperparams=dict(b["hyperparams"]), n_envs=int(b["n_envs"]), max_episode_steps=b["max_episode_steps"],
            eval_episodes=b["eval_episodes"], device="cpu", threads=1, save_policy=False, make_kwargs=dict(task.make_kwargs),
        )
        d = root / f"{kind}-seed{seed}"
        res = train_candidate(spec, d, limits)
        m = res.result if res.ok else {}
        row: dict[str, Any] = {"ok": bool(res.ok and m.get("ok")), "seed": seed, "dir": str(d), "wall_s": round(res.wall_seconds, 1)}
        if row["ok"]:
            row.update(fitness=float(m["final"]["fitness_mean"]), success_rate=float(m["final"]["success_rate"]),
                       untrained={"fitness": float(m["untrained"]["fitness_mean"]), "success_rate": float(m["untrained"]["success_rate"])},
                       steps_per_second=float(m.get("steps_per_second") or 0.0))
        else:
            row["error"] = res.error or m.get("error") or "unknown failure"
        with lock:
            out[job] = row
            msg = f"fitness {row['fitness']:.4g}, success {row['success_rate']:.2f}" if row["ok"] else f"FAILED: {row['error']}"
            console.print(f"  [{len(out)}/{len(jobs)}] {t['name']} {kind} seed {seed}: {msg} ({row['wall_s']:.0f} s)", highlight=False, markup=False)

    with ThreadPoolExecutor(max_workers=max(1, int(b["parallel"]))) as pool:
        list(pool.map(one, jobs))
    return out


def _stats(fitness: list[float], success: list[float]) -> dict[str, Any]:
    def spread(xs: list[float]) -> dict[str, Any]:
        return {"mean": statistics.fmean(xs) if xs else None, "sd": statistics.stdev(xs) if len(xs) > 1 else (0.0 if xs else None),
                "per_seed": xs}

    return {"fitness": spread(fitness), "success_rate": spread(success)}


def _kind_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in rows if r["ok"]]
    return {**_stats([r["fitness"] for r in good], [r["success_rate"] for r in good]),
            "failed_seeds": [r["seed"] for r in rows if not r["ok"]], "errors": [r["error"] for r in rows if not r["ok"]],
            "job_dirs": [r["dir"] for r in rows]}


def hns(gen: dict[str, Any] | None, expert: dict[str, Any], untrained: dict[str, Any]) -> dict[str, Any]:
    """The human-normalised score of one variant on one task, with why when there is none."""
    e, u = expert["fitness"]["mean"], untrained["fitness"]["mean"]
    if e is None or u is None:
        return {"value": None, "why": "the expert's or the untrained policy's jobs failed"}
    if e - u <= 1e-9:
        return {"value": None, "why": "the expert did not beat the untrained policy at this budget"}
    if gen is None:
        return {"value": 0.0, "why": "the loop handed back no reward: scored as the untrained policy"}
    g = gen["fitness"]["mean"]
    if g is None:
        return {"value": 0.0, "why": "every re-training of the loop's best failed: scored as the untrained policy"}
    return {"value": (g - u) / (e - u), "why": ""}


def summarize(tasks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Suite-level numbers per variant (mean and median HNS, fraction >= 1) and the total cost."""
    out: dict[str, Any] = {}
    names = sorted({v for t in tasks.values() for v in t["variants"]}, key=list(VARIANTS).index)
    for v in names:
        vals = [t["variants"][v]["hns"]["value"] for t in tasks.values() if v in t["variants"]]
        scored = [x for x in vals if x is not None]
        key = v.replace("-", "_")
        out[f"{key}_hns_mean"] = statistics.fmean(scored) if scored else None
        out[f"{key}_hns_median"] = statistics.median(scored) if scored else None
        out[f"{key}_fraction_hns_ge_1"] = sum(1 for x in scored if x >= 1.0) / len(scored) if scored else None
        out[f"{key}_tasks_scored"] = len(scored)
    loops = [lp for t in tasks.values() for lp in t["variants"].values()]
    out["tokens_total"] = sum(lp["tokens"] for lp in loops)
    out["cost_total"] = sum(lp["cost"] for lp in loops)
    out["llm_seconds_total"] = round(sum(lp["llm_seconds"] for lp in loops), 1)
    out["llm_answers_total"] = sum(lp.get("llm_answers", 0) for lp in loops)
    out["llm_cached_total"] = sum(lp.get("llm_cached", 0) for lp in loops)
    out["env_steps_total"] = sum(lp["loop_env_steps"] for lp in loops) + sum(t["retrain_env_steps"] for t in tasks.values())
    return out


def markdown(results: dict[str, Any]) -> str:
    """The results as a Markdown table (one row per task and variant) and the suite's lines,
    for benchmarks/*.md and the README; every number is read from ``results``."""
    def ms(k: dict[str, Any] | None) -> str:
        if not k or k["fitness"]["mean"] is None:
            return "n/a"
        return f"{k['fitness']['mean']:.3g} ± {k['fitness']['sd']:.2g} ({k['success_rate']['mean']:.2f})"

    rows = ["| task | variant | generated | expert | sparse | untrained | HNS | tokens | LLM s | env steps | wall s |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, t in results["tasks"].items():
        for v, e in (t["variants"] or {"(none)": None}).items():
            h = e["hns"]["value"] if e else None
            rows.append(f"| {name} | {v} | {ms(e['generated']) if e else '-'} | {ms(t['expert'])} | {ms(t['sparse'])} | {ms(t['untrained'])} | "
                        f"{_f(h) if e else '-'} | {e['tokens'] if e else 0:,} | {e['llm_seconds'] if e else 0:.0f} | "
                        f"{e['env_steps_total'] if e else t['retrain_env_steps']:,} | {t['wall_s']:.0f} |")
    lines = ["\n".join(rows), ""]
    for v in VARIANTS:
        key = v.replace("-", "_")
        if f"{key}_hns_mean" in results:
            lines.append(f"- {v}: HNS mean {_f(results[key + '_hns_mean'])}, median {_f(results[key + '_hns_median'])}, "
                         f"HNS ≥ 1 on {_f(results[key + '_fraction_hns_ge_1'])} of {results[key + '_tasks_scored']} scored tasks")
    lines.append(f"- total: {results.get('tokens_total', 0):,} tokens, ${results.get('cost_total', 0.0):.2f}, "
                 f"{results.get('llm_seconds_total', 0.0):.0f} LLM s ({results.get('llm_cached_total', 0)} of "
                 f"{results.get('llm_answers_total', 0)} answers from the cache), {results.get('env_steps_total', 0):,} env steps, "
                 f"{results.get('wall_s', 0.0) / 60:.0f} min wall")
    return "\n".join(lines) + "\n"


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def run_full(console: Console, **kw: Any) -> dict[str, Any]:
    """``--suite quality``: every task."""
    return run(console, suite="quality", **kw)


def run_quick(console: Console, **kw: Any) -> dict[str, Any]:
    """``--suite quality-quick``: 3 tasks, about 30 minutes on 2 cores with the embedded model."""
    return run(console, suite="quality-quick", **kw)
