"""The reward library: verified rewards kept between runs and shown to the designer as examples.

Text2Reward's few-shot setting: a small model writes better rewards when its first prompt shows
a few rewards that are known to work, each with the fitness a policy trained on it reached. The
library holds the shipped examples and experts (``examples/``, read where they lie at load time,
so an edit there is seen at once) and, after each ``run``, that run's best reward.

On disk (``--library DIR``, else ``AUTOREWARD_LIBRARY``, else the user data dir from
platformdirs): one JSON file per entry in ``entries/<id>.json``, written atomically, so two runs
adding at once cannot corrupt each other; ``hidden.json`` lists the shipped entries the user
removed (the shipped files themselves are never touched). An entry's id is a hash of its env
and code, so adding the same reward again replaces its record instead of duplicating it.

Retrieval (:meth:`Library.relevant`): entries of the same card first, then the rest by BM25
text similarity of their task to the run's task (rank-bm25 over stemmed words,
:mod:`autoreward.textrank`); an entry of another card is shown only if it shares a word with the
task and reads only state fields this env has (a small model copies the field names it sees).
:class:`Exclude` rules keep entries out, e.g. a task's own expert and earlier winners when the
quality suite measures leave-one-out.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from autoreward.errors import AutorewardError, ConfigError, RewardProgramError

LIBRARY_ENV = "AUTOREWARD_LIBRARY"
#: module docstring header lines a shipped reward carries (``env: HalfCheetah-v5``)
_HEADER = re.compile(r"^[ \t]*(env|task|preset|fitness|untrained|success)[ \t]*:[ \t]*(.+?)[ \t]*$", re.MULTILINE | re.IGNORECASE)
#: folders under examples/ whose rewards are deliberately weak baselines, never shown as examples
_NOT_EXAMPLES = {"sparse"}


def default_dir() -> Path:
    """``AUTOREWARD_LIBRARY`` when set, else ``<user data dir>/library`` (platformdirs)."""
    env = os.environ.get(LIBRARY_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("autoreward")) / "library"


def shipped_dir() -> Path | None:
    """``examples/``: package data after ``pip install .``, the repository's folder in a checkout."""
    from autoreward.prompts_io import data_dir

    try:
        return data_dir("examples", "**/*.py")
    except AutorewardError:
        return None


class Fitness(BaseModel):
    """What a policy trained with the reward reached, on the task's own fitness."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="What the value measures: the preset and its doc, or the fitness expression.")
    value: float
    untrained: float | None = Field(None, description="The untrained policy's fitness, when measured.")
    success: float | None = Field(None, description="The task's success threshold.")
    unit: str = ""

    def line(self) -> str:
        """``1.38 m/s (untrained policy -0.001; success at 3)`` for tables and prompts."""
        unit = f" {self.unit}" if self.unit else ""
        extra = [f"untrained policy {self.untrained:.3g}" if self.untrained is not None else "",
                 f"success at {self.success:g}" if self.success is not None else ""]
        more = "; ".join(x for x in extra if x)
        return f"{self.value:.3g}{unit}" + (f" ({more})" if more else "")


class Entry(BaseModel):
    """One verified reward: its code and what it was verified on."""

    model_config = ConfigDict(extra="forbid")

    id: str
    env: str = Field(description="Card id the reward reads state from.")
    preset: str | None = Field(None, description="The card's preset task, when the task is one.")
    task: str = Field(description="The task in words.")
    code: str
    fitness: Fitness | None = None
    verdict: str = Field("", description="What the critic and the analyzer said, in short.")
    source: str = Field(description="shipped:<path under examples/>, run:<candidate dir> or file:<path>.")
    date: str = Field(description="ISO date the entry was made (or the shipped file last changed).")

    @property
    def shipped(self) -> bool:
        return self.source.startswith("shipped:")

    @property
    def verified(self) -> bool:
        """Shown as an example: hand-written (shipped, or added without a fitness) or its policy
        learned (:func:`learned`). A run's best that learned nothing stays listed but is not shown."""
        f = self.fitness
        return f is None or learned(f)


#: a run's best is a verified example only when its policy covered at least this fraction of the way
#: from the untrained policy's fitness to the success threshold: one that beat the untrained policy
#: by noise (-6e-5 against -3e-4 m/s after 2,048 steps, threshold 3 m/s) taught later designers a
#: reward that does nothing. Without a threshold above the untrained fitness, beating it is enough.
ADMIT_FRACTION = 0.1


