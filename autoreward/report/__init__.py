"""The HTML report of a run: one self-contained page, ``report.html`` in the run directory.

Everything on the page is read from files in the run directory (``run.json``, ``state.json``,
``fitness.json``, each candidate's ``critic.json``, ``candidate.json``, ``review.json``,
``metrics.json``, ``analysis.json``, ``iter<i>/halving.json``), and each candidate's section
links the files its numbers came from. Plots are inline PNGs (``plots``), code is highlighted
by pygments, videos (``video``) are MP4 files inside the candidate folders referenced by
relative paths, so the page opens offline, from any copy of the run directory.

    autoreward report runs/HalfCheetah-v5__run_backwards__...   # writes report.html
"""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from autoreward.rundir import Candidate, Run, read_json, write_text

REPORT_FILE = "report.html"


def fitness_definition(run: Run, card: Any) -> dict[str, Any]:
    """The fitness that judged the run's candidates, and where it came from."""
    c = run.config
    spec = c.get("spec") or {}
    preset = c.get("preset") if run.kind == "run" else c.get("task")
    proposal = run.fitness_proposal
    if run.kind == "run" and c.get("fitness"):
        return {"expr": c["fitness"], "success": c.get("success"), "doc": c.get("fitness_doc", ""), "source": "given with --fitness", "unit": ""}
    if run.kind == "run" and not preset and proposal:
        src = {"user": "proposed by the designer, confirmed by the user", "user-edited": "edited by the user"}.get(
            proposal.get("confirmed", ""), f"proposed by {proposal.get('proposed_by', 'the designer')}, accepted without asking")
        return {"expr": proposal["fitness"], "success": proposal["success"], "doc": proposal.get("description", ""), "source": src, "unit": ""}
    if preset and preset in card.tasks:
        t = card.task(preset)
        return {"expr": spec.get("fitness") or t.fitness, "success": t.success, "doc": t.fitness_doc or t.description,
                "source": f"preset {preset!r} of the {card.id} card", "unit": t.unit}
    return {"expr": "", "success": None, "doc": "", "source": "not decided yet", "unit": ""}


@lru_cache(maxsize=1)
def _formatter() -> Any:
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(cssclass="code", style="friendly", linenos="inline")


def highlight(source: str) -> str:
    """Python source as highlighted HTML (pygments)."""
    from pygments import highlight as _hl
    from pygments.lexers import PythonLexer

    return _hl(source, PythonLexer(), _formatter())


def _position(rel: str) -> tuple[int, int]:
    nums = [int(n) for n in re.findall(r"\d+", rel)]
    return (nums[0], nums[1]) if len(nums) >= 2 else (0, 0)


def _components(cand: Candidate) -> dict[str, Any]:
    """The component series over the whole training: a candidate trained by successive halving
    has one ``metrics.json`` per rung (``rung<k>/``), each with its own part of the curve."""
    m = cand.metrics or {}
    last = (m.get("halving") or {}).get("rung")
    if last is None:
        return m.get("components") or {}
    merged: dict[str, Any] = {}
    for k in range(int(last) + 1):
        f = cand.dir / f"rung{k}" / "metrics.json"
        for name, v in (read_json(f).get("components") or {} if f.exists() else {}).items():
            merged.setdefault(name, {"series": []})["series"] += v.get("series") or []
    return merged or m.get("components") or {}


def _candidate(cand: Candidate, best: str | None) -> dict[str, Any]:
    """One candidate's section, as plain data for the template and the plots."""
    from autoreward.analyzer import format_numbers
    from autoreward.report import plots

    it, idx = _position(cand.rel)
    m = cand.metrics or {}
    nums = (cand.analysis or {}).get("numbers") or {}
    flags = list(nums.get("flags", []))
    hacking = any(f.startswith("reward hacking") for f in flags)
    halving = m.get("halving") or {}
    if cand.duplicate:
        state = "duplicate"
    elif not cand.accepted:
        state = "rejected"
    elif not cand.trained:
        state = "not trained yet"
    elif not cand.ok:
        state = "training failed"
    elif halving.get("cut"):
        state = "cut by halving"
    else:
        state = "trained"
    files = [n for n in ("reward.py", "critic.json", "candidate.json", "review.json", "metrics.json", "progress.csv", "analysis.json")
             if (cand.dir / n).exists()]
    return {
        "rel": cand.rel, "name": cand.dir.name, "iteration": it, "index": idx, "state": state, "best": cand.rel == best,
        "accepted": cand.accepted, "repairs": cand.status.get("repairs", 0), "error": cand.error,
        "history": [h for h in cand.status.get("history", []) if h.get("error")],
        "review_objection": cand.status.get("review_objection", ""), "review": cand.review, "verdict": cand.verdict,
        "duplicate": cand.duplicate, "halving": halving, "partial": bool(m.get("partial")),
        "fitness": cand.fitness, "untrained": (m.get("untrained") or {}).get("fitness_mean") if cand.ok else None,
        "success_rate": m.get("success_rate"), "solved": bool(m.get("solved")), "steps": m.get("steps"),
        "progress": m.get("progress") or [], "flags": flags, "hacking": hacking,
        "rho": nums.get("reward_fitness_spearman_over_training"),
        "summary": (cand.analysis or {}).get("summary", ""), "numbers": format_numbers(nums) if nums.get("ok") else "",
        "code": highlight(cand.source) if (cand.dir / "reward.py").exists() else "",
        "components_plot": plots.components(_components(cand)) if cand.ok else None,
        "corr_plot": plots.reward_vs_fitness(m.get("progress") or [], nums.get("reward_fitness_spearman_over_training"), hacking) if cand.ok else None,
        "files": [f"{cand.rel}/{n}" for n in files] + [f"{cand.rel}/{r.parent.name}/metrics.json" for r in sorted(cand.dir.glob("rung*/metrics.json"))],
        "videos": [],
    }


