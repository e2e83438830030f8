"""The env card schema: what one YAML card declares, validated by pydantic.

A card lists the state fields a reward may read (name, shape, unit, meaning) with the Python
expression that extracts each one (``state.py`` evaluates them), default training settings,
and preset tasks with their fitness. Cards are trusted configuration, like a gymnasium
registration: their expressions run in the trusted process; generated code never does.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autoreward.errors import CardError, UnknownTaskError
from autoreward.train.algos import ALGORITHMS

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")

#: the training budget of a card that names none (a user's card): the global default that every
#: command used before budgets were measured per card (issue 22)
FALLBACK_BUDGET_STEPS = 20_000


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


class MeasureSpec(BaseModel):
    """A named episode measure a fitness may use as a plain name (``backward_speed``): small
    models compose these far more reliably than they write expressions over ``ep``."""

    model_config = ConfigDict(extra="forbid")

    expr: str = Field(description="Expression over `ep` (an Episode) giving one float.")
    doc: str = Field(description="What it measures, in words the LLM reads.")
    unit: str = ""
    lower_is_better: bool = Field(False, description="A distance, tilt or cost: a fitness that adds it (rather than subtracting it) "
                                                     "points the wrong way unless the task asks for more of it.")


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
    analysis: dict[str, Any] = Field(
        default_factory=dict,
        description="Per-task facts for the card's analyzer hook (Crafter: the achievement that means success, "
        "the deaths that mean failure); passed to it as keyword arguments.",
    )
    budget_steps: int | None = Field(
        None, ge=1, description="This task's default training steps, over the card's training.budget_steps (see there)."
    )


class TrainingSpec(BaseModel):
    """Default training settings, chosen for wall-clock learning on the user's cores and recorded
    with the measurement that chose them (``source``); hyperparameters are data. Earlier settings
    stay as named ``profiles`` so a benchmark can train with them beside the defaults."""

    model_config = ConfigDict(extra="forbid")

    algo: str = "ppo"
    max_episode_steps: int | None = None
    n_envs: int = 1
    vec_env: Literal["dummy", "subproc"] = Field(
        "dummy", description="How n_envs > 1 envs step: dummy (in the training process) or subproc (a process each); measured per env."
    )
    normalize_obs: bool = True
    policy: str = "MlpPolicy"
    hyperparams: dict[str, dict[str, Any]] = Field(default_factory=dict)
    source: str = ""
    budget_steps: int | None = Field(
        None, ge=1, description="Default training steps (``--steps`` of run and eval, the quality suite's budget): where the card's "
        "expert reward reaches its task's success threshold with these settings, measured by `autoreward bench --suite behaviour`; "
        "a task's own budget_steps overrides it.",
    )
    budget_source: str = Field("", description="The measurement behind budget_steps (benchmark file, steps and seconds to threshold).")
    profiles: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Named alternative settings (e.g. zoo: the rl-zoo3 settings used before issue 22): each maps keys of this "
        "section to the values that replace them (a whole key: hyperparams is replaced, not merged). See EnvCard.with_profile.",
    )

    @field_validator("algo")
    @classmethod
    def _check_algo(cls, v: str) -> str:
        if v not in ALGORITHMS:
            raise ValueError(f"unknown algo {v!r}; use one of {', '.join(ALGORITHMS)}")
        return v

    @model_validator(mode="after")
    def _check_profiles(self) -> "TrainingSpec":
        """A profile is checked when the card loads, not when a benchmark first trains with it."""
        for name, over in self.profiles.items():
            if "profiles" in over:
                raise ValueError(f"profile {name!r} cannot hold profiles of its own")
            try:
                self.profile(name)
            except ValueError as exc:
                raise ValueError(f"profile {name!r}: {' '.join(str(exc).split())}") from None
        return self

    def profile(self, name: str) -> "TrainingSpec":
        """These settings with profile ``name``'s keys replacing their own (no profiles kept)."""
        if name not in self.profiles:
            raise ValueError(f"no training profile {name!r}; known: {', '.join(self.profiles) or 'none'}")
        return TrainingSpec.model_validate({**self.model_dump(exclude={"profiles"}), **self.profiles[name]})


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
    analyzer: str = Field(
        default="",
        description="module:function(episodes, fitness, success, **task.analysis) -> dict of env-specific numbers "
        "(a 'text' entry, if any, goes into the analyzer's prompt).",
    )
    reward_example: str = Field(
        default="",
        description="A minimal valid compute_reward for this env, shown to the designer as the shape to follow "
        "(small models copy it); empty = the generic one for the env's action space (prompts/reward_example_*.py).",
    )
    measures: dict[str, MeasureSpec] = Field(
        default_factory=dict, description="Named episode measures a proposed fitness may compose (name -> measure)."
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

    @property
    def measure_exprs(self) -> dict[str, str]:
        """name -> expression, as ``episode.fitness_function`` takes them."""
        return {name: m.expr for name, m in self.measures.items()}

    def budget_steps(self, task: str | None = None) -> int:
        """Default training steps for ``task`` (a preset name, or None for a free-form task): the
        task's own budget, else the card's, else :data:`FALLBACK_BUDGET_STEPS` for a card that
        names none. A behaviour is judged where it appears, not at one global step count."""
        t = self.tasks.get(task) if task else None
        return (t.budget_steps if t and t.budget_steps else None) or self.training.budget_steps or FALLBACK_BUDGET_STEPS

    def with_profile(self, name: str) -> "EnvCard":
        """This card trained with profile ``name`` (a benchmark's "today's settings" beside the defaults)."""
        try:
            training = self.training.profile(name)
        except ValueError as exc:
            raise CardError(f"card {self.id}: {exc}") from None
        return self.model_copy(update={"training": training})

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

        from autoreward.cards.mujoco_helpers import install_warning_filter

        install_warning_filter()
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
