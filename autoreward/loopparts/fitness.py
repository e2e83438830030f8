"""Settling the task fitness that judges a run's candidates, before any reward is designed."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.markup import escape

from autoreward.cards import EnvCard, render_card
from autoreward.critic.fitness import check_fitness_expr, fitness_text
from autoreward.critic.review import review_fitness
from autoreward.designer import propose_fitness
from autoreward.errors import ConfigError
from autoreward.loopparts.config import RunConfig
from autoreward.loopparts.ledger import Ledger
from autoreward.rundir import read_json, write_json


@dataclass
class FitnessAgreement:
    """Settles which fitness judges the run: the preset's (trusted card text), the user's
    ``--fitness`` (checked), or for a free-form task the designer's proposal, checked in the
    sandbox on the recorded rollouts, reviewed (advice only), shown, agreed with the person and
    saved as ``fitness.json``. Writes the result into the run's config (``fitness``,
    ``success``, ``fitness_doc``)."""

    dir: Path
    cfg: RunConfig
    card: EnvCard
    recording: Any
    ledger: Ledger
    console: Console
    #: shown a proposal (the fitness.json record), answers as a :data:`autoreward.loop.FitnessHook` does
    ask: Callable[[dict[str, Any]], dict[str, Any]] | None

    def ensure(self) -> None:
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
            check = self.check(c.fitness, float(c.success or 0.0))
            if not check.passed:
                raise ConfigError(f"--fitness {c.fitness!r} with --success {c.success:g}: {check.message}", "fix the expression or the threshold")
            c.fitness_doc = c.fitness_doc or fitness_text(c.fitness, float(c.success or 0.0), self.card.measures)
            return
        path = self.dir / "fitness.json"
        if path.exists():
            f = read_json(path)
            check = self.check(f["fitness"], float(f["success"]))
            if not check.passed:
                raise ConfigError(f"{path}: {check.message}", "edit the fitness or success in it and resume")
        else:
            f = self._agree()
            write_json(path, f)
        c.fitness, c.success = f["fitness"], float(f["success"])
        c.fitness_doc = fitness_text(c.fitness, c.success, self.card.measures, f.get("description", ""))

    def check(self, expr: str, success: float, task: str = "") -> Any:
        """``task``: the check of a proposal for it, which also compares directions (not a user's expression)."""
        n = len(list((self.dir / "fitness").glob("check*")))
        return check_fitness_expr(expr, success, self.card, self.recording, self.dir / "fitness" / f"check{n}", task=task)

    def _agree(self) -> dict[str, Any]:
        """Propose (with repairs), have the reviewer say whether it rises with the task (advice
        only), then show it: the person accepts, edits or asks again (``ask``); without one, it
        is printed and accepted."""
        feedback, attempt = "", 0
        while True:
            record = self._propose(feedback, attempt)
            self._print(record)
            answer = self.ask(record) if self.ask else {"action": "accept"}
            if answer["action"] == "accept":
                record["confirmed"] = "user" if self.ask else "auto"
                return record
            if answer["action"] == "edit":
                check = self.check(answer["fitness"], float(answer["success"]))
                if check.passed:
                    return {**record, "fitness": answer["fitness"], "success": float(answer["success"]),
                            "description": answer.get("description") or "edited by the user", "check": asdict(check), "confirmed": "user-edited"}
                self.console.print(f"[red]that fitness was rejected[/]: {escape(check.message)}")
                feedback = f"The user proposed FITNESS: {answer['fitness']} THRESHOLD: {answer['success']}, which was rejected: {check.message}"
            else:
                feedback = answer.get("feedback", "")
            attempt += 1

    def _propose(self, feedback: str, attempt: int) -> dict[str, Any]:
        """The designer's proposal (checked, with its repairs) and, unless review is off, the
        reviewer's advice on it, as the record ``fitness.json`` keeps."""
        c = self.cfg
        try:
            prop = propose_fitness(self.ledger.complete, render_card(self.card), c.task, self.card.measures,
                                   lambda expr, success: self.check(expr, success, task=c.task),
                                   seed=c.seed * 1000 + 900 + 10 * attempt, feedback=feedback)
        except ConfigError as exc:  # name this card's presets: "open the drawer" has one, and the user may not know it
            presets = ", ".join(f"--preset {name}" for name in self.card.tasks)
            raise ConfigError(exc.message, f"pass {presets or '--preset P'} (this card's), or --fitness EXPR --success X") from None
        record: dict[str, Any] = {
            "fitness": prop.expr, "success": prop.success, "description": prop.description, "proposed_by": self.ledger.client.model,
            "check": prop.check, "attempts": prop.attempts, "confirmed": "auto",
        }
        if c.review != "off":
            r = review_fitness(self.ledger.complete, c.task, render_card(self.card), prop.expr, prop.success, self.card.measures,
                               seed=c.seed * 1000 + 950 + attempt)
            record["review"] = {"accept": r.accept, "reason": r.reason}
        return record

    def _print(self, f: dict[str, Any]) -> None:
        """The proposal, how it scores the recorded rollouts, and the reviewer's advice."""
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
