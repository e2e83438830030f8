"""``autoreward export``: one candidate's reward as a standalone module for the user's own code.

The module (rendered from ``prompts/export_wrapper.py.j2``) needs only gymnasium and numpy: the
reward's source unchanged, the state extraction generated from the env card (each field's
expression, with the MuJoCo helpers it calls written out, since ``autoreward`` is not imported),
and a ``gymnasium.Wrapper`` that applies the reward with a per-episode ``memory`` dict exactly as
training did. Envs registered by a module of their own (``imports:`` in the card, e.g. Crafter's
``autoreward.crafter.env``) still need that module to be made; the module's docstring says so.
"""

from __future__ import annotations

import ast
import inspect
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoreward.cards import EnvCard, FieldSpec, load_card, load_card_file, mujoco_helpers
from autoreward.errors import ConfigError
from autoreward.program import prepare_tree
from autoreward.prompts_io import render
from autoreward.rundir import Candidate, Run, versions, write_text

TEMPLATE = "export_wrapper.py.j2"
#: card helpers that are plain functions: copied into the module from ``mujoco_helpers``
PURE_HELPERS = {"quat_to_euler": mujoco_helpers.quat_to_euler, "up_z": mujoco_helpers.up_z}
#: card helpers bound to one MuJoCo model by name: written out by the template
BOUND_HELPERS = ("body_pos", "body_quat", "body_com", "site_pos", "geom_pos", "body_contact_force", "mass_center")


@dataclass
class RunFacts:
    """What the module's docstring and settings say about where the reward came from."""

    task: str
    fitness: str
    fitness_doc: str
    success: float | None
    make_kwargs: dict[str, Any]


def run_card(run: Run) -> EnvCard:
    """The env card a run used: the exact file an ``eval`` recorded, else by id and ``--cards``."""
    card_path = (run.config.get("spec") or {}).get("card_path")
    if card_path and Path(card_path).is_file():
        return load_card_file(Path(card_path))
    return load_card(str(run.config.get("env", "")), [Path(c) for c in run.config.get("cards", [])])


def run_facts(run: Run, card: EnvCard) -> RunFacts:
    """Task text, fitness and env settings of a ``run``, ``eval`` or ``check`` run directory."""
    c = run.config
    preset = c.get("preset") if run.kind == "run" else c.get("task")
    t = card.tasks.get(preset) if preset else None
    proposal = run.fitness_proposal or {}
    fitness = c.get("fitness") or proposal.get("fitness") or (t.fitness if t else "")
    success = c.get("success") if c.get("fitness") else proposal.get("success", t.success if t else None)
    doc = c.get("fitness_doc") or proposal.get("description") or (t.fitness_doc if t else "")
    task = c.get("task", "") if run.kind == "run" else (t.description if t else str(preset))
    kwargs = (c.get("spec") or {}).get("make_kwargs") or {**(t.make_kwargs if t else {}), **c.get("env_kwargs", {})}
    return RunFacts(task, fitness, doc, success, kwargs)


def _docstring_text(text: Any) -> str:
    """Text that cannot end or corrupt the module's docstring."""
    return " ".join(str(text).split()).replace("\\", "\\\\").replace('"""', "'''")


def _names(card: EnvCard) -> set[str]:
    return {n.id for f in card.state for n in ast.walk(ast.parse(f.expr, mode="eval")) if isinstance(n, ast.Name)}


def _converted(f: FieldSpec) -> str:
    """The field's card expression with the conversion ``cards/state.py`` applies to it."""
    if f.shape:
        dtype = "np.int64" if f.dtype == "int" else "np.float64"
        return f"_frozen({f.expr}, {dtype}, {tuple(f.shape)!r})"
    return f"{f.dtype}({f.expr})"


def reward_code(source: str) -> str:
    """The reward's source for the module: unchanged, unless it carries what autoreward strips
    before compiling (``typing``/``__future__`` imports, annotations), which could not stand in
    the middle of a module or would need names it never imported."""
    cleaned = ast.unparse(prepare_tree(source))
    return source.strip() if cleaned == ast.unparse(ast.parse(source)) else cleaned


def render_module(card: EnvCard, source: str, facts: RunFacts, origin: dict[str, Any], module_name: str = "my_reward") -> str:
    """The standalone module's text. ``origin``: candidate, run_dir, trained/untrained fitness."""
    names = _names(card)
    bound = [h for h in BOUND_HELPERS if h in names]
    pure = [inspect.getsource(fn) for name, fn in PURE_HELPERS.items() if name in names]
    text = render(
        TEMPLATE,
        env_id=card.id, task=_docstring_text(facts.task), fitness=_docstring_text(facts.fitness),
        fitness_doc=_docstring_text(facts.fitness_doc), success="?" if facts.success is None else f"{facts.success:g}",
        date=time.strftime("%Y-%m-%d %H:%M"), version=versions().get("autoreward", ""), module_name=module_name,
        candidate=origin["candidate"], run_dir=_docstring_text(origin["run_dir"]),
        trained_fitness=origin["trained_fitness"], untrained_fitness=origin["untrained_fitness"],
        imports=card.imports, make_kwargs=repr(_make_kwargs(card, facts.make_kwargs)), reward_source=reward_code(source),
        field_names=repr(tuple(card.field_names)),
        fields=[{"name": f.name, "doc": _docstring_text(f.doc), "unit": f.unit, "shape": f.shape, "constant": f.constant, "converted": _converted(f)} for f in card.state],
        helper_sources=pure, bound_helpers=bound,
        uses_data="data" in names or bool(bound), uses_model="model" in names or bool(bound),
    )
    _check_unique_names(text)
    return text


def _make_kwargs(card: EnvCard, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``gym.make`` arguments as ``card.make_env`` passes them (card's, then the run's, then the
    card's episode limit)."""
    out = {**card.make_kwargs, **kwargs}
    if card.training.max_episode_steps and "max_episode_steps" not in out:
        out["max_episode_steps"] = card.training.max_episode_steps
    return out


def _check_unique_names(text: str) -> None:
    """The reward shares the module's namespace: a top-level name it defines twice would
    silently replace the reward's (or the wrapper's) own."""
    seen: set[str] = set()
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            targets = [node.name]
        elif isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        else:
            continue
        clash = seen.intersection(targets)
        if clash:
            raise ConfigError(f"the reward defines {sorted(clash)[0]!r}, a name the exported module needs", "rename it in the reward and export again")
        seen.update(targets)


def export_candidate(run: Run, cand: Candidate, out: Path) -> Path:
    """Write ``cand``'s reward as a standalone module at ``out`` (a ``.py`` file)."""
    out = Path(out)
    if out.suffix != ".py" or not out.stem.isidentifier():
        raise ConfigError(f"-o {out}: the export must be a .py file with an importable name", "e.g. -o my_reward.py")
    card = run_card(run)
    m = cand.metrics or {}
    origin = {
        "candidate": cand.rel, "run_dir": str(run.path.resolve()),
        "trained_fitness": f"{cand.fitness:.4g}" if cand.ok else "",
        "untrained_fitness": f"{m['untrained']['fitness_mean']:.4g}" if cand.ok else "",
    }
    write_text(out, render_module(card, cand.source, run_facts(run, card), origin, out.stem))
    return out

