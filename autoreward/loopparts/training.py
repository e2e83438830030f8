"""Training an iteration's accepted candidates, each in its own sandboxed job."""

from __future__ import annotations

import textwrap
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from autoreward.cards import EnvCard
from autoreward.executors import Executor, make_executor
from autoreward.halving import Schedule, successive_halving
from autoreward.loopparts.config import RunConfig
from autoreward.loopparts.ledger import BudgetExceeded, Ledger
from autoreward.report.live import RunView
from autoreward.rundir import read_json, write_json
from autoreward.train.run import TrainSpec


@dataclass
class Training:
    """Trains an iteration's candidates: each a plain-data :class:`TrainSpec` sent to the executor
    (a local pool or Ray), ``workers`` at a time or by successive halving, within what is left of
    the env-step budget; a line in the view as each finishes. Candidates with ``metrics.json``
    are trained already (a resumed run skips them)."""

    cfg: RunConfig
    card: EnvCard
    make_kwargs: dict[str, Any]
    ledger: Ledger
    view: RunView
    console: Console

    def spec(self, cand: Path) -> TrainSpec:
        """The training job of one accepted candidate, as plain data."""
        c = self.cfg
        return TrainSpec(
            card_path=self.card.path, task=c.preset or "custom", fitness=c.fitness or "", success=float(c.success or 0.0),
            source=(cand / "reward.py").read_text(), shaping=c.shaping, steps=c.steps, algo=c.algo or self.card.training.algo, seed=c.seed,
            hyperparams=c.hyperparams, max_episode_steps=c.max_episode_steps, eval_episodes=c.eval_episodes,
            make_kwargs=self.make_kwargs, policy=c.policy, device=c.device, tensorboard=c.tensorboard,
            n_envs=c.n_envs, trainer=c.trainer,
        )

    def executor(self) -> Executor:
        """Where this run's training jobs go (``--executor``), a context manager."""
        c = self.cfg
        return make_executor(c.executor, c.workers, c.ray_address, c.ray_num_cpus, c.ray_num_gpus)

    def train(self, cands: list[Path]) -> None:
        """Train the candidates not trained yet, ``workers`` at a time (by successive halving
        when it is on); a line as each finishes."""
        c = self.cfg
        if not cands:
            return
        cands = self._within_step_budget(cands)
        if c.halving == "on" or (c.halving == "auto" and len(cands) >= 4):
            self._by_halving(cands)
        else:
            self._all_in_full(cands)

    def _by_halving(self, cands: list[Path]) -> None:
        """Successive halving over the candidates (decisions in ``halving.json``), then a line
        each: cut at which rung, done or failed."""
        c = self.cfg
        with self.view.watch(self.executor()) as pool:
            log = successive_halving(cands, self.spec, pool, Schedule(tuple(c.halving_rungs), c.halving_keep), self.console)
        if log:
            write_json(cands[0].parent / "halving.json", log)
        for cand in cands:
            m = read_json(cand / "metrics.json") if (cand / "metrics.json").exists() else {}
            cut = m.get("halving", {}).get("cut", "")
            detail = cut or (f"fitness {m['fitness']:.3g}" if m.get("ok") else f"training failed: {m.get('error', '')}")
            self.view.candidate(cand.name, "cut" if cut else "done" if m.get("ok") else "failed", detail, m.get("fitness"))

    def _all_in_full(self, cands: list[Path]) -> None:
        """Every untrained candidate for the full budget, ``workers`` at a time, a line as each finishes."""
        todo = [cand for cand in cands if not (cand / "metrics.json").exists()]
        if not todo:
            return
        with self.view.watch(self.executor()) as pool:
            futures = {pool.submit(self.spec(cand), cand): cand for cand in todo}
            self.view.line(f"  training {len(todo)} candidate(s) for {self.cfg.steps} steps, {min(pool.workers, len(todo))} at a time")
            for done in as_completed(futures):
                done.result()
                cand = futures[done]
                m = read_json(cand / "metrics.json")
                if m.get("ok"):
                    self.view.candidate(cand.name, "done", f"fitness {m['untrained']['fitness_mean']:.3g} -> {m['fitness']:.3g}", m["fitness"])
                else:
                    self.view.candidate(cand.name, "failed", f"training failed: {textwrap.shorten(m.get('error', ''), 400, placeholder=' …')}")

    def _within_step_budget(self, cands: list[Path]) -> list[Path]:
        """The candidates whose full training fits in what is left of ``max_env_steps``; when some
        do not fit, the run stops after this iteration (none fits: it stops now)."""
        c = self.cfg
        todo = [x for x in cands if not (x / "metrics.json").exists()]
        if not c.max_env_steps or not todo:
            return cands
        self.ledger.check_budget(llm=False)
        left = c.max_env_steps - self.ledger.env_steps_spent()
        fit = max(0, left // c.steps)
        if fit >= len(todo):
            return cands
        reason = f"env-step budget of {c.max_env_steps} reached: {left} steps left, {len(todo) - fit} candidate(s) of {c.steps} steps not trained"
        if fit == 0:
            raise BudgetExceeded(reason)
        self.ledger.steps_left_out = reason
        return [x for x in cands if x not in todo[fit:]]
