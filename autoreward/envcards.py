"""Env cards: one YAML declaration per environment feeds both the LLM prompt and the runtime.

A card lists the state fields a reward may read (name, shape, unit, meaning) together with
the Python expression that extracts each one from the unwrapped env after a step. The text
the LLM sees (:func:`render_card`) and the state the reward receives
(:class:`StateExtractor`) are built from the same list, so they cannot drift apart.

Cards are trusted configuration, like a gymnasium registration: their expressions run in the
trusted process. Generated code never does (see ``sandbox.py``).

A user adds an environment by writing a card in a directory named by ``--cards DIR`` or the
``AUTOREWARD_CARDS`` environment variable (``:``-separated); no package edit is needed.
"""

from __future__ import annotations

import collections
import importlib
import math
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from autoreward import extract
from autoreward.errors import CardError, UnknownEnvError, UnknownTaskError

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class FieldSpec(BaseModel):
    """One state field a reward can read: ``state.<name>``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    expr: str = Field(description="Python expression over env, data, model, obs, info, helpers.")
    doc: str = Field(description="What the field means, in words the LLM reads.")
    shape: list[int] = Field(default_factory=list, description="[] for a scalar.")
    unit: str = ""
    dtype: Literal["float", "int", "bool", "str"] = "float"
    constant: bool = Field(default=False, description="Read once per env (e.g. dt), not every step.")

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(f"field name {v!r} must be lower_snake_case")
        return v


class TaskSpec(BaseModel):
    """A preset task: a description, a fitness over one episode and a success threshold."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    description: str
    fitness: str = Field(description="Expression over `ep` (an Episode) giving one float.")
    fitness_doc: str = ""
    unit: str = ""
    success: float = Field(description="The task counts as solved when mean fitness >= this.")
    env_objective: bool = Field(default=False, description="True for the env's own reward.")
    make_kwargs: dict[str, Any] = Field(default_factory=dict, description="Env settings this task needs (e.g. a starting inventory).")


class TrainingSpec(BaseModel):
    """Default training settings; hyperparameters are data, taken from rl-zoo3 where it has them."""

    model_config = ConfigDict(extra="forbid")

    algo: Literal["ppo", "sac"] = "ppo"
    max_episode_steps: int | None = None
    n_envs: int = 1
    normalize_obs: bool = True
    policy: str = "MlpPolicy"
    hyperparams: dict[str, dict[str, Any]] = Field(default_factory=dict)
    source: str = ""