def learned(f: Fitness) -> bool:
    """Whether a trained policy's fitness shows the reward taught something (ADMIT_FRACTION)."""
    if f.untrained is None:
        return True
    if f.success is not None and f.success > f.untrained:
        return f.value - f.untrained >= ADMIT_FRACTION * (f.success - f.untrained)
    return f.value > f.untrained


def entry_id(env: str, code: str) -> str:
    """Content address: the same reward for the same env has the same id."""
    return hashlib.sha256(f"{env}\n{code.strip()}\n".encode()).hexdigest()[:8]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


class Exclude(BaseModel):
    """A rule keeping entries out of retrieval: an entry matches when it matches every field the
    rule sets (``env`` and ``preset``/``task`` exactly, ``task`` ignoring case and spacing;
    ``source`` as a substring; ``id`` as a prefix). Leave-one-out for a preset task is
    ``{env: E, preset: P}`` plus ``{env: E, task: T}``."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    env: str | None = None
    preset: str | None = None
    task: str | None = None
    source: str | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Exclude:
        if not any(v for v in self.model_dump().values()):
            raise ValueError("an exclude rule needs at least one of id, env, preset, task, source")
        return self

    def matches(self, e: Entry) -> bool:
        return all((
            self.id is None or e.id.startswith(self.id),
            self.env is None or e.env == self.env,
            self.preset is None or e.preset == self.preset,
            self.task is None or _norm(e.task) == _norm(self.task),
            self.source is None or self.source in e.source,
        ))


def parse_header(source: str) -> dict[str, str]:
    """``env:``, ``task:`` (a preset name or words), ``preset:``, ``fitness:``, ``untrained:`` and
    ``success:`` lines of a reward file's module docstring; {} when it has none."""
    import ast

    try:
        doc = ast.get_docstring(ast.parse(source)) or ""
    except SyntaxError:
        return {}
    out: dict[str, str] = {}
    for key, value in _HEADER.findall(doc):
        out.setdefault(key.lower(), value.strip().strip("`\"'"))
    return out


class _Task(NamedTuple):
    env: str  # the card's id
    preset: str | None
    text: str
    success: float | None
    fitness_name: str  # "<preset>: <fitness doc>", or "" for a free-form task
    unit: str


def _task(card: Any, task: str, preset: str | None = None) -> _Task:
    """What ``task`` means on ``card``: it may be a preset name of the card (then its words,
    threshold and unit come from the card)."""
    name = preset or (task if task in card.tasks else None)
    if name is None:
        return _Task(card.id, None, task, None, "", "")
    t = card.task(name)
    text = task if preset and task and task != name else t.description
    return _Task(card.id, name, text, t.success, f"{name}: {t.fitness_doc or t.fitness}", t.unit or "")


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def shipped_entries(root: Path | None) -> list[Entry]:
    """Every reward under ``root`` (``examples/``) whose module docstring names ``env:`` and
    ``task:``, except the deliberately weak baselines (``sparse/`` folders). A file whose env has
    no card here (or does not parse) is skipped, never an error: the library must still load."""
    if root is None or not root.is_dir():
        return []
    from autoreward.cards import all_cards

    try:
        cards = {k.lower(): c for k, c in all_cards().items()}  # once: loading a card parses them all
    except AutorewardError:
        return []
    out = []
    for path in sorted(root.rglob("*.py")):
        if _NOT_EXAMPLES & set(path.relative_to(root).parts[:-1]):
            continue
        try:
            code = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        h = parse_header(code)
        if "env" not in h or not (h.get("task") or h.get("preset")) or "def compute_reward" not in code:
            continue
        card = cards.get(h["env"].lower())
        if card is None:
            continue
        try:
            t = _task(card, h.get("task", ""), h.get("preset"))
        except AutorewardError:  # a preset the card does not have
            continue
        value, success = _float(h.get("fitness")), _float(h.get("success"))
        fit = None if value is None else Fitness(name=t.fitness_name or "fitness", value=value, untrained=_float(h.get("untrained")),
                                                 success=t.success if success is None else success, unit=t.unit)
        date = _dt.date.fromtimestamp(path.stat().st_mtime).isoformat()
        out.append(Entry(id=entry_id(t.env, code), env=t.env, preset=t.preset, task=t.text, code=code, fitness=fit,
                         verdict="shipped with autoreward, written by hand", source=f"shipped:{path.relative_to(root).as_posix()}", date=date))
    return out


