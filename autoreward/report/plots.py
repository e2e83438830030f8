"""The report's plots, drawn with matplotlib and inlined as base64 PNG data URIs.

Each function takes plain data read from the run directory and returns a ``data:image/png``
URI (or None when there is nothing to draw), so the page needs no file and no network to
show them. Figures are built with ``matplotlib.figure.Figure`` (no pyplot global state), so
drawing never opens a window, leaks memory across candidates, or changes the backend of a
notebook that imports autoreward (PNG output always goes through Agg).
"""

from __future__ import annotations

import base64
import io
from typing import Any

from matplotlib.figure import Figure

BEST = "#d1495b"
COLORS = ["#00798c", "#edae49", "#66a182", "#2e4057", "#8d96a3", "#9b5de5", "#f15bb5", "#00bbf9"]


def _threshold(ax: Any, success: float | None, values: list[float]) -> None:
    """The success threshold: a dashed line when it is near the data, else a note, so a far
    threshold (3 m/s against 0.6 reached) does not squash the points into one flat line."""
    if success is None:
        return
    lo, hi = min(values), max(values)
    if success <= hi + max(hi - lo, 1e-9):
        ax.axhline(success, ls="--", color="gray", lw=1)
        ax.annotate(f"success ≥ {success:g}", (0, success), xycoords=("axes fraction", "data"), xytext=(4, 3),
                    textcoords="offset points", fontsize=8, color="gray")
    else:
        ax.set_ylabel(f"{ax.get_ylabel()}  (success ≥ {success:g}: above)")


def _uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _fig(w: float = 6.4, h: float = 3.2) -> tuple[Figure, Any]:
    fig = Figure(figsize=(w, h))
    ax = fig.add_subplot()
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def fitness_overview(cands: list[dict[str, Any]], success: float | None, best: str | None) -> str | None:
    """Final fitness of every trained candidate by iteration (hollow: the untrained policy;
    a cross: cut by successive halving on part of the budget; the threshold dashed)."""
    trained = [c for c in cands if c["fitness"] is not None]
    if not trained:
        return None
    fig, ax = _fig()
    per_iter: dict[int, list[int]] = {}
    for c in trained:
        per_iter.setdefault(c["iteration"], []).append(c["index"])
    for c in trained:
        slots = per_iter[c["iteration"]]  # spread an iteration's candidates over [-0.3, 0.3]
        x = c["iteration"] + (0.0 if len(slots) == 1 else -0.3 + 0.6 * slots.index(c["index"]) / (len(slots) - 1))
        color = BEST if c["rel"] == best else COLORS[c["index"] % len(COLORS)]
        ax.scatter([x], [c["untrained"]], facecolors="none", edgecolors=color, s=30)
        ax.annotate("", (x, c["fitness"]), (x, c["untrained"]), arrowprops={"arrowstyle": "->", "color": color, "alpha": 0.6})
        ax.scatter([x], [c["fitness"]], color=color, marker="x" if c["partial"] else "o", s=60 if c["rel"] == best else 40, zorder=3)
        ax.annotate(c["name"], (x, c["fitness"]), textcoords="offset points", xytext=(5, 3 + 9 * (c["index"] % 2)), fontsize=8)
    ax.set_ylabel("task fitness")
    _threshold(ax, success, [v for c in trained for v in (c["fitness"], c["untrained"]) if v is not None])
    iters = sorted({c["iteration"] for c in trained})
    ax.set_xticks(iters, [f"iteration {i}" for i in iters])
    ax.set_xlim(min(iters) - 0.5, max(iters) + 0.5)
    ax.set_title("Fitness per iteration and candidate (hollow: untrained; × cut by halving)", fontsize=10)
    return _uri(fig)


def learning_curves(cands: list[dict[str, Any]], success: float | None, best: str | None) -> str | None:
    """Task fitness at each periodic evaluation, one line per trained candidate."""
    curves = [c for c in cands if len(c["progress"]) >= 2]
    if not curves:
        return None
    fig, ax = _fig()
    for i, c in enumerate(curves):
        steps = [r["step"] for r in c["progress"]]
        fit = [r["task/fitness"] for r in c["progress"]]
        is_best = c["rel"] == best
        ax.plot(steps, fit, marker=".", lw=2.5 if is_best else 1.2, color=BEST if is_best else COLORS[i % len(COLORS)],
                label=c["rel"] + (" (best)" if is_best else ""), zorder=3 if is_best else 2)
    ax.set_ylabel("task fitness")
    _threshold(ax, success, [r["task/fitness"] for c in curves for r in c["progress"]])
    ax.set_xlabel("environment steps")
    ax.set_title("Learning curves (deterministic evaluations during training)", fontsize=10)
    ax.legend(fontsize=7, frameon=False, ncol=2)
    return _uri(fig)


def components(comps: dict[str, Any]) -> str | None:
    """Each reward component's window mean over training (``metrics.json`` components series)."""
    series = {k: v.get("series") or [] for k, v in comps.items()}
    if not any(len(s) >= 2 for s in series.values()):
        return None
    fig, ax = _fig(4.6, 2.8)
    for i, (k, s) in enumerate(series.items()):
        if len(s) >= 2:
            ax.plot([p[0] for p in s], [p[1] for p in s], lw=1.4, color="#8d96a3" if k == "env_reward" else COLORS[i % len(COLORS)],
                    ls=":" if k == "env_reward" else "-", label=k + (" (env's own)" if k == "env_reward" else ""))
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("mean per step")
    ax.set_title("Reward components over training", fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    return _uri(fig)


def reward_vs_fitness(progress: list[dict[str, Any]], rho: float | None, hacking: bool) -> str | None:
    """The candidate's own return against task fitness at each evaluation, in step order: the
    hacking signal is these two moving apart."""
    pts = [(r["eval/reward_return"], r["task/fitness"], r["step"]) for r in progress
           if r.get("eval/reward_return") is not None and r["eval/reward_return"] == r["eval/reward_return"]]
    if len(pts) < 2:
        return None
    fig, ax = _fig(4.6, 2.8)
    xs, ys, steps = zip(*pts)
    ax.plot(xs, ys, color="#8d96a3", lw=0.8, zorder=1)
    sc = ax.scatter(xs, ys, c=steps, cmap="viridis", s=30, zorder=2)
    fig.colorbar(sc, ax=ax, label="step", pad=0.02)
    ax.set_xlabel("candidate's return (evaluation)")
    ax.set_ylabel("task fitness")
    title = f"Reward vs fitness: Spearman {rho:+.2f}" if rho is not None else "Reward vs fitness (too few points for Spearman)"
    ax.set_title(title + ("  ⚠ hacking" if hacking else ""), fontsize=10, color=BEST if hacking else "black")
    return _uri(fig)
