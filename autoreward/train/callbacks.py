"""SB3 callbacks, one statistic each (SB3's template-method style), composed in the trainer."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from autoreward.sandbox.child import emit


class ComponentStatsCallback(BaseCallback):
    """Per-component statistics over training, as Eureka's reward reflection uses them:
    a series subsampled every ``every`` steps (window means) plus overall min/mean/max."""

    def __init__(self, every: int = 1000, start: int = 0) -> None:
        """``start``: steps already done (a later rung of successive halving continues them)."""
        super().__init__()
        self.every = every
        self.window: dict[str, list[float]] = {}
        self.overall: dict[str, dict[str, float]] = {}
        self.series: list[dict[str, float]] = []
        self._next = start + every

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            comps = info.get("reward_components")
            if comps is None:
                continue
            for k, v in comps.items():
                self.window.setdefault(k, []).append(v)
            self.window.setdefault("env_reward", []).append(info.get("env_reward", 0.0))
        if self.num_timesteps >= self._next:
            self._flush()
            self._next += self.every
        return True

    def _flush(self) -> None:
        if not self.window:
            return
        row: dict[str, float] = {"step": float(self.num_timesteps)}
        for k, vals in self.window.items():
            a = np.asarray(vals)
            row[k] = float(a.mean())
            o = self.overall.setdefault(k, {"min": np.inf, "max": -np.inf, "sum": 0.0, "n": 0})
            o["min"] = min(o["min"], float(a.min()))
            o["max"] = max(o["max"], float(a.max()))
            o["sum"] += float(a.sum())
            o["n"] += len(a)
        self.series.append(row)
        self.window = {}

    def _on_training_end(self) -> None:
        self._flush()

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, o in self.overall.items():
            out[k] = {
                "min": o["min"],
                "mean": o["sum"] / max(o["n"], 1),
                "max": o["max"],
                "series": [[r["step"], r[k]] for r in self.series if k in r],
            }
        return out


class FitnessEvalCallback(BaseCallback):
    """Evaluates task fitness every ``every`` steps with the shared protocol; writes a CSV row
    (``progress.csv``) per evaluation so a killed run still leaves its curve."""

    def __init__(self, every: int, evaluate: Callable[[], dict[str, Any]], csv_path: Path, start: int = 0,
                 stop_at: float | None = None) -> None:
        """``start``: steps already done; evaluations stay at multiples of ``every``. ``stop_at``:
        a fitness at which training ends (SB3 stops when a callback returns False)."""
        super().__init__()
        self.stop_at = stop_at
        self.stopped_at: int | None = None  # the step whose evaluation reached ``stop_at``
        self.every = every
        self.evaluate = evaluate
        self.csv_path = csv_path
        self.rows: list[dict[str, Any]] = []
        self._next = (start // every + 1) * every
        self.t0 = time.time()
        self.eval_seconds = 0.0  # kept apart so throughput counts training alone

    def record(self, step: int) -> dict[str, Any]:
        t = time.perf_counter()
        ev = self.evaluate()
        self.eval_seconds += time.perf_counter() - t
        ep_buf = list(self.model.ep_info_buffer) if self.model is not None and self.model.ep_info_buffer else []
        row = {
            "step": step,
            "time_s": round(time.time() - self.t0, 2),
            "task/fitness": ev["fitness_mean"],
            "task/fitness_std": ev["fitness_std"],
            "task/success_rate": ev["success_rate"],
            "eval/env_return": ev["env_return_mean"],
            "eval/reward_return": ev.get("reward_return_mean", float("nan")),
            "eval/length": ev["length_mean"],
            "eval/causes": json.dumps(ev["causes"], sort_keys=True),
            "train/env_return": float(np.mean([e["r"] for e in ep_buf])) if ep_buf else float("nan"),
            "train/length": float(np.mean([e["l"] for e in ep_buf])) if ep_buf else float("nan"),
        }
        self.rows.append(row)
        new = not self.csv_path.exists()
        with open(self.csv_path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        # after the row is on disk: a parent that stops the job on this event keeps it
        emit("eval", step=step, fitness=row["task/fitness"], time_s=row["time_s"])
        return row

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            row = self.record(self.num_timesteps)
            self._next += self.every
            if self.stop_at is not None and row["task/fitness"] >= self.stop_at:
                self.stopped_at = self.num_timesteps
                return False
        return True


class ProgressCallback(BaseCallback):
    """Sends JSON-line progress events to the parent, which draws the progress bar."""

    def __init__(self, total: int, every_s: float = 0.5) -> None:
        super().__init__()
        self.total = total
        self.every_s = every_s
        self._last = 0.0

    def _on_step(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            emit("progress", step=self.num_timesteps, total=self.total)
        return True
