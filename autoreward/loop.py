"""The orchestration of iterations: the only module that knows the order of things.

    design k samples -> per sample: static check, sandbox check, LLM review, repairs (<= 3)
    -> drop duplicates -> train the accepted ones -> analyze -> select by task fitness
    -> (human feedback) -> refine the best -> next iteration

Every step writes its result into the run directory before the next starts, and every step
first looks for its result there: that is how ``resume`` continues a run killed at any point
without re-asking the LLM (answers are saved, and re-issued prompts hit the on-disk cache) and
without retraining finished candidates.

Each step is done by one piece of :mod:`autoreward.loopparts`; :class:`Loop` puts them in order:

- :class:`~autoreward.loopparts.ledger.Ledger`: ``state.json``, the budgets, the LLM call that counts
- :class:`~autoreward.loopparts.fitness.FitnessAgreement`: the task fitness, before any design
- :class:`~autoreward.loopparts.sampling.Sampling`: an iteration's rounds of samples, vetted
  (:class:`~autoreward.loopparts.vetting.Vetting`) and deduped (:class:`~autoreward.loopparts.dedupe.Dedupe`)
- :class:`~autoreward.loopparts.training.Training`: the accepted candidates' training jobs
- :class:`~autoreward.loopparts.selection.Selection`: the best, the summaries, ``result.json``
- :class:`~autoreward.loopparts.reward_library.RunLibrary`: library examples in, the best out
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from rich.console import Console

from autoreward.analyzer import analyze
from autoreward.cards import EnvCard, load_card, render_card
from autoreward.critic import record_rollouts
from autoreward.designer import Designer, default_example
from autoreward.errors import ConfigError
from autoreward.loopparts.config import RunConfig
from autoreward.loopparts.dedupe import Dedupe
from autoreward.loopparts.fitness import FitnessAgreement
from autoreward.loopparts.ledger import BudgetExceeded, Ledger
from autoreward.loopparts.reward_library import RunLibrary
from autoreward.loopparts.sampling import Sampling
from autoreward.loopparts.selection import Selection
from autoreward.loopparts.training import Training
from autoreward.loopparts.vetting import Vetting
from autoreward.prompts_io import render
from autoreward.report.live import RunView
from autoreward.rundir import Candidate, Run, read_json

__all__ = ["BudgetExceeded", "FitnessHook", "Hook", "Loop", "RunConfig"]

Hook = Callable[["Loop", int], dict[str, Any]]
#: shown a proposed fitness (the fitness.json record), answers {"action": "accept"},
#: {"action": "edit", "fitness": EXPR, "success": X} or {"action": "repropose", "feedback": TEXT}
FitnessHook = Callable[["Loop", dict[str, Any]], dict[str, Any]]


class Loop:
    """Runs (or resumes) the designer-critic-trainer-analyzer loop in one run directory: puts the
    pieces of :mod:`autoreward.loopparts` in order, iteration after iteration, and takes the
    person's steering between iterations."""

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
        self.card: EnvCard = load_card(config.env, [Path(c) for c in config.cards])
        if not config.steps:  # the card's budget, where its expert shows the behaviour (api.run_config resolves it too)
            config.steps = self.card.budget_steps(config.preset)
        self.client = get_client(config.model, log_dir=self.dir)
        preset_kwargs = self.card.task(config.preset).make_kwargs if config.preset else {}
        self.make_kwargs = {**preset_kwargs, **config.env_kwargs}
        tag = f"{config.preset}_" if self.make_kwargs else ""
        self.recording = record_rollouts(self.card, self.dir / "recordings" / f"probe_{tag}seed{config.seed}.npz", seed=config.seed, make_kwargs=self.make_kwargs)
        self.example = render("potential_example.j2") if config.shaping == "potential" else self.card.reward_example or self._default_example()
        self.run_dir = Run(self.dir, "run", config.model_dump())
        # the pieces (autoreward/loopparts), each handed the others it needs; the ledger reads state.json
        self.ledger = Ledger(self.dir, config, self.client, self.view)
        self.selection = Selection(self.dir, self.run_dir, config, self.ledger)
        self.library = RunLibrary(self.dir, config, self.card, self.ledger, self.selection, self.console)
        ask = (lambda record: confirm_fitness(self, record)) if confirm_fitness else None
        self.fitness = FitnessAgreement(self.dir, config, self.card, self.recording, self.ledger, self.console, ask)
        self.vetting = Vetting(config, self.card, self.recording, self.ledger, self.view)
        self.dedupe = Dedupe(self.dir, self.run_dir, self.view)
        self.sampling = Sampling(self.dir, self.run_dir, config, self.ledger, self.selection, self.vetting, self.dedupe, self.console, self.client_name)
        self.training = Training(config, self.card, self.make_kwargs, self.ledger, self.view, self.console)
        self.view.usage(self.state["tokens"], self.state["cost"])

    def _default_example(self) -> str:
        env = self.card.make_env(**self.make_kwargs)
        try:
            return default_example(env.action_space)
        finally:
            env.close()

    @property
    def state(self) -> dict[str, Any]:
        """The run's ``state.json`` (kept by the ledger): iteration, parent, feedback, edits, why it stopped, spending."""
        return self.ledger.state

    def save_state(self) -> None:
        self.ledger.save_state()

    def complete(self, *args: Any, **kw: Any) -> list[Any]:
        """The LLM call that counts against the budgets (:meth:`Ledger.complete
        <autoreward.loopparts.ledger.Ledger.complete>`); the designer calls it through the loop."""
        return self.ledger.complete(*args, **kw)

    def client_name(self) -> str:
        return self.cfg.model or "the default model"

    def best(self) -> Candidate | None:
        """The trained candidate with the highest task fitness so far, across iterations."""
        return self.selection.best()

    def library_examples(self) -> list[dict[str, Any]]:
        """The library entries the designer's first prompt shows (:meth:`RunLibrary.examples
        <autoreward.loopparts.reward_library.RunLibrary.examples>`)."""
        return self.library.examples()

    def add_to_library(self) -> None:
        """Add the run's best reward to the library if it is verified (:meth:`RunLibrary.add_best
        <autoreward.loopparts.reward_library.RunLibrary.add_best>`)."""
        self.library.add_best()

    def result(self) -> dict[str, Any]:
        """The run's outcome, also written as ``result.json``."""
        return self.selection.result()

    # ----- the order of things ------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Run or resume until iterations, the success threshold or a budget ends it; then
        write the report (unless ``report`` is off). A spent budget stops it at the next step
        boundary, with the state saved and the best so far in the result."""
        try:
            self.fitness.ensure()
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
        """Iterations until the cap, the success threshold, a budget or the person stops them;
        the best so far becomes the parent, and the hook is asked between iterations."""
        while self.state["iteration"] < self.cfg.iterations and not self.state.get("stopped"):
            i = self.state["iteration"]
            self.run_iteration(i)
            best = self.best()
            self.state["parent"] = best.rel if best else self.state.get("parent")
            self.state["iteration"] = i + 1
            self.state["feedback"] = ""
            if best and best.summary()["solved"]:
                self.state["stopped"] = f"success threshold {self.cfg.success} reached by {best.rel}"
            elif self.ledger.over_budget():
                self.state["stopped"] = self.ledger.over_budget()
            self.save_state()
            if self.hook and not self.state.get("stopped") and self.state["iteration"] < self.cfg.iterations:
                with self.view.paused():
                    self.apply(self.hook(self, i))

    def run_iteration(self, i: int) -> None:
        """Iteration ``i``: samples designed, vetted and deduped; the rest trained, then analysed
        (after training: the LLM never competes with the trainers); its summary written."""
        c = self.cfg
        designer = Designer(self, render_card(self.card), c.task, c.fitness_doc or c.fitness or "", example=self.example,
                            library=self.library_examples(), potential=c.shaping == "potential")
        seed = c.seed * 1000 + i * 100
        self.view.iteration(i, c.iterations, c.samples)  # a resumed iteration too
        to_train = self.sampling.candidates(i, designer, seed)
        self.training.train(to_train)
        to_train = [x for x in to_train if (x / "metrics.json").exists()]  # a spent step budget leaves some untrained
        self.save_state()
        for j, cand in enumerate(to_train):
            ok = read_json(cand / "metrics.json").get("ok")
            analyze(cand, c.task, self.complete if ok else None, seed=seed + 90 + j)
            self.save_state()
        self.selection.write_summary(i)

    # ----- the person's steering ----------------------------------------------------------------

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