class EnvCard(BaseModel):
    """Everything autoreward knows about one environment."""

    model_config = ConfigDict(extra="forbid")

    id: str
    gym_id: str = ""
    make_kwargs: dict[str, Any] = Field(default_factory=dict)
    imports: list[str] = Field(default_factory=list, description="Modules that register the env.")
    summary: str
    observation: str = ""
    action: str = ""
    notes: list[str] = Field(default_factory=list)
    state: list[FieldSpec]
    termination_causes: dict[str, str] = Field(
        default_factory=dict,
        description="name -> expression over the final `state`; first true one names the cause.",
    )
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    analyzer: str = Field(default="", description="module:function(episodes, task, fitness, success) -> dict of env-specific numbers.")
    reward_example: str = Field(
        default="",
        description="A minimal valid compute_reward for this env, shown to the designer as the shape to follow "
        "(small models copy it); empty = a generic one over a continuous action.",
    )
    tasks: dict[str, TaskSpec]
    path: str = ""

    def model_post_init(self, __context: Any) -> None:
        if not self.gym_id:
            self.gym_id = self.id
        for name, task in self.tasks.items():
            task.name = name

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.state]

    def task(self, name: str) -> TaskSpec:
        """The preset ``name``, or a one-line error listing the presets."""
        if name not in self.tasks:
            raise UnknownTaskError(
                f"env {self.id} has no preset task {name!r}",
                f"choose one of: {', '.join(self.tasks)}",
            )
        return self.tasks[name]

    def make_env(self, render_mode: str | None = None, **overrides: Any) -> Any:
        """Create the gymnasium env this card describes (importing registering modules first)."""
        import gymnasium as gym

        for mod in self.imports:
            importlib.import_module(mod)
        kwargs = {**self.make_kwargs, **overrides}
        if render_mode:
            kwargs["render_mode"] = render_mode
        if self.training.max_episode_steps and "max_episode_steps" not in kwargs:
            kwargs["max_episode_steps"] = self.training.max_episode_steps
        try:
            return gym.make(self.gym_id, **kwargs)
        except gym.error.Error as exc:
            raise CardError(f"card {self.id}: gymnasium cannot make {self.gym_id!r}: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# Finding and loading cards


def builtin_cards_dir() -> Path:
    """The packaged cards: ``envs/`` in a checkout, ``autoreward/envs`` after ``pip install .``."""
    from autoreward.prompts_io import data_dir

    return data_dir("envs", "*.yaml")


def card_dirs(extra: list[Path] | None = None) -> list[Path]:
    """Directories searched for cards: user ones first, so a user card can override a built-in."""
    dirs = [Path(p) for p in (extra or [])]
    env = os.environ.get("AUTOREWARD_CARDS", "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs.append(builtin_cards_dir())
    return dirs


def load_card_file(path: Path) -> EnvCard:
    """Parse and validate one card; a broken card is a one-line error naming the file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CardError(f"cannot read env card {path}: {exc}".splitlines()[0]) from exc
    if not isinstance(raw, dict):
        raise CardError(f"env card {path} is not a YAML mapping")
    raw["path"] = str(Path(path).resolve())
    try:
        card = EnvCard.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise CardError(f"env card {path}: {loc}: {first['msg']}") from exc
    if card.reward_example:  # the designer copies it, so it must itself be a valid program
        from autoreward.program import check_source

        findings = check_source(card.reward_example)
        if findings:
            raise CardError(f"env card {path}: reward_example: {findings[0]}", "it must pass the same policy as generated rewards")
    return card


def all_cards(extra: list[Path] | None = None) -> dict[str, EnvCard]:
    """Every card found, keyed by env id (user directories win over the built-in ones)."""
    cards: dict[str, EnvCard] = {}
    for d in reversed(card_dirs(extra)):
        if not d.is_dir():
            raise CardError(f"card directory {d} does not exist", "check --cards / AUTOREWARD_CARDS")
        for path in sorted(d.glob("*.yaml")):
            card = load_card_file(path)
            cards[card.id] = card
    return cards


def load_card(env_id: str, extra: list[Path] | None = None) -> EnvCard:
    """The card for ``env_id``; accepts a path to a card file too."""
    p = Path(env_id)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return load_card_file(p)
    cards = all_cards(extra)
    if env_id in cards:
        return cards[env_id]
    lowered = {k.lower(): k for k in cards}
    if env_id.lower() in lowered:
        return cards[lowered[env_id.lower()]]
    close = [k for k in cards if k.split("-")[0].lower() == env_id.split("-")[0].lower()]
    hint = f"did you mean {close[0]}?" if close else f"known envs: {', '.join(sorted(cards))}"
    raise UnknownEnvError(f"no env card for {env_id!r}", hint)


# ---------------------------------------------------------------------------------------------
# Rendering the card for the LLM


def render_card(card: EnvCard) -> str:
    """The exact text the LLM gets about this env (``prompts/env_card.j2``)."""
    from autoreward.prompts_io import render

    return render("env_card.j2", card=card).strip() + "\n"


# ---------------------------------------------------------------------------------------------
# Runtime state


def state_class(card: EnvCard) -> type:
    """The read-only state view: a namedtuple, so ``state.x`` is fast and assignment fails."""
    return _state_class(card.id, tuple(card.field_names))


@lru_cache(maxsize=64)
def _state_class(env_id: str, names: tuple[str, ...]) -> type:
    cls = collections.namedtuple("State", names)  # type: ignore[misc]
    cls.__doc__ = f"Read-only state of {env_id}."
    # Immutable (tuple of scalars and read-only arrays), so copies can be the object itself.
    # SB3's DummyVecEnv deep-copies every info dict every step; without this the two state views
    # in it cost more than the reward itself.
    cls.__copy__ = lambda self: self
    cls.__deepcopy__ = lambda self, memo: self
    return cls


def _converter(spec: FieldSpec) -> Callable[[Any], Any]:
    if spec.dtype == "str":
        return str
    if spec.dtype == "bool":
        return bool
    if not spec.shape:
        return int if spec.dtype == "int" else float
    dt = np.int64 if spec.dtype == "int" else np.float64
    shape = tuple(spec.shape)

    def to_array(v: Any) -> np.ndarray:
        a = np.array(v, dtype=dt)  # always a copy: the reward never holds a live buffer
        if a.shape != shape:
            a = a.reshape(shape)
        a.flags.writeable = False
        return a

    return to_array


def _constant(value: Any) -> Callable[[Any], Any]:
    return lambda _: value


class StateExtractor:
    """Builds the read-only state view from the unwrapped env after reset or step.

    All field expressions are compiled into one tuple expression, evaluated once per step, so
    the per-step cost is one ``eval`` plus a copy per field.
    """

    def __init__(self, card: EnvCard, env: Any) -> None:
        self.card = card
        self.cls = state_class(card)
        self.unwrapped = env.unwrapped
        # constant fields are read once; their slot in the per-step tuple is a cheap None
        src = "(" + ", ".join("None" if f.constant else f"({f.expr})" for f in card.state) + ",)"
        try:
            self._code = compile(src, f"<card {card.id}>", "eval")
        except SyntaxError as exc:
            bad = next((f.name for f in card.state if not _compiles(f.expr)), "?")
            raise CardError(f"card {card.id}: field {bad!r} has an invalid expression") from exc
        self.ns: dict[str, Any] = {
            "__builtins__": __builtins__,
            "np": np,
            "math": math,
            "env": self.unwrapped,
            "obs": None,
            "info": {},
            "reward": 0.0,
        }
        data = getattr(self.unwrapped, "data", None)
        model = getattr(self.unwrapped, "model", None)
        self.ns["data"] = extract.DataView(data) if data is not None and hasattr(data, "qpos") else data
        self.ns["model"] = model
        self.ns.update(extract.helpers(self.unwrapped))
        self._convert = [
            _constant(_converter(f)(eval(compile(f.expr, "<field>", "eval"), self.ns))) if f.constant else _converter(f)  # noqa: S307
            for f in card.state
        ]

    def __call__(self, obs: Any = None, info: dict | None = None, reward: float = 0.0) -> Any:
        ns = self.ns
        ns["obs"], ns["info"], ns["reward"] = obs, info if info is not None else {}, reward
        try:
            raw = eval(self._code, ns)  # noqa: S307 - trusted card expressions, see module doc
        except Exception as exc:  # pragma: no cover - reported with the failing field
            raise CardError(f"card {self.card.id}: {self._which_failed()}: {exc!r}") from exc
        return self.cls(*[c(v) for c, v in zip(self._convert, raw)])

    def _which_failed(self) -> str:
        for f in self.card.state:
            try:
                eval(compile(f.expr, "<field>", "eval"), self.ns)  # noqa: S307
            except Exception:
                return f"field {f.name!r} ({f.expr})"
        return "a field"


def _compiles(expr: str) -> bool:
    try:
        compile(expr, "<field>", "eval")
        return True
    except SyntaxError:
        return False


def termination_cause(card: EnvCard, state: Any, terminated: bool, truncated: bool) -> str:
    """Why an episode ended: a cause named in the card, 'time_limit', or 'terminated'."""
    if terminated:
        ns = {"state": state, "np": np, "math": math}
        for name, expr in card.termination_causes.items():
            try:
                if eval(expr, {"__builtins__": {"abs": abs, "min": min, "max": max, "any": any, "all": all, "len": len}}, ns):  # noqa: S307 - trusted card text
                    return name
            except Exception:
                continue
        return "terminated"
    return "time_limit" if truncated else "running"
