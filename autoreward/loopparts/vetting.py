"""Vetting drafts: the critic's checks and the LLM review, with repairs, before any training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoreward.cards import EnvCard, render_card
from autoreward.critic import check_program
from autoreward.critic.review import review
from autoreward.designer import Designer, Draft
from autoreward.errors import ConfigError
from autoreward.loopparts.config import RunConfig
from autoreward.loopparts.ledger import Ledger
from autoreward.program import RewardProgram
from autoreward.report.live import RunView
from autoreward.rundir import read_json, write_json, write_text

#: one attempt's outcome: (error, its kind, the review's verdict, the review's objection); no error accepts
Attempt = tuple[str, str, str, str]


@dataclass
class Vetting:
    """Turns drafts into accepted or rejected candidates: per draft the critic's checks (static
    policy, sandboxed dry run, behaviour probe) and the LLM review, with up to ``max_repairs``
    repairs, each fed the exact message and the failure's kind. The verdict is saved as the
    candidate's ``candidate.json`` (found there on resume) and beside its answer in
    ``designs.json``."""

    cfg: RunConfig
    card: EnvCard
    recording: Any
    ledger: Ledger
    view: RunView

    def vet_all(self, designer: Designer, drafts: list[Draft], it: Path, designs_path: Path,
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
            self.ledger.save_state()
            n = status["repairs"]
            if status["accepted"]:
                no_verdict = "; the reviewer gave no verdict, so the automatic checks decided" if status.get("review") == "no verdict" else ""
                self.view.candidate(cand.name, "accepted", f"after {n} repair(s){no_verdict}")
                accepted.append((cand, RewardProgram((cand / "reward.py").read_text())))
            else:
                self.view.candidate(cand.name, "rejected", f"after {n} repair(s): {status.get('error', '')}")
                rejected.append(f"{cand.name} was rejected: {str(status.get('error', ''))[:600]}")
        return accepted, rejected

    def vet(self, designer: Designer, draft: Draft, cand: Path, seed: int) -> dict[str, Any]:
        """The critic's checks and the LLM review, with up to max_repairs repairs, each fed the
        exact message and the failure's kind."""
        status_path = cand / "candidate.json"
        if status_path.exists():
            return read_json(status_path)
        self.ledger.check_budget(llm=False)
        c = self.cfg
        history: list[dict[str, str]] = []
        for attempt in range(c.max_repairs + 1):
            error, kind, verdict_of_review, objection = self._attempt(designer, draft, cand, review_seed=seed + 40 + attempt)
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

    def _attempt(self, designer: Designer, draft: Draft, cand: Path, review_seed: int) -> Attempt:
        """One look at the draft's current code: the critic's checks, then (if they pass and
        review is on) the LLM review, whose REJECT is an error under ``veto`` and an objection
        passed on under ``advise``."""
        c = self.cfg
        if draft.source is None:
            return "the answer contained no Python code", "no_code", "", ""
        write_text(cand / "reward.py", draft.source)
        verdict = check_program(
            RewardProgram(draft.source), self.card, c.preset or "", cand, self.recording, fitness_expr=c.fitness, example=designer.example,
            shaping=c.shaping,
        )
        error, kind = ("", "") if verdict.accepted else (verdict.message, verdict.failure_kind)
        if kind == "fitness_error":  # not the reward's fault: never sent to the designer
            raise ConfigError(f"the fitness expression failed on the recorded rollouts: {verdict.message}", "edit fitness.json and resume, or pass --fitness")
        if error or c.review == "off":
            return error, kind, "", ""
        probe = verdict.check("probe")
        r = review(self.ledger.complete, c.task, render_card(self.card), draft.source,
                   probe.details if probe and "spearman" in probe.details else None, seed=review_seed)
        write_json(cand / "review.json", {"accept": r.accept, "reason": r.reason, "answer": r.answer})
        # no verdict (neither ACCEPT nor REJECT in the answer) is not a pass: it is recorded and
        # shown, and the program stands on the automatic checks, as if the reviewer were
        # unavailable (README: "Critic")
        verdict_of_review = {True: "accept", False: "reject", None: "no verdict"}[r.accept]
        if r.accept is False and c.review == "veto":
            return f"review: the reviewer says this code does not reward the task as written: {r.reason}", "review", verdict_of_review, ""
        return "", "", verdict_of_review, r.reason if r.accept is False else ""

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
