"""Choosing the best candidate and recording what the run found."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoreward.loopparts.config import RunConfig
from autoreward.loopparts.ledger import Ledger
from autoreward.rundir import Candidate, Run, write_json


@dataclass
class Selection:
    """Chooses and records the best: the trained candidate with the highest task fitness across
    iterations (the next iteration's parent), what the designer is told about it and about the
    latest failures, each iteration's ``summary.json`` and the run's ``result.json``."""

    dir: Path
    run: Run
    cfg: RunConfig
    ledger: Ledger

    def best(self) -> Candidate | None:
        """The trained candidate with the highest task fitness so far, across iterations."""
        return self.run.best()

    def parent_info(self, rel: str) -> dict[str, Any]:
        """What the designer's refine prompt shows of the parent ``rel``: its code, numbers and analysis."""
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

    def parent(self) -> dict[str, Any] | None:
        """:meth:`parent_info` of the run's current parent (None before the first iteration's best)."""
        state = self.ledger.state
        return self.parent_info(state["parent"]) if state.get("parent") else None

    def failures(self) -> list[str]:
        """Why candidates of the latest iteration failed (critic after all repairs, or training),
        so that every failure goes back to the Designer, not only into the run directory."""
        out = []
        for cand in self.run.candidates(self.ledger.state["iteration"] - 1):
            if not cand.accepted:
                out.append(f"{cand.dir.name} was rejected: {cand.error[:600]}")
            elif cand.trained and not cand.ok:
                out.append(f"{cand.dir.name} failed in training: {cand.error[:600]}")
        return out

    def write_summary(self, i: int) -> None:
        """``iter<i>/summary.json``: the best so far and this iteration's trained candidates."""
        best = self.best()
        write_json(self.dir / f"iter{i}" / "summary.json",
                   {"best": best.summary() if best else None, "candidates": [x.summary() for x in self.run.candidates(i) if x.trained]})

    def sample_stats(self) -> dict[str, Any]:
        """Critic acceptance before/after repair and seconds per design sample (for the note)."""
        from autoreward.llm import read_log

        st = [c.status for c in self.run.candidates()]
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
        """The run's outcome (best, why it stopped, spending, critic figures, library), also
        written as ``result.json``."""
        best = self.best()
        state = self.ledger.state
        out = {"run_dir": str(self.dir), "best": best.summary() if best else None, "stopped": state.get("stopped", ""), "iterations_done": state["iteration"], "tokens": state["tokens"], "cost": state["cost"], **self.sample_stats(),
               "library_added": state.get("library_added")}
        if state.get("library_skipped"):
            out["library_skipped"] = state["library_skipped"]
        if best and best.metrics:
            out.update(best_reward=str(best.dir / "reward.py"), best_fitness=best.fitness, untrained_fitness=best.metrics["untrained"]["fitness_mean"])
        write_json(self.dir / "result.json", out)
        return out
