"""The orchestration of iterations: the only module that knows the order of things.

    design k samples -> per sample: static check, sandbox check, LLM review, repairs (<= 3)
    -> drop duplicates -> train the accepted ones -> analyze -> select by task fitness
    -> (human feedback) -> refine the best -> next iteration

Every step writes its result into the run directory before the next starts, and every step
first looks for its result there: that is how ``resume`` continues a run killed at any point
without re-asking the LLM (answers are saved, and re-issued prompts hit the on-disk cache) and
without retraining finished candidates.
"""

from __future__ import annotations

import os
import textwrap
import time
from concurrent.futures import as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from rich.console import Console

from rich.markup import escape

from autoreward.analyzer import analyze
from autoreward.cards import EnvCard, load_card, render_card
from autoreward.critic import check_program, record_rollouts
from autoreward.critic.check import REWARDS_FILE
from autoreward.critic.dedupe import behavioural_duplicate, load_rewards
from autoreward.critic.fitness import check_fitness_expr, fitness_text
from autoreward.critic.review import review, review_fitness
from autoreward.designer import Designer, Draft, dedup, default_example, propose_fitness
from autoreward.errors import ConfigError
from autoreward.executors import Executor, make_executor
from autoreward.halving import Schedule, successive_halving
from autoreward.library import Exclude, Library
from autoreward.library import from_run_best as library_entry_of_run
from autoreward.library import not_verified
from autoreward.program import RewardProgram
from autoreward.prompts_io import render
from autoreward.report.live import RunView
from autoreward.rundir import Candidate, Run, read_json, write_json, write_text
from autoreward.train.run import TrainSpec


