"""The rounds of samples that give an iteration its candidates to train."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rich.console import Console

from autoreward.designer import Designer, Draft, dedup
from autoreward.loopparts.config import RunConfig
from autoreward.loopparts.dedupe import Dedupe
from autoreward.loopparts.ledger import Ledger
from autoreward.loopparts.selection import Selection
from autoreward.loopparts.vetting import Vetting
from autoreward.program import RewardProgram
from autoreward.rundir import Run, read_json, write_json

#: vetted programs: (candidate directory, its accepted program)
Accepted = list[tuple[Path, RewardProgram]]


@dataclass
class _Rounds:
    """What the rounds of one iteration share: its folder, designer and seed, and every draft so
    far (the first round's, the person's edits, then refill and diversity rounds')."""

    it: Path
    designer: Designer
    seed: int
    drafts: list[Draft]
    edited: bool = False

    @property
    def designs_path(self) -> Path:
        return self.it / "designs.json"


@dataclass
class Sampling:
    """Gets an iteration its candidates to train: the designer's first round (or the one saved in
    ``designs.json``), the person's edits, each vetted; refill rounds when the critic rejects
    every sample; then the dedupe, and diversity rounds when it drops copies. Every draft is
    saved in ``designs.json`` with its round, so a resumed iteration knows which rounds ran."""

    dir: Path
    run: Run
    cfg: RunConfig
    ledger: Ledger
    selection: Selection
    vetting: Vetting
    dedupe: Dedupe
    console: Console
    client_name: Callable[[], str]

    def candidates(self, i: int, designer: Designer, seed: int) -> list[Path]:
        """The distinct accepted candidates of iteration ``i``, to train."""
        it = self.dir / f"iter{i}"
        r = _Rounds(it, designer, seed, self._first_round(i, designer, it / "designs.json", seed))
        designed = len(r.drafts)
        edits = [e for e in self.ledger.state.get("edits", []) if int(e["iteration"]) == i]
        for edit in edits:
            r.drafts.append(Draft(index=len(r.drafts), source=edit["source"], raw="(edited by the user)"))
        r.edited = bool(edits)
        accepted, rejected = self.vetting.vet_all(designer, r.drafts, it, r.designs_path, seed)
        accepted = self._refill(r, designed, accepted, rejected)
        earlier = [RewardProgram(x.source) for x in self.run.candidates() if x.trained and not x.dir.is_relative_to(it)]
        return self._diversify(r, accepted, earlier)

    def _first_round(self, i: int, designer: Designer, designs_path: Path, seed: int) -> list[Draft]:
        """The designer's answers for iteration ``i``, or the drafts saved in ``designs.json``
        (a resumed iteration: its refill and diversity rounds' too)."""
        if designs_path.exists():
            return [Draft.from_dict(d) for d in read_json(designs_path)]
        c = self.cfg
        self.ledger.check_budget()
        parent = self.selection.parent()
        self.console.print(f"[bold]iteration {i}[/]: asking {self.client_name()} for {c.samples} reward programs...")
        t0 = time.monotonic()
        drafts = designer.sample(c.samples, seed=seed, parent=parent, feedback=self.ledger.state.get("feedback", ""), failures=self.selection.failures())
        write_json(designs_path, [d.__dict__ for d in drafts])
        self.console.print(f"  {len(drafts)} answers back in {time.monotonic() - t0:.0f} s")
        return drafts

    def _refill(self, r: _Rounds, designed: int, accepted: Accepted, rejected: list[str]) -> Accepted:
        """A round in which the critic rejected every sample trains nothing: ask for fresh ones,
        told every rejection (the 1.5B model kept a fall bonus through 3 repairs of one sample).
        Not when the person edited this iteration (their edit is the steer); refill drafts are
        saved in designs.json after the first ones, so a resumed run knows how many rounds ran."""
        c = self.cfg
        legacy = sum(1 for d in r.drafts[:designed] if not d.round and d.index >= c.samples)  # refills saved before rounds were labelled
        rounds = len({d.round for d in r.drafts if d.round.startswith("refill")}) + legacy // max(1, c.samples)
        while not accepted and not r.edited and rounds < c.refill_rounds:
            self.ledger.check_budget()
            rounds += 1
            self.console.print(f"  the critic rejected every sample: asking for {c.samples} fresh ones, told why (refill {rounds} of {c.refill_rounds})")
            accepted, more = self._more_drafts(r, c.samples, f"refill{rounds}", r.seed + 50 * rounds, failures=[*self.selection.failures(), *rejected])
            rejected.extend(more)
        return accepted

    def _diversify(self, r: _Rounds, accepted: Accepted, earlier: list[RewardProgram]) -> list[Path]:
        """The dedupe's survivors. A round whose samples were copies (the 1.5B model copied the
        library's example: 1 distinct of 4) trains less than was asked for: ask for as many as
        were dropped, shown the distinct ones (not when the person edited this iteration)."""
        c = self.cfg
        to_train = self.dedupe.distinct(r.it, accepted, earlier)
        diverse = len({d.round for d in r.drafts if d.round.startswith("diverse")})
        while accepted and len(to_train) < len(accepted) and not r.edited and diverse < c.diversity_rounds:
            self.ledger.check_budget()
            diverse += 1
            n = len(accepted) - len(to_train)
            self.console.print(f"  dedupe left {len(to_train)} distinct of {len(accepted)}: asking for {n} different ones "
                               f"(round {diverse} of {c.diversity_rounds})")
            written = [p.source for p in dedup([p for _, p in accepted])[0]]  # what this round wrote, copies of earlier runs' too
            fresh, _ = self._more_drafts(r, n, f"diverse{diverse}", r.seed + 70 + diverse, failures=self.selection.failures(), written=written)
            accepted = [*accepted, *fresh]
            to_train = self.dedupe.distinct(r.it, accepted, earlier)
        return to_train

    def _more_drafts(
        self, r: _Rounds, n: int, label: str, ask_seed: int, failures: list[str], written: list[str] | None = None,
    ) -> tuple[Accepted, list[str]]:
        """Ask for ``n`` more samples (round ``label``), append them to the drafts and to
        designs.json (the earlier entries keep their outcomes) and vet them."""
        fresh = r.designer.sample(n, seed=ask_seed, parent=self.selection.parent(), feedback=self.ledger.state.get("feedback", ""),
                                  failures=failures, written=written)
        fresh = [Draft(len(r.drafts) + j, d.source, d.raw, label) for j, d in enumerate(fresh)]
        r.drafts.extend(fresh)
        write_json(r.designs_path, [*read_json(r.designs_path), *(d.__dict__ for d in fresh)])
        return self.vetting.vet_all(r.designer, fresh, r.it, r.designs_path, r.seed)
