"""The Critic's findings as data: one :class:`CheckResult` per check, a :class:`Verdict` per
program (saved as ``critic.json``), like SB3's ``env_checker`` returning findings.

A failed check carries a ``kind`` (``"wrong_way"``, ``"sum_mismatch"``, ``"timeout"``...) next
to its message: code and prompt templates branch on the kind, never on the message's wording.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class CheckResult:
    """The outcome of one check."""

    name: str
    passed: bool
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    kind: str = ""  # why it failed, for code and templates to branch on ("" when it passed)


@dataclass
class Verdict:
    """The Critic's structured verdict on one program (saved as ``critic.json``)."""

    accepted: bool
    checks: list[CheckResult]
    program_sha: str = ""
    env_id: str = ""
    task: str = ""
    network_isolated: bool | None = None
    #: what OS-level confinement the sandboxed check ran under (``sandbox.confine``); None when
    #: no sandbox ran (rejected statically)
    confinement: dict[str, Any] | None = None

    @property
    def failed(self) -> CheckResult | None:
        return next((c for c in self.checks if not c.passed), None)

    @property
    def message(self) -> str:
        f = self.failed
        return f"{f.name}: {f.message}" if f else "accepted"

    @property
    def failure_kind(self) -> str:
        f = self.failed
        return (f.kind or f.name) if f else ""

    @property
    def warnings(self) -> list[str]:
        return [w for c in self.checks for w in c.warnings]

    def check(self, name: str) -> CheckResult | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["message"] = self.message
        d["failure_kind"] = self.failure_kind
        d["warnings"] = self.warnings
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Verdict":
        return cls(
            accepted=bool(d["accepted"]),
            checks=[CheckResult(**c) for c in d.get("checks", [])],
            program_sha=d.get("program_sha", ""),
            env_id=d.get("env_id", ""),
            task=d.get("task", ""),
            network_isolated=d.get("network_isolated"),
            confinement=d.get("confinement"),
        )


def load_verdict(path: Path) -> Verdict:
    return Verdict.from_dict(json.loads(Path(path).read_text()))


def stats(a: np.ndarray) -> dict[str, float]:
    """min/mean/max/std/mean |x| of an array, as reported for totals, components, fitness."""
    return {
        "min": float(np.min(a)),
        "mean": float(np.mean(a)),
        "max": float(np.max(a)),
        "std": float(np.std(a)),
        "mean_abs": float(np.mean(np.abs(a))),
    }
