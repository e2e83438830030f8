"""Leaving copies untrained: the same program, or the same behaviour, as one trained or kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from autoreward.critic.check import REWARDS_FILE
from autoreward.critic.dedupe import behavioural_duplicate, load_rewards
from autoreward.designer import dedup
from autoreward.program import RewardProgram
from autoreward.report.live import RunView
from autoreward.rundir import Run, write_json


@dataclass
class Dedupe:
    """Picks which accepted candidates to train: one that is the same program (AST) as another,
    or as an earlier iteration's trained one, or whose rewards on the recorded transitions are an
    affine or rank copy of a trained (or earlier kept) candidate's, gets ``duplicate.json`` and
    is shown as a duplicate once."""

    dir: Path
    run: Run
    view: RunView
    _said: set[Path] = field(default_factory=set, init=False)  # candidates the view has shown as duplicates (once each, resumed runs too)

    def distinct(self, it: Path, accepted: list[tuple[Path, RewardProgram]], earlier: list[RewardProgram]) -> list[Path]:
        """The accepted candidates to train: exact copies (of each other or of an earlier
        iteration's trained programs) and behavioural copies are marked duplicate and left out."""
        _, dropped = dedup([p for _, p in accepted], earlier)
        for j in dropped:
            cand = accepted[j][0]
            if not (cand / "duplicate.json").exists():
                write_json(cand / "duplicate.json", {"duplicate": True, "how": "same program"})
            self._say(cand, "same program as one already trained or sampled, not trained")
        return self.behavioural(it, [cand for j, (cand, _) in enumerate(accepted) if j not in dropped])

    def behavioural(self, it: Path, cands: list[Path]) -> list[Path]:
        """Drop candidates whose rewards on the recorded transitions are an affine or rank copy
        of a trained (or earlier kept) candidate's; returns the ones to train."""
        known = [(x.rel, r) for x in self.run.candidates() if x.trained and not x.dir.is_relative_to(it)
                 for r in [load_rewards(x.dir / REWARDS_FILE)] if r is not None]
        keep = []
        for cand in cands:
            mine = load_rewards(cand / REWARDS_FILE)
            dup = None if mine is None or (cand / "metrics.json").exists() else behavioural_duplicate(mine, known)
            if dup is not None:
                write_json(cand / "duplicate.json", {"duplicate": True, "of": dup.of, "how": dup.how, "score": dup.score})
                self._say(cand, f"{dup.message()}, not trained")
                continue
            keep.append(cand)
            if mine is not None:
                known.append((cand.relative_to(self.dir).as_posix(), mine))
        return keep

    def _say(self, cand: Path, why: str) -> None:
        """Show a candidate as a duplicate once: the diversity round's second dedupe pass finds it again."""
        if cand not in self._said:
            self._said.add(cand)
            self.view.candidate(cand.name, "duplicate", why)