def steering(run: Run) -> list[dict[str, Any]]:
    """The human feedback given: words, edits and preferred parents, by iteration (``state.json``)."""
    st = run.state
    out = [dict(s) for s in st.get("steering", [])]
    logged_edits = {s.get("source") for s in out if s.get("action") == "edit"}
    out += [{"iteration": e["iteration"], "action": "edit", "source": e["source"]} for e in st.get("edits", []) if e["source"] not in logged_edits]
    if st.get("feedback"):  # given for the next iteration, not yet used
        out.append({"iteration": st.get("iteration", 0), "action": "feedback", "text": st["feedback"]})
    for s in out:
        if s.get("source"):
            s["code"] = highlight(s["source"])
    return sorted(out, key=lambda s: int(s.get("iteration", 0)))


def build(run: Run, videos: bool = True, video_seconds: float = 20.0, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Everything the page shows, as plain data; films the videos it needs (``video.film``)."""
    from autoreward.cards import load_card
    from autoreward.report import plots, video

    c = run.config
    card = load_card(c["env"], [Path(p) for p in c.get("cards") or []])
    fit = fitness_definition(run, card)
    best = run.best()
    best_rel = best.rel if best else None
    cands = [_candidate(x, best_rel) for x in run.candidates()]
    if videos and fit["expr"]:
        max_steps = c.get("max_episode_steps") or (c.get("spec") or {}).get("max_episode_steps")

        def shoot(cand: Candidate, view: dict[str, Any]) -> None:
            choices = video.choose_episodes(cand.metrics or {}, cand.rel == best_rel)
            if log:
                log(f"filming {cand.rel}: {', '.join(ch.why for ch in choices)}")
            m = cand.metrics or {}
            view["videos"] = [{**v, "src": f"{cand.rel}/{video.VIDEO_DIR}/{v['file']}" if v.get("file") else None}
                              for v in video.film(card.path, cand.dir, fit["expr"], choices, algo=m.get("algo", "ppo"),
                                                  make_kwargs=m.get("make_kwargs") or {}, max_episode_steps=max_steps, seconds=video_seconds)]

        todo = [(x, v) for x, v in zip(run.candidates(), cands) if x.ok and (x.dir / "policy.zip").exists()]
        with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:  # threads only wait on sandboxed workers
            for f in [pool.submit(shoot, x, v) for x, v in todo]:
                f.result()
    halving = {}
    for h in sorted(run.path.glob("iter*/halving.json")):
        halving[_position(h.parent.name + "/cand0")[0]] = read_json(h)
    iterations = sorted({v["iteration"] for v in cands})
    info = run.info
    st = run.state
    heading = c["task"] if run.kind == "run" else f"{c.get('reward', 'a reward')} on the preset {c.get('task', 'default')!r} ({run.kind})"
    best_view = next((v for v in cands if v["best"]), None)
    return {
        "title": f"{heading} · {card.id}", "heading": heading,
        "run": run, "run_name": run.path.name, "kind": run.kind, "config": c, "card": card, "fitness": fit,
        "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(info["created"])) if info.get("created") else "",
        "written": time.strftime("%Y-%m-%d %H:%M"), "state": st, "best": best_view,
        "candidates": cands, "iterations": [{"i": i, "candidates": [v for v in cands if v["iteration"] == i], "halving": halving.get(i)} for i in iterations],
        "overview_plot": plots.fitness_overview(cands, fit["success"], best_rel),
        "curves_plot": plots.learning_curves(cands, fit["success"], best_rel),
        "steering": steering(run), "pygments_css": _formatter().get_style_defs(".code"),
        "versions": info.get("versions", {}),
    }


def write_report(run: Run | Path | str, videos: bool = True, video_seconds: float = 20.0, log: Callable[[str], None] | None = None) -> Path:
    """Write ``report.html`` into the run directory (atomically) and return its path.

    ``videos``: film the best policy and one failure episode per trained candidate (sandboxed
    replays, kept in ``<candidate>/video/`` and reused when the report is written again)."""
    import jinja2

    from autoreward.prompts_io import prompts_dir

    run = run if isinstance(run, Run) else Run.load(run)
    ctx = build(run, videos=videos, video_seconds=video_seconds, log=log)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(prompts_dir())), autoescape=True,  # optional JSON fields (duplicate.of, halving.cut) read as empty
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = lambda x, f=".4g": "–" if x is None else format(x, f)
    html = env.get_template("report.html.j2").render(**ctx)
    out = run.path / REPORT_FILE
    write_text(out, html)
    return out