class RunConfig(BaseModel):
    """One ``autoreward run``; saved in run.json and reloaded by resume/refine."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(description="The task in words.")
    env: str
    preset: str | None = Field(None, description="Preset whose fitness judges candidates.")
    model: str | None = None
    iterations: int = 2
    samples: int = 2
    steps: int = Field(0, ge=0, description="Training steps per candidate; 0: the card's budget for the preset (training.budget_steps: "
                       "where the card's expert reaches its success threshold).")
    algo: str = ""
    seed: int = 0
    max_repairs: int = 3
    refill_rounds: int = Field(1, ge=0, description="When the critic rejects every sample of an iteration (after repairs), ask for this "
                               "many fresh rounds of samples, told every rejection, before the iteration gives up.")
    diversity_rounds: int = Field(1, ge=0, description="When dedupe drops samples as copies (of each other or of earlier candidates), ask "
                                  "this many times for as many fresh samples as were dropped, shown the round's distinct programs and "
                                  "told to write a different one.")
    shaping: Literal["reward", "potential"] = Field(
        "reward", description="reward: the LLM writes the reward; potential: it writes a potential phi(state) and training uses the "
        "task's own signal + gamma * phi(s') - phi(s), which cannot change the optimal policy (Ng, Harada & Russell 1999)."
    )
    review: Literal["veto", "advise", "off"] = Field(
        "veto", description="LLM review of accepted programs: veto (a REJECT sends it back for repair), advise (recorded and passed on, no veto), off."
    )
    max_episode_steps: int | None = None
    eval_episodes: int = 3
    hyperparams: dict[str, Any] = Field(default_factory=dict)
    max_tokens: int | None = None
    max_cost: float | None = None
    max_wall_s: float | None = None
    max_env_steps: int | None = Field(None, ge=1, description="Stop before training more than this many environment steps in all (summed over candidates).")
    fitness: str | None = None
    success: float | None = None
    fitness_doc: str = ""
    cards: list[str] = Field(default_factory=list)
    policy: str = Field("", description="SB3 policy class; empty = the card's.")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="Env constructor arguments over the preset's.")
    device: str = "auto"
    n_envs: int = Field(0, ge=0, description="Envs each candidate trains on at once (0: the card's n_envs; the card's vec_env says dummy or subproc).")
    trainer: Literal["sb3", "sbx"] = Field("sb3", description="sb3 (PyTorch) or sbx (SB3's JAX port: 1.3-2.2x faster SAC, slower PPO on a CPU; pip install 'autoreward[sbx]').")
    workers: int = Field(0, description="Candidates trained at once (0: one per core); each is its own sandboxed process.")
    executor: Literal["local", "ray"] = Field("local", description="Where candidates train: local (a pool of --workers) or ray (Ray tasks; pip install 'autoreward[ray]').")
    ray_address: str = Field("", description="Ray cluster to use (e.g. 10.0.0.1:6379 or auto); empty: a new local Ray instance.")
    ray_num_cpus: float = Field(1.0, gt=0.0, description="CPUs Ray reserves for each candidate's training job (its torch threads).")
    ray_num_gpus: float = Field(0.0, ge=0.0, description="GPUs Ray reserves for each candidate's training job (fractions share one).")
    halving: Literal["auto", "on", "off"] = Field(
        "auto", description="Successive halving over an iteration's candidates: auto = on with >= 4 candidates to train."
    )
    halving_rungs: list[float] = Field(default_factory=lambda: [0.25, 0.5, 1.0], description="Rung budgets as fractions of --steps, ascending, ending at 1.0.")
    halving_keep: float = Field(0.5, gt=0.0, lt=1.0, description="Fraction of the ranked candidates that continues to the next rung.")
    report: bool = Field(default_factory=lambda: os.environ.get("AUTOREWARD_NO_REPORT", "").lower() not in ("1", "true", "yes"),
                         description="Write report.html (plots, code, videos) into the run directory at the end (default on; AUTOREWARD_NO_REPORT=1 turns the default off, e.g. in CI).")
    tensorboard: bool = Field(False, description="SB3 TensorBoard logs per candidate, in <candidate>/tensorboard (needs autoreward[tb]).")
    library: bool = Field(True, description="Use the reward library: its most relevant verified rewards go into the designer's first prompt, and this run's best is added to it at the end (--no-library: neither).")
    library_dir: str | None = Field(None, description="Library folder; default AUTOREWARD_LIBRARY, else the user data dir.")
    library_k: int = Field(2, ge=0, description="How many library entries the designer's first prompt shows.")
    library_exclude: list[Exclude] = Field(
        default_factory=list, description="Rules keeping entries out of the prompt (leave-one-out), e.g. [{env: HalfCheetah-v5, preset: run_backwards}]; an entry matching every field of a rule is left out."
    )

    @field_validator("halving_rungs")
    @classmethod
    def _rungs_ascend_to_one(cls, v: list[float]) -> list[float]:
        if not v or v[-1] != 1.0 or any(a >= b for a, b in zip([0.0, *v], v)):
            raise ValueError("rungs must be ascending fractions of the budget in (0, 1], ending at 1.0, e.g. [0.25, 0.5, 1.0]")
        return v


class BudgetExceeded(Exception):
    """A budget (--max-tokens, --max-cost, --max-wall, --max-env-steps) is spent: raised at a step
    boundary, caught by ``Loop.run``, which saves the state and reports the best so far."""


Hook = Callable[["Loop", int], dict[str, Any]]
#: shown a proposed fitness (the fitness.json record), answers {"action": "accept"},
#: {"action": "edit", "fitness": EXPR, "success": X} or {"action": "repropose", "feedback": TEXT}
FitnessHook = Callable[["Loop", dict[str, Any]], dict[str, Any]]


class Loop:
    """Runs (or resumes) the designer-critic-trainer-analyzer loop in one run directory."""

    def __init__(
        self, run_dir: Path, config: RunConfig, console: Console | None = None, hook: Hook | None = None,
        confirm_fitness: FitnessHook | None = None,
    ) -> None:
        from autoreward.llm import get_client

        self.dir = Path(run_dir)
        self.cfg = config
        self.console = console or Console()
        self.view = RunView(self.console)  # every progress line goes through it (a live table in a terminal)
        self.hook = hook
        self.confirm_fitness = confirm_fitness
        self._said_duplicate: set[Path] = set()  # candidates the view has shown as duplicates (once each, resumed runs too)
        self.card: EnvCard = load_card(config.env, [Path(c) for c in config.cards])
        if not config.steps:  # the card's budget, where its expert shows the behaviour (api.run_config resolves it too)
            config.steps = self.card.budget_steps(config.preset)
        self.client = get_client(config.model, log_dir=self.dir)
        self.state_path = self.dir / "state.json"
        self.state: dict[str, Any] = read_json(self.state_path) if self.state_path.exists() else {
            "iteration": 0, "parent": None, "feedback": "", "edits": [], "stopped": "", "tokens": 0, "cost": 0.0, "elapsed_s": 0.0,
        }
        from autoreward.llm.client import SpendMeter

        self.spend = SpendMeter(self.dir)  # what every process that worked on this run spent
        self._count()
        self._steps_left_out = ""
        preset_kwargs = self.card.task(config.preset).make_kwargs if config.preset else {}
        self.make_kwargs = {**preset_kwargs, **config.env_kwargs}
        tag = f"{config.preset}_" if self.make_kwargs else ""
        self.recording = record_rollouts(self.card, self.dir / "recordings" / f"probe_{tag}seed{config.seed}.npz", seed=config.seed, make_kwargs=self.make_kwargs)
        self.example = render("potential_example.j2") if config.shaping == "potential" else self.card.reward_example or self._default_example()
        self.run_dir = Run(self.dir, "run", config.model_dump())
        self._t0 = time.monotonic()
        self.view.usage(self.state["tokens"], self.state["cost"])

    def _default_example(self) -> str:
        env = self.card.make_env(**self.make_kwargs)
        try:
            return default_example(env.action_space)
        finally:
            env.close()

    # ----- bookkeeping -------------------------------------------------------------------

    def save_state(self) -> None:
        self._count()
        self.state["elapsed_s"] = self.state.get("elapsed_s", 0.0) + (time.monotonic() - self._t0)
        self._t0 = time.monotonic()
        write_json(self.state_path, self.state)

    def _count(self, outs: list[Any] | None = None) -> None:
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
        c = self.cfg
        elapsed = self.state.get("elapsed_s", 0.0) + (time.monotonic() - self._t0)
        if c.max_wall_s and elapsed >= c.max_wall_s:
            return f"wall-time budget of {c.max_wall_s:.0f} s reached"
        if not llm:
            c = c.model_copy(update={"max_tokens": None, "max_cost": None})
        if steps and c.max_env_steps and (self._steps_left_out or self.env_steps_spent() >= c.max_env_steps):
            return self._steps_left_out or f"env-step budget of {c.max_env_steps} reached"
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
        self._count(outs)
        self.view.usage(self.state["tokens"], self.state["cost"])
        return outs

    # ----- fitness --------------------------------------------------------------------------

    def ensure_fitness(self) -> None:
        """Preset fitness (trusted card text), or a fitness for a free-form task: the user's
        ``--fitness`` or the designer's proposal, checked in the sandbox on the recorded
        rollouts before any reward is designed, shown, and saved as ``fitness.json`` (edit it and
        resume to change it; an edit is checked again)."""
        c = self.cfg
        if c.fitness is None and c.preset:
            t = self.card.task(c.preset)
            c.fitness, c.success, c.fitness_doc = t.fitness, t.success, t.fitness_doc or t.fitness
            return
        if c.fitness is not None:
            check = self._check_fitness(c.fitness, float(c.success or 0.0))
            if not check.passed:
                raise ConfigError(f"--fitness {c.fitness!r} with --success {c.success:g}: {check.message}", "fix the expression or the threshold")
            c.fitness_doc = c.fitness_doc or fitness_text(c.fitness, float(c.success or 0.0), self.card.measures)
            return
        path = self.dir / "fitness.json"
        if path.exists():
            f = read_json(path)
            check = self._check_fitness(f["fitness"], float(f["success"]))
            if not check.passed:
                raise ConfigError(f"{path}: {check.message}", "edit the fitness or success in it and resume")
        else:
            f = self._agree_on_fitness()
            write_json(path, f)
        c.fitness, c.success = f["fitness"], float(f["success"])
        c.fitness_doc = fitness_text(c.fitness, c.success, self.card.measures, f.get("description", ""))

    def _check_fitness(self, expr: str, success: float, task: str = "") -> Any:
        """``task``: the check of a proposal for it, which also compares directions (not a user's expression)."""
        n = len(list((self.dir / "fitness").glob("check*")))
        return check_fitness_expr(expr, success, self.card, self.recording, self.dir / "fitness" / f"check{n}", task=task)

    def _agree_on_fitness(self) -> dict[str, Any]:
        """Propose (with repairs), have the reviewer say whether it rises with the task (advice
        only), then show it: the person accepts, edits or asks again (``confirm_fitness``);
        without one, it is printed and accepted."""
        c = self.cfg
        feedback, attempt = "", 0
        while True:
            try:
                prop = propose_fitness(self.complete, render_card(self.card), c.task, self.card.measures,
                                       lambda expr, success: self._check_fitness(expr, success, task=c.task),
                                       seed=c.seed * 1000 + 900 + 10 * attempt, feedback=feedback)
            except ConfigError as exc:  # name this card's presets: "open the drawer" has one, and the user may not know it
                presets = ", ".join(f"--preset {name}" for name in self.card.tasks)
                raise ConfigError(exc.message, f"pass {presets or '--preset P'} (this card's), or --fitness EXPR --success X") from None
            record: dict[str, Any] = {
                "fitness": prop.expr, "success": prop.success, "description": prop.description, "proposed_by": self.client.model,
                "check": prop.check, "attempts": prop.attempts, "confirmed": "auto",
            }
            if c.review != "off":
                r = review_fitness(self.complete, c.task, render_card(self.card), prop.expr, prop.success, self.card.measures,
                                   seed=c.seed * 1000 + 950 + attempt)
                record["review"] = {"accept": r.accept, "reason": r.reason}
            self._print_fitness(record)
            answer = self.confirm_fitness(self, record) if self.confirm_fitness else {"action": "accept"}
            if answer["action"] == "accept":
                record["confirmed"] = "user" if self.confirm_fitness else "auto"
                return record
            if answer["action"] == "edit":
                check = self._check_fitness(answer["fitness"], float(answer["success"]))
                if check.passed:
                    return {**record, "fitness": answer["fitness"], "success": float(answer["success"]),
                            "description": answer.get("description") or "edited by the user", "check": asdict(check), "confirmed": "user-edited"}
                self.console.print(f"[red]that fitness was rejected[/]: {escape(check.message)}")
                feedback = f"The user proposed FITNESS: {answer['fitness']} THRESHOLD: {answer['success']}, which was rejected: {check.message}"
            else:
                feedback = answer.get("feedback", "")
            attempt += 1

    def _print_fitness(self, f: dict[str, Any]) -> None:
        d = f["check"]["details"]
        self.console.print(f"[bold]proposed fitness[/]: {escape(f['fitness'])}  success ≥ {f['success']:g}  — {escape(f['description'])}")
        self.console.print(
            f"  on {d['episodes']} recorded rollouts of untrained behaviour: worst {d['worst']['value']:.4g} (episode {d['worst']['episode']}), "
            f"best {d['best']['value']:.4g} (episode {d['best']['episode']})"
        )
        if f.get("review"):
            r = f["review"]
            verdict = {True: "rises with the task", False: "[yellow]may not rise with the task[/]", None: "no verdict"}[r["accept"]]
            self.console.print(f"  reviewer (advice only): {verdict} — {escape(r['reason'])}")

    # ----- one candidate ----------------------------------------------------------------------

    def vet(self, designer: Designer, draft: Draft, cand: Path, seed: int) -> dict[str, Any]:
        """The critic's checks and the LLM review, with up to max_repairs repairs, each fed the
        exact message and the failure's kind."""
        status_path = cand / "candidate.json"
        if status_path.exists():
            return read_json(status_path)
        self.check_budget(llm=False)
        c = self.cfg
        history: list[dict[str, str]] = []
        for attempt in range(c.max_repairs + 1):
            objection, verdict_of_review = "", ""
            if draft.source is None:
                error, kind = "the answer contained no Python code", "no_code"
            else:
                write_text(cand / "reward.py", draft.source)
                verdict = check_program(
                    RewardProgram(draft.source), self.card, c.preset or "", cand, self.recording, fitness_expr=c.fitness, example=designer.example,
                    shaping=c.shaping,
                )
                error, kind = ("", "") if verdict.accepted else (verdict.message, verdict.failure_kind)
                if kind == "fitness_error":  # not the reward's fault: never sent to the designer
                    raise ConfigError(f"the fitness expression failed on the recorded rollouts: {verdict.message}", "edit fitness.json and resume, or pass --fitness")
                if not error and c.review != "off":
                    probe = verdict.check("probe")
                    r = review(self.complete, c.task, render_card(self.card), draft.source,
                               probe.details if probe and "spearman" in probe.details else None, seed=seed + 40 + attempt)
                    write_json(cand / "review.json", {"accept": r.accept, "reason": r.reason, "answer": r.answer})
                    # no verdict (neither ACCEPT nor REJECT in the answer) is not a pass: it is
                    # recorded and shown, and the program stands on the automatic checks, as if
                    # the reviewer were unavailable (README: "Critic")
                    verdict_of_review = {True: "accept", False: "reject", None: "no verdict"}[r.accept]
                    if r.accept is False and c.review == "veto":
                        error, kind = f"review: the reviewer says this code does not reward the task as written: {r.reason}", "review"
                    elif r.accept is False:
                        objection = r.reason
            history.append({"attempt": str(attempt), "error": error, "kind": kind})
            if not error:
                status: dict[str, Any] = {"accepted": True, "repairs": attempt, "history": history}
                if verdict_of_review:
                    status["review"] = verdict_of_review
                if objection:
                    status["review_objection"] = objection
                break
            if attempt == c.max_repairs:
                status = {"accepted": False, "repairs": attempt, "history": history, "error": error, "kind": kind}
                break
            # the attempts so far, so that `show` can say why a sample is not yet a candidate if
            # the run stops during its repairs (candidate.json is written only at the end)
            write_json(cand / "vetting.json", {"history": history})
            designer.repair(draft, error, kind, seed=seed + attempt)
        write_json(status_path, status)
        return status

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
            with self.view.watch(self.executor()) as pool:
                log = successive_halving(cands, self.spec, pool, Schedule(tuple(c.halving_rungs), c.halving_keep), self.console)
            if log:
                write_json(cands[0].parent / "halving.json", log)
            for cand in cands:
                m = read_json(cand / "metrics.json") if (cand / "metrics.json").exists() else {}
                cut = m.get("halving", {}).get("cut", "")
                detail = cut or (f"fitness {m['fitness']:.3g}" if m.get("ok") else f"training failed: {m.get('error', '')}")
                self.view.candidate(cand.name, "cut" if cut else "done" if m.get("ok") else "failed", detail, m.get("fitness"))
            return
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
        self.check_budget(llm=False)
        left = c.max_env_steps - self.env_steps_spent()
        fit = max(0, left // c.steps)
        if fit >= len(todo):
            return cands
        reason = f"env-step budget of {c.max_env_steps} reached: {left} steps left, {len(todo) - fit} candidate(s) of {c.steps} steps not trained"
        if fit == 0:
            raise BudgetExceeded(reason)
        self._steps_left_out = reason
        return [x for x in cands if x not in todo[fit:]]

    def behavioural_dedupe(self, it: Path, cands: list[Path]) -> list[Path]:
        """Drop candidates whose rewards on the recorded transitions are an affine or rank copy
        of a trained (or earlier kept) candidate's; returns the ones to train."""
        known = [(x.rel, r) for x in self.run_dir.candidates() if x.trained and not x.dir.is_relative_to(it)
                 for r in [load_rewards(x.dir / REWARDS_FILE)] if r is not None]
        keep = []
        for cand in cands:
            mine = load_rewards(cand / REWARDS_FILE)
            dup = None if mine is None or (cand / "metrics.json").exists() else behavioural_duplicate(mine, known)
            if dup is not None:
                write_json(cand / "duplicate.json", {"duplicate": True, "of": dup.of, "how": dup.how, "score": dup.score})
                self._say_duplicate(cand, f"{dup.message()}, not trained")
                continue
            keep.append(cand)
            if mine is not None:
                known.append((cand.relative_to(self.dir).as_posix(), mine))
        return keep

    # ----- iterations -----------------------------------------------------------------------

    def best(self) -> Candidate | None:
        """The trained candidate with the highest task fitness so far, across iterations."""
        return self.run_dir.best()

    def parent_info(self, rel: str) -> dict[str, Any]:
        cand = Candidate.read(self.dir, self.dir / rel)
        assert cand is not None and cand.metrics is not None
        m = cand.metrics
        return {
            "iteration": rel.split("/")[0].removeprefix("iter"),
            "parent_code": cand.source,
            "fitness": m["fitness"],
            "untrained": m["untrained"]["fitness_mean"],
            "success": self.cfg.success,
            "components": {k: {"mean": v["mean"], "min": v["min"], "max": v["max"]} for k, v in m.get("components", {}).items()},
            "analysis": (cand.analysis or {}).get("summary", ""),
            "failures": self.failures(),
            "review_objection": cand.status.get("review_objection", ""),
        }

    def failures(self) -> list[str]:
        """Why candidates of the latest iteration failed (critic after all repairs, or training),
        so that every failure goes back to the Designer, not only into the run directory."""
        out = []
        for cand in self.run_dir.candidates(self.state["iteration"] - 1):
            if not cand.accepted:
                out.append(f"{cand.dir.name} was rejected: {cand.error[:600]}")
            elif cand.trained and not cand.ok:
                out.append(f"{cand.dir.name} failed in training: {cand.error[:600]}")
        return out

    def run_iteration(self, i: int) -> None:
        c = self.cfg
        it = self.dir / f"iter{i}"
        designer = Designer(self, render_card(self.card), c.task, c.fitness_doc or c.fitness or "", example=self.example,
                            library=self.library_examples(), potential=c.shaping == "potential")
        seed = c.seed * 1000 + i * 100
        designs_path = it / "designs.json"
        self.view.iteration(i, c.iterations, c.samples)  # a resumed iteration too
        if designs_path.exists():
            drafts = [Draft.from_dict(d) for d in read_json(designs_path)]
        else:
            self.check_budget()
            parent = self.parent_info(self.state["parent"]) if self.state.get("parent") else None
            self.console.print(f"[bold]iteration {i}[/]: asking {self.client_name()} for {c.samples} reward programs...")
            t0 = time.monotonic()
            drafts = designer.sample(c.samples, seed=seed, parent=parent, feedback=self.state.get("feedback", ""), failures=self.failures())
            write_json(designs_path, [d.__dict__ for d in drafts])
            self.console.print(f"  {len(drafts)} answers back in {time.monotonic() - t0:.0f} s")
        designed = len(drafts)
        edits = [e for e in self.state.get("edits", []) if int(e["iteration"]) == i]
        for edit in edits:
            drafts.append(Draft(index=len(drafts), source=edit["source"], raw="(edited by the user)"))
        accepted, rejected = self._vet_drafts(designer, drafts, it, designs_path, seed)
        # a round in which the critic rejected every sample trains nothing: ask for fresh ones,
        # told every rejection (the 1.5B model kept a fall bonus through 3 repairs of one sample).
        # Not when the person edited this iteration (their edit is the steer); refill drafts are
        # saved in designs.json after the first ones, so a resumed run knows how many rounds ran.
        legacy = sum(1 for d in drafts[:designed] if not d.round and d.index >= c.samples)  # refills saved before rounds were labelled
        rounds = len({d.round for d in drafts if d.round.startswith("refill")}) + legacy // max(1, c.samples)
        while not accepted and not edits and rounds < c.refill_rounds:
            self.check_budget()
            rounds += 1
            self.console.print(f"  the critic rejected every sample: asking for {c.samples} fresh ones, told why (refill {rounds} of {c.refill_rounds})")
            accepted, more = self._more_drafts(designer, drafts, it, designs_path, seed, c.samples, f"refill{rounds}", seed + 50 * rounds,
                                               failures=[*self.failures(), *rejected])
            rejected.extend(more)
        earlier = [RewardProgram(x.source) for x in self.run_dir.candidates() if x.trained and not x.dir.is_relative_to(it)]
        to_train = self._distinct(it, accepted, earlier)
        # a round whose samples were copies (the 1.5B model copied the library's example: 1 distinct
        # of 4) trains less than was asked for: ask for as many as were dropped, shown the distinct ones
        diverse = len({d.round for d in drafts if d.round.startswith("diverse")})
        while accepted and len(to_train) < len(accepted) and not edits and diverse < c.diversity_rounds:
            self.check_budget()
            diverse += 1
            n = len(accepted) - len(to_train)
            self.console.print(f"  dedupe left {len(to_train)} distinct of {len(accepted)}: asking for {n} different ones "
                               f"(round {diverse} of {c.diversity_rounds})")
            written = [p.source for p in dedup([p for _, p in accepted])[0]]  # what this round wrote, copies of earlier runs' too
            fresh, more = self._more_drafts(designer, drafts, it, designs_path, seed, n, f"diverse{diverse}", seed + 70 + diverse,
                                            failures=self.failures(), written=written)
            rejected.extend(more)
            accepted = [*accepted, *fresh]
            to_train = self._distinct(it, accepted, earlier)
        self.train(to_train)
        to_train = [x for x in to_train if (x / "metrics.json").exists()]  # a spent step budget leaves some untrained
        self.save_state()
        for j, cand in enumerate(to_train):  # after training: the LLM never competes with the trainers
            ok = read_json(cand / "metrics.json").get("ok")
            analyze(cand, c.task, self.complete if ok else None, seed=seed + 90 + j)
            self.save_state()
        best = self.best()
        write_json(it / "summary.json", {"best": best.summary() if best else None, "candidates": [x.summary() for x in self.run_dir.candidates(i) if x.trained]})

    def _more_drafts(
        self, designer: Designer, drafts: list[Draft], it: Path, designs_path: Path, seed: int, n: int, label: str, ask_seed: int,
        failures: list[str], written: list[str] | None = None,
    ) -> tuple[list[tuple[Path, RewardProgram]], list[str]]:
        """Ask for ``n`` more samples (round ``label``), append them to ``drafts`` and to
        designs.json (the earlier entries keep their outcomes) and vet them."""
        parent = self.parent_info(self.state["parent"]) if self.state.get("parent") else None
        fresh = designer.sample(n, seed=ask_seed, parent=parent, feedback=self.state.get("feedback", ""), failures=failures, written=written)
        fresh = [Draft(len(drafts) + j, d.source, d.raw, label) for j, d in enumerate(fresh)]
        drafts.extend(fresh)
        write_json(designs_path, [*read_json(designs_path), *(d.__dict__ for d in fresh)])
        return self._vet_drafts(designer, fresh, it, designs_path, seed)

    def _distinct(self, it: Path, accepted: list[tuple[Path, RewardProgram]], earlier: list[RewardProgram]) -> list[Path]:
        """The accepted candidates to train: exact copies (of each other or of an earlier
        iteration's trained programs) and behavioural copies are marked duplicate and left out."""
        _, dropped = dedup([p for _, p in accepted], earlier)
        for j in dropped:
            cand = accepted[j][0]
            if not (cand / "duplicate.json").exists():
                write_json(cand / "duplicate.json", {"duplicate": True, "how": "same program"})
            self._say_duplicate(cand, "same program as one already trained or sampled, not trained")
        return self.behavioural_dedupe(it, [cand for j, (cand, _) in enumerate(accepted) if j not in dropped])

    def _say_duplicate(self, cand: Path, why: str) -> None:
        """Show a candidate as a duplicate once: the diversity round's second dedupe pass finds it again."""
        if cand not in self._said_duplicate:
            self._said_duplicate.add(cand)
            self.view.candidate(cand.name, "duplicate", why)

    def _vet_drafts(self, designer: Designer, drafts: list[Draft], it: Path, designs_path: Path,
                    seed: int) -> tuple[list[tuple[Path, RewardProgram]], list[str]]:
        """Vet each draft as candidate ``cand<index>``: the accepted programs, and why the others
        were rejected (one line each, for a refill round's prompt)."""
        accepted: list[tuple[Path, RewardProgram]] = []
        rejected: list[str] = []
        for d in drafts:
            cand = it / f"cand{d.index}"
            self.view.candidate(cand.name, "checking")
            status = self.vet(designer, d, cand, seed=seed + 10 * (d.index + 1))
            self._record_design(designs_path, d.index, status)
            self.save_state()
            n = status["repairs"]
            if status["accepted"]:
                no_verdict = "; the reviewer gave no verdict, so the automatic checks decided" if status.get("review") == "no verdict" else ""
                self.view.candidate(cand.name, "accepted", f"after {n} repair(s){no_verdict}")
                accepted.append((cand, RewardProgram((cand / "reward.py").read_text())))
            else:
                self.view.candidate(cand.name, "rejected", f"after {n} repair(s): {status.get('error', '')}")
                rejected.append(f"{cand.name} was rejected: {str(status.get('error', ''))[:600]}")
        return accepted, rejected

    @staticmethod
    def _record_design(path: Path, index: int, status: dict[str, Any]) -> None:
        """Write a sample's outcome beside its answer in ``designs.json``: how many repairs it
        took and whether the critic accepted it (the entry's ``source`` stays the code extracted
        from the first answer; the final code is the candidate's reward.py)."""
        if not path.exists():
            return
        designs = read_json(path)
        for entry in designs:
            if int(entry.get("index", -1)) == index:
                entry.update(repairs=int(status["repairs"]), accepted=bool(status["accepted"]), review=status.get("review", ""))
        write_json(path, designs)

    def client_name(self) -> str:
        return self.cfg.model or "the default model"

    def run(self) -> dict[str, Any]:
        """Run or resume until iterations, the success threshold or a budget ends it; then
        write the report (unless ``report`` is off). A spent budget stops it at the next step
        boundary, with the state saved and the best so far in the result."""
        try:
            self.ensure_fitness()
            with self.view:
                self._iterate()
        except BudgetExceeded as stop:
            self.state["stopped"] = str(stop)
            self.save_state()
        self.add_to_library()
        out = self.result()
        if self.cfg.report:
            from autoreward.report import write_report

            self.console.print(f"report: {write_report(self.dir, log=lambda s: self.console.print('  ' + s))}")
        return out

    def _iterate(self) -> None:
        while self.state["iteration"] < self.cfg.iterations and not self.state.get("stopped"):
            i = self.state["iteration"]
            self.run_iteration(i)
            best = self.best()
            self.state["parent"] = best.rel if best else self.state.get("parent")
            self.state["iteration"] = i + 1
            self.state["feedback"] = ""
            if best and best.summary()["solved"]:
                self.state["stopped"] = f"success threshold {self.cfg.success} reached by {best.rel}"
            elif self.over_budget():
                self.state["stopped"] = self.over_budget()
            self.save_state()
            if self.hook and not self.state.get("stopped") and self.state["iteration"] < self.cfg.iterations:
                with self.view.paused():
                    self.apply(self.hook(self, i))

    # ----- the reward library ------------------------------------------------------------------

    def library_examples(self) -> list[dict[str, Any]]:
        """The library entries the designer's first prompt shows (``library_k`` of them, minus
        ``library_exclude``), chosen once per run and saved in ``library.json``: a resumed run
        asks the same prompt (and hits the cache) even after other runs have added entries."""
        path = self.dir / "library.json"
        if path.exists():
            return list(read_json(path).get("examples", []))
        c = self.cfg
        if not c.library or c.library_k <= 0 or c.shaping == "potential":  # the library holds rewards, not potentials
            return []
        lib = Library(c.library_dir)
        try:
            found = lib.relevant(self.card.id, c.task, c.library_k, preset=c.preset, exclude=c.library_exclude,
                                 fields=[f.name for f in self.card.state])
        except OSError as exc:  # an unreadable library costs the examples, never the run
            self.console.print(f"[yellow]reward library {escape(str(lib.root))} not readable[/]: {escape(str(exc))}; no examples shown")
            return []
        examples = [{**e.model_dump(), "same_env": e.env == self.card.id} for e in found]
        write_json(path, {"library": str(lib.root), "k": c.library_k, "exclude": [x.model_dump(exclude_none=True) for x in c.library_exclude],
                          "examples": examples})
        if examples:
            shown = ", ".join(f"{e['id']} ({e['env']}: {textwrap.shorten(e['task'], 50, placeholder='…')})" for e in examples)
            self.console.print(f"library: the designer is shown {escape(shown)}")
        return examples

    def add_to_library(self) -> None:
        """Add the run's best reward (accepted, trained, with a fitness) to the library, with its
        env, task, fitness and verdict, unless it is no verified example (:func:`not_verified`:
        no better than untrained, or caught hacking); a failure to write is a warning, never a
        lost run."""
        c = self.cfg
        if not c.library or c.shaping == "potential":
            return
        t = self.card.tasks.get(c.preset) if c.preset else None
        entry = library_entry_of_run(self.dir, self.card.id, c.task, c.preset, c.fitness, c.success,
                                     unit=t.unit if t else "", fitness_doc=c.fitness_doc)
        if entry is None:
            return
        best = self.best()
        why_not = not_verified(entry, list(((best.analysis if best else None) or {}).get("flags", [])))
        if why_not:
            self.state["library_added"] = None
            self.state["library_skipped"] = why_not
            self.save_state()
            self.console.print(f"library: the best reward was not added: {why_not}")
            return
        lib = Library(c.library_dir)
        try:
            lib.add(entry)
        except OSError as exc:
            self.console.print(f"[yellow]could not add the best reward to the library {escape(str(lib.root))}[/]: {escape(str(exc))}")
            return
        self.state["library_added"] = entry.id
        self.state.pop("library_skipped", None)
        self.save_state()
        self.console.print(f"library: added the best reward as {entry.id} (`autoreward library show {entry.id}`)")

    def extend(self, iterations: int) -> None:
        """Allow ``iterations`` more iterations after the ones done (``refine``), and clear the
        reason the run stopped; the raised cap is saved in run.json so resume honours it."""
        self.cfg.iterations = int(self.state.get("iteration", 0)) + iterations
        self.state["stopped"] = ""
        self.save_state()
        self.run_dir.save_config(self.cfg.model_dump())

    def apply(self, action: dict[str, Any]) -> None:
        """Human steering between iterations: feedback, an edit, a preferred parent, stop."""
        kind = action.get("action", "continue")
        if kind != "continue":  # the report's "human feedback" section reads this log
            self.state.setdefault("steering", []).append({"iteration": self.state["iteration"], **action})
        if kind == "stop":
            self.state["stopped"] = "stopped by the user"
        elif kind == "feedback":
            self.state["feedback"] = action["text"]
        elif kind == "edit":
            self.state.setdefault("edits", []).append({"iteration": self.state["iteration"], "source": action["source"]})
        elif kind == "prefer":
            rel = action["candidate"]
            cand = Candidate.read(self.dir, self.dir / rel) if (self.dir / rel).is_dir() else None
            if cand is None or not cand.trained:
                raise ConfigError(f"candidate {rel} was not trained in this run", "see `autoreward show RUN` for candidates")
            if not cand.ok:
                raise ConfigError(f"candidate {rel} failed training and cannot be a parent")
            self.state["parent"] = rel
        self.save_state()

    def sample_stats(self) -> dict[str, Any]:
        """Critic acceptance before/after repair and seconds per design sample (for the note)."""
        from autoreward.llm import read_log

        st = [c.status for c in self.run_dir.candidates()]
        design = [e for e in read_log(self.dir) if str(e.get("template", "")).startswith("designer_") and e.get("template") != "designer_repair.j2"]
        fresh = [e for e in design if not e.get("error") and not any(r.get("cached") for r in e.get("responses", []))]
        n = sum(len(e.get("responses", [])) for e in fresh)  # cache hits would flatter the figure
        secs = sum(float(e.get("duration_s") or 0.0) for e in fresh)
        return {
            "samples": len(st),
            "accepted_without_repair": sum(1 for s in st if s["accepted"] and s["repairs"] == 0),
            "accepted_after_repair": sum(1 for s in st if s["accepted"]),
            "seconds_per_design_sample": round(secs / n, 1) if n else None,
        }

    def result(self) -> dict[str, Any]:
        best = self.best()
        out = {"run_dir": str(self.dir), "best": best.summary() if best else None, "stopped": self.state.get("stopped", ""), "iterations_done": self.state["iteration"], "tokens": self.state["tokens"], "cost": self.state["cost"], **self.sample_stats(),
               "library_added": self.state.get("library_added")}
        if self.state.get("library_skipped"):
            out["library_skipped"] = self.state["library_skipped"]
        if best and best.metrics:
            out.update(best_reward=str(best.dir / "reward.py"), best_fitness=best.fitness, untrained_fitness=best.metrics["untrained"]["fitness_mean"])
        write_json(self.dir / "result.json", out)
        return out
