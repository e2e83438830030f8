"""The run's ledger: ``state.json`` (where the run is, what the person steered, why it stopped)
and the budgets (tokens, cost, wall time, env steps), with the one LLM call that counts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from autoreward.loopparts.config import RunConfig
from autoreward.report.live import RunView
from autoreward.rundir import read_json, write_json


class BudgetExceeded(Exception):
    """A budget (--max-tokens, --max-cost, --max-wall, --max-env-steps) is spent: raised at a step
    boundary, caught by ``Loop.run``, which saves the state and reports the best so far."""


class Ledger:
    """Keeps the run's state and its budgets: ``state.json`` saved at every step boundary (with the
    time spent), tokens and cost read from the exchange log, the budget checks, and
    :meth:`complete`, the LLM call that every role of the run goes through so that it counts."""

    def __init__(self, run_dir: Path, cfg: RunConfig, client: Any, view: RunView) -> None:
        from autoreward.llm.client import SpendMeter

        self.dir = run_dir
        self.cfg = cfg
        self.client = client
        self.view = view
        self.state_path = run_dir / "state.json"
        self.state: dict[str, Any] = read_json(self.state_path) if self.state_path.exists() else {
            "iteration": 0, "parent": None, "feedback": "", "edits": [], "stopped": "", "tokens": 0, "cost": 0.0, "elapsed_s": 0.0,
        }
        self.spend = SpendMeter(run_dir)  # what every process that worked on this run spent
        self._count()
        #: why candidates were left untrained for lack of env steps (training sets it): the run
        #: stops at the next budget check
        self.steps_left_out = ""
        self._t0 = time.monotonic()

    def save_state(self) -> None:
        self._count()
        self.state["elapsed_s"] = self.state.get("elapsed_s", 0.0) + (time.monotonic() - self._t0)
        self._t0 = time.monotonic()
        write_json(self.state_path, self.state)

    def _count(self) -> None:
        """Tokens and cost from the exchange log, not from a counter in memory: the log holds
        every request of every process that worked on this run (a killed one's included, the
        analyzer's and the reviewer's too), so budgets hold across kills and resumes."""
        self.state["tokens"], self.state["cost"] = self.spend.read()

    def env_steps_spent(self) -> int:
        """Training steps of every candidate trained so far, from their metrics.json."""
        total = 0
        for path in self.dir.glob("iter*/cand*/metrics.json"):
            m = read_json(path)
            total += int(m.get("steps", 0) if m.get("ok") or "failed_at_step" not in m else m["failed_at_step"])
        return total

    def check_budget(self, steps: bool = True, llm: bool = True) -> None:
        """At a step boundary: stop the run (BudgetExceeded) if a budget is spent. The wall clock
        counts everywhere; tokens and cost only before an LLM request (``llm``), so what was
        already designed is still checked and trained; env steps only where training may
        follow (``steps``): analysing what was trained costs none."""
        self._count()
        reason = self.over_budget(steps, llm)
        if reason:
            raise BudgetExceeded(reason)

    def over_budget(self, steps: bool = True, llm: bool = True) -> str:
        """Which budget is spent, in words; empty while none is."""
        c = self.cfg
        elapsed = self.state.get("elapsed_s", 0.0) + (time.monotonic() - self._t0)
        if c.max_wall_s and elapsed >= c.max_wall_s:
            return f"wall-time budget of {c.max_wall_s:.0f} s reached"
        if not llm:
            c = c.model_copy(update={"max_tokens": None, "max_cost": None})
        if steps and c.max_env_steps and (self.steps_left_out or self.env_steps_spent() >= c.max_env_steps):
            return self.steps_left_out or f"env-step budget of {c.max_env_steps} reached"
        if c.max_tokens and self.state["tokens"] >= c.max_tokens:
            return f"token budget of {c.max_tokens} reached"
        if c.max_cost and self.state["cost"] >= c.max_cost:
            return f"cost budget of ${c.max_cost} reached"
        if c.max_wall_s and elapsed >= c.max_wall_s:
            return f"wall-time budget of {c.max_wall_s:.0f} s reached"
        return ""

    def complete(self, *args: Any, **kw: Any) -> list[Any]:
        """The LLM client's ``complete``, counting tokens and cost against the budgets. Every LLM
        call of a run goes through here: designer, reviewer, analyzer, fitness proposer."""
        self.check_budget(steps=False)
        outs = self.client.complete(*args, **kw)
        self._count()
        self.view.usage(self.state["tokens"], self.state["cost"])
        return outs
