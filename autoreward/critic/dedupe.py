"""Behavioural dedupe: two rewards that order the recorded transitions the same way train the
same policies (the idea behind STARC-style reward distances), so the second is not trained.

Exact duplicates (same code up to layout and comments) are dropped by the designer's AST
dedup; this catches renamed, rescaled, shifted and reordered ones from what the programs *do*:
the dry run saves each program's reward on every recorded transition, and a candidate whose
rewards are a positive affine map of a trained candidate's (Pearson r) or rank the transitions
the same way (Spearman rho), above :data:`THRESHOLD`, duplicates it. A negative relation is the
opposite reward, never a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

THRESHOLD = 0.999


@dataclass
class Duplicate:
    """Which trained candidate this one behaves like, how, and how closely."""

    of: str
    how: str  # "affine" or "rank"
    score: float
    transitions: int

    def message(self) -> str:
        return (f"behaves like {self.of} ({self.how}: {'Pearson r' if self.how == 'affine' else 'Spearman rho'} = "
                f"{self.score:.4f} over {self.transitions} recorded transitions)")


def load_rewards(path: Path) -> np.ndarray | None:
    """A candidate's saved per-transition rewards (None if the dry run did not save them)."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None


def behavioural_duplicate(rewards: np.ndarray, others: Iterable[tuple[str, np.ndarray]], threshold: float = THRESHOLD) -> Duplicate | None:
    """The first of ``others`` (name, rewards on the same transitions) that ``rewards`` duplicates."""
    from scipy.stats import pearsonr, spearmanr

    for name, other in others:
        if other.shape != rewards.shape or np.std(other) < 1e-12 or np.std(rewards) < 1e-12:
            continue
        r = float(pearsonr(rewards, other).statistic)
        if r >= threshold:
            return Duplicate(name, "affine", r, rewards.size)
        rho = float(spearmanr(rewards, other).statistic)
        if rho >= threshold:
            return Duplicate(name, "rank", rho, rewards.size)
    return None