class Library:
    """The entries in one library folder plus the shipped ones (``seeds``: the folders whose
    rewards are shipped; default ``examples/``, ``()`` for none)."""

    def __init__(self, root: Path | str | None = None, seeds: Iterable[Path] | None = None) -> None:
        self.root = Path(root).expanduser() if root else default_dir()
        self.seeds = [shipped_dir()] if seeds is None else list(seeds)

    @property
    def _entries_dir(self) -> Path:
        return self.root / "entries"

    def _hidden(self) -> set[str]:
        p = self.root / "hidden.json"
        try:
            return set(json.loads(p.read_text())) if p.exists() else set()
        except (OSError, ValueError):
            return set()

    def stored(self) -> list[Entry]:
        """The entries written into this folder (runs' bests and ``library add``). A damaged file
        is skipped with its name in :attr:`damaged`, so one bad file never hides the rest."""
        self.damaged: list[str] = []
        out = []
        for p in sorted(self._entries_dir.glob("*.json")) if self._entries_dir.is_dir() else []:
            try:
                out.append(Entry.model_validate_json(p.read_text()))
            except (OSError, ValueError, ValidationError):
                self.damaged.append(str(p))
        return out

    def entries(self) -> list[Entry]:
        """Stored entries, then shipped ones not hidden and not stored under the same id."""
        stored = self.stored()
        have, hidden = {e.id for e in stored}, self._hidden()
        shipped = [e for root in self.seeds for e in shipped_entries(root) if e.id not in have and e.id not in hidden]
        return stored + list({e.id: e for e in shipped}.values())

    def get(self, id: str) -> Entry:
        """The entry whose id is ``id`` or starts with it; a one-line error when none or several."""
        found = [e for e in self.entries() if e.id.startswith(id.strip())] if id.strip() else []
        if len(found) == 1:
            return found[0]
        if not found:
            raise ConfigError(f"no library entry {id!r} in {self.root}", "see the ids with `autoreward library list`")
        raise ConfigError(f"library id {id!r} is ambiguous: {', '.join(e.id for e in found)}", "give more of the id")

    def add(self, entry: Entry) -> Entry:
        """Write (or replace) one entry atomically; un-hides it if it was a removed shipped one."""
        from autoreward.rundir import write_json, write_text

        write_text(self._entries_dir / f"{entry.id}.json", entry.model_dump_json(indent=2) + "\n")
        hidden = self._hidden()
        if entry.id in hidden:
            write_json(self.root / "hidden.json", sorted(hidden - {entry.id}))
        return entry

    def remove(self, id: str) -> tuple[Entry, bool]:
        """Delete a stored entry; a shipped one is hidden (its file under examples/ stays).
        A stored entry with a shipped one's id (a run whose best was that very code, measured)
        is deleted first, which shows the shipped one again; removing that hides it. Returns
        the entry and whether a shipped entry was hidden."""
        from autoreward.rundir import write_json

        e = self.get(id)
        stored = self._entries_dir / f"{e.id}.json"
        if stored.exists():
            stored.unlink()
            return e, False
        shipped = any(e.id == s.id for root in self.seeds for s in shipped_entries(root))
        if shipped:
            write_json(self.root / "hidden.json", sorted(self._hidden() | {e.id}))
        return e, shipped

    def relevant(self, env: str, task: str, k: int, preset: str | None = None, exclude: Sequence[Exclude] = (),
                 fields: Iterable[str] | None = None) -> list[Entry]:
        """The ``k`` entries most worth showing for ``task`` on ``env``: same card first, then by
        BM25 similarity of task words (ties: measured before unmeasured, then newer). Left out:
        excluded and unverified entries, and another card's entries that share no word with the
        task or read a state field ``env`` lacks (``fields``: its state field names), since a
        small model copies field names it sees."""
        from autoreward.textrank import scores

        pool = [e for e in self.entries() if e.verified and not any(x.matches(e) for x in exclude)]
        if k <= 0 or not pool:
            return []
        query = f"{task} {preset or ''}"
        sim = scores(query, [f"{e.task} {e.preset or ''}" for e in pool])
        have = None if fields is None else set(fields)
        keep = [i for i, e in enumerate(pool) if e.env == env or (sim[i] > 0 and (have is None or fields_read(e.code) <= have))]
        keep.sort(key=lambda i: (pool[i].env != env, -sim[i], pool[i].fitness is None, _neg_date(pool[i].date)))
        return [pool[i] for i in keep[:k]]


def fields_read(code: str) -> set[str]:
    """The state fields a reward reads: attributes (not method calls) of any plain name other
    than the modules, ``memory`` and ``action`` (``state.x_velocity``, ``s.dist_tree`` in a helper)."""
    import ast

    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    skip = {"np", "numpy", "math", "memory", "action"}
    methods = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}  # seen.add(...), parts.values()
    return {n.attr for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id not in skip and id(n) not in methods}


