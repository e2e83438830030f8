"""A run's use of the reward library: verified rewards shown to its designer, its best added."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from autoreward.cards import EnvCard
from autoreward.library import Library
from autoreward.library import from_run_best as library_entry_of_run
from autoreward.library import not_verified
from autoreward.loopparts.config import RunConfig
from autoreward.loopparts.ledger import Ledger
from autoreward.loopparts.selection import Selection
from autoreward.rundir import read_json, write_json


@dataclass
class RunLibrary:
    """Connects one run to the reward library: which entries its designer's first prompt shows
    (chosen once, saved in ``library.json``), and whether its best reward is admitted at the end
    (only a verified one; the decision is saved in ``state.json``)."""

    dir: Path
    cfg: RunConfig
    card: EnvCard
    ledger: Ledger
    selection: Selection
    console: Console

    def examples(self) -> list[dict[str, Any]]:
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

    def add_best(self) -> None:
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
        best = self.selection.best()
        why_not = not_verified(entry, list(((best.analysis if best else None) or {}).get("flags", [])))
        state = self.ledger.state
        if why_not:
            state["library_added"] = None
            state["library_skipped"] = why_not
            self.ledger.save_state()
            self.console.print(f"library: the best reward was not added: {why_not}")
            return
        lib = Library(c.library_dir)
        try:
            lib.add(entry)
        except OSError as exc:
            self.console.print(f"[yellow]could not add the best reward to the library {escape(str(lib.root))}[/]: {escape(str(exc))}")
            return
        state["library_added"] = entry.id
        state.pop("library_skipped", None)
        self.ledger.save_state()
        self.console.print(f"library: added the best reward as {entry.id} (`autoreward library show {entry.id}`)")
