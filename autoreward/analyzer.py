"""The Trajectory Analyzer: numbers first, then an LLM summary of failure causes.

Every number comes from the candidate's ``metrics.json``, so each one in a report can be traced
to a file: the final and untrained fitness, success and episodes from the judge (a process that
never loaded the reward, ``train/judge.py``), the learning curve and the component statistics
as the training process reported them about itself (they inform; they decide nothing). Saved next to the candidate as ``analysis.json`` and
``analysis.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from autoreward.program import NOT_IN_COMPONENTS
from autoreward.prompts_io import render
from autoreward.rundir import read_json, write_json, write_text

HACKING_RHO = 0.0  # reward/fitness correlation at or below this over training is flagged


def _spearman(a: list[float], b: list[float]) -> float | None:
    from scipy.stats import spearmanr

    a_, b_ = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a_) & np.isfinite(b_)
    if ok.sum() < 3 or np.std(a_[ok]) < 1e-12 or np.std(b_[ok]) < 1e-12:
        return None
    return round(float(spearmanr(a_[ok], b_[ok]).statistic), 3)


def numbers(metrics: dict[str, Any]) -> dict[str, Any]:
    """The analyzer's numbers from one candidate's metrics (no LLM)."""
    if not metrics.get("ok"):
        return {"ok": False, "error": metrics.get("error", "training failed"), "failed_at_step": metrics.get("failed_at_step")}
    prog = metrics.get("progress", [])
    fit = [r["task/fitness"] for r in prog]
    rew = [r["eval/reward_return"] for r in prog]
    eps = metrics.get("final_episodes", [])
    out: dict[str, Any] = {
        "ok": True,
        "fitness_untrained": metrics["untrained"]["fitness_mean"],
        "fitness_final": metrics["final"]["fitness_mean"],
        "fitness_best_during_training": max(fit) if fit else None,
        "fitness_curve": [[r["step"], r["task/fitness"]] for r in prog],
        "success_rate_final": metrics["final"]["success_rate"],
        "termination_causes": metrics["final"].get("causes", {}),
        "episode_length_mean": metrics["final"].get("length_mean"),
        "env_return_final": metrics["final"].get("env_return_mean"),
        "components": {k: {s: v[s] for s in ("min", "mean", "max")} for k, v in metrics.get("components", {}).items()},
        # "potential": the components are phi's terms at each state, plus (task reward) and (shaping)
        "shaping": metrics.get("shaping", "reward"),
        "reward_fitness_spearman_over_training": _spearman(rew, fit),
        "reward_fitness_spearman_final_episodes": _spearman([e.get("reward_return") for e in eps], [e["fitness"] for e in eps]),
    }
    if metrics.get("env_analysis"):
        out["env_analysis"] = metrics["env_analysis"]
    flags = []
    rho = out["reward_fitness_spearman_over_training"]
    # potential shaping cannot be hacked (the optimal policy is r_task's), and the plain sum of
    # gamma * phi(s') - phi(s) carries -(1 - gamma) * sum(phi), which moves against a good phi
    hackable = out["shaping"] != "potential"
    if hackable and rho is not None and rho <= HACKING_RHO:
        flags.append(f"reward hacking: our reward and the task fitness moved apart over training (Spearman {rho})")
    if hackable and len(fit) >= 3 and len(rew) >= 3 and rew[-1] > rew[0] and fit[-1] < fit[0]:
        flags.append("reward hacking: the reward rose while the task fitness fell")
    disagrees = (metrics.get("judge") or {}).get("disagrees")
    if disagrees:  # the same policy on the same episodes: only interference explains a difference
        flags.append(f"reward hacking: {disagrees}")
    if fit and out["fitness_final"] <= out["fitness_untrained"]:
        flags.append("no progress: the trained policy is no better than the untrained one")
    comps = out["components"]
    if NOT_IN_COMPONENTS in comps:
        v = comps[NOT_IN_COMPONENTS]
        flags.append(f"the total is not the sum of its components: the term {NOT_IN_COMPONENTS} (mean {v['mean']:.3g}, "
                     f"min {v['min']:.3g}, max {v['max']:.3g}) is what the named components do not explain; make the total additive")
    if comps:
        mags = {k: max(abs(v["min"]), abs(v["max"])) for k, v in comps.items() if k != "env_reward" and not k.startswith("(")}
        if mags:
            big = max(mags.values())
            for k, m in mags.items():
                if big > 0 and m < big / 100:
                    flags.append(f"component {k} is negligible next to the others (max |value| {m:.3g} vs {big:.3g})")
    out["flags"] = flags
    return out


def format_numbers(n: dict[str, Any]) -> str:
    """Plain-text lines of the numbers, for the LLM prompt and the Markdown report
    (``prompts/analyzer_numbers.j2``)."""
    return render("analyzer_numbers.j2", n=n).strip()


def analyze(candidate_dir: Path, task: str, complete: Callable[..., list[Any]] | None = None, seed: int = 0) -> dict[str, Any]:
    """Numbers, then (if ``complete`` is given: the loop's budget-counting LLM call) the LLM's
    summary; saved as ``analysis.json`` and ``analysis.md``."""
    candidate_dir = Path(candidate_dir)
    existing = candidate_dir / "analysis.json"
    if existing.exists():
        return read_json(existing)
    metrics = read_json(candidate_dir / "metrics.json")
    nums = numbers(metrics)
    text = format_numbers(nums)
    summary = ""
    if complete is not None:
        code = (candidate_dir / "reward.py").read_text()
        var = {"task": task, "code": code, "numbers": text, **({"potential": True} if nums.get("shaping") == "potential" else {})}
        msgs = [{"role": "user", "content": render("analyzer_summary.j2", **var)}]
        summary = complete(msgs, n=1, temperature=0.2, seed=seed, template="analyzer_summary.j2", variables=var, max_tokens=300)[0].text.strip()
    result = {"numbers": nums, "summary": summary}
    write_json(existing, result)
    write_text(candidate_dir / "analysis.md", render("analysis_md.j2", numbers=text, summary=summary))
    return result