def _neg_date(date: str) -> int:
    try:
        return -_dt.date.fromisoformat(date[:10]).toordinal()
    except ValueError:
        return 0


def from_file(path: Path | str, env: str, task: str, fitness: float | None = None, untrained: float | None = None,
              cards: Sequence[Path] = ()) -> Entry:
    """An entry for a reward file the user vouches for (``library add``): it must pass the static
    policy (so it defines ``compute_reward`` and imports nothing forbidden); ``task`` may be a
    preset name of the env's card."""
    from autoreward.program import RewardProgram, check_source

    code = RewardProgram.from_file(path).source
    findings = check_source(code)
    if findings:
        raise RewardProgramError(f"{path} is not a usable reward program: {findings[0]}", "fix it and add it again; `autoreward check` lists every problem")
    if not task.strip():
        raise ConfigError("library add needs --task", 'a preset name of the env or the task in words, e.g. --task "run backwards"')
    from autoreward.cards import load_card

    t = _task(load_card(env, list(cards)), task.strip())
    fit = None if fitness is None else Fitness(name=t.fitness_name or "given by the user", value=fitness, untrained=untrained,
                                               success=t.success, unit=t.unit)
    return Entry(id=entry_id(t.env, code), env=t.env, preset=t.preset, task=t.text, code=code, fitness=fit,
                 verdict="added by hand with `autoreward library add`", source=f"file:{Path(path).resolve()}",
                 date=_dt.date.today().isoformat())


def from_run_best(run_dir: Path, env: str, task: str, preset: str | None, fitness_expr: str | None,
                  success: float | None, unit: str = "", fitness_doc: str = "") -> Entry | None:
    """The run's best candidate (accepted, trained, with a fitness) as an entry, or None."""
    from autoreward.rundir import Run

    best = Run.load(run_dir).best()
    if best is None or best.metrics is None or best.fitness is None:
        return None
    code = best.source
    name = f"{preset}: {fitness_doc or fitness_expr}" if preset else (fitness_expr or "fitness")
    fit = Fitness(name=name, value=best.fitness, untrained=(best.metrics.get("untrained") or {}).get("fitness_mean"),
                  success=success, unit=unit)
    return Entry(id=entry_id(env, code), env=env, preset=preset, task=task, code=code, fitness=fit, verdict=verdict_summary(best),
                 source=f"run:{best.dir.resolve()}", date=_dt.date.today().isoformat())


def not_verified(entry: Entry, flags: list[str]) -> str:
    """Why a run's best reward is not a verified example ('' when it is). The library shows its
    entries to later designers as rewards that work, so a best that trained no better than the
    untrained policy, or that the analyzer caught hacking, would teach the wrong thing."""
    f = entry.fitness
    if f is not None and f.untrained is not None and f.value <= f.untrained:
        return f"its policy's fitness {f.value:.4g} is no better than the untrained policy's {f.untrained:.4g}"
    if f is not None and not learned(f):
        need = f.untrained + ADMIT_FRACTION * (f.success - f.untrained)  # type: ignore[operator]
        return (f"its policy's fitness {f.value:.4g} beat the untrained policy's {f.untrained:.4g} by too little: an example must "
                f"cover {ADMIT_FRACTION:.0%} of the way to the success threshold {f.success:g} (at least {need:.4g})")
    hacking = next((x for x in flags if x.startswith("reward hacking")), "")
    return f"the analyzer flagged it ({hacking})" if hacking else ""


def verdict_summary(cand: Any) -> str:
    """A sentence or two from the critic, the reviewer and the analyzer about a candidate."""
    parts = [f"critic: accepted after {cand.status.get('repairs', 0)} repair(s)"]
    probe = next((c for c in (cand.verdict or {}).get("checks", []) if c.get("name") == "probe"), None)
    if probe and isinstance(probe.get("details", {}).get("spearman"), (int, float)):
        parts.append(f"reward rises with task fitness on recorded rollouts (Spearman {probe['details']['spearman']:.2f})")
    if cand.review and cand.review.get("accept") is not None:
        parts.append(f"reviewer: {'accept' if cand.review['accept'] else 'objected'}")
    if cand.metrics and cand.metrics.get("solved"):
        parts.append("reached the success threshold")
    text = "; ".join(parts) + "."
    summary = " ".join(str((cand.analysis or {}).get("summary", "")).split())
    return text + (f" Analysis: {summary[:400]}{'…' if len(summary) > 400 else ''}" if summary else "")
