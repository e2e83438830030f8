"""One ``autoreward run``'s settings: the model saved in run.json and reloaded by resume and refine."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from autoreward.library import Exclude


class RunConfig(BaseModel):
    """One ``autoreward run``; saved in run.json and reloaded by resume/refine."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(description="The task in words.")
    env: str
    preset: str | None = Field(None, description="Preset whose fitness judges candidates.")
    model: str | None = None
    iterations: int = 2
    samples: int = 2
    steps: int = Field(0, ge=0, description="Training steps per candidate; 0: the card's budget for the preset (training.budget_steps: "
                       "where the card's expert reaches its success threshold).")
    algo: str = ""
    seed: int = 0
    max_repairs: int = 3
    refill_rounds: int = Field(1, ge=0, description="When the critic rejects every sample of an iteration (after repairs), ask for this "
                               "many fresh rounds of samples, told every rejection, before the iteration gives up.")
    diversity_rounds: int = Field(1, ge=0, description="When dedupe drops samples as copies (of each other or of earlier candidates), ask "
                                  "this many times for as many fresh samples as were dropped, shown the round's distinct programs and "
                                  "told to write a different one.")
    shaping: Literal["reward", "potential"] = Field(
        "reward", description="reward: the LLM writes the reward; potential: it writes a potential phi(state) and training uses the "
        "task's own signal + gamma * phi(s') - phi(s), which cannot change the optimal policy (Ng, Harada & Russell 1999)."
    )
    review: Literal["veto", "advise", "off"] = Field(
        "veto", description="LLM review of accepted programs: veto (a REJECT sends it back for repair), advise (recorded and passed on, no veto), off."
    )
    max_episode_steps: int | None = None
    eval_episodes: int = 3
    hyperparams: dict[str, Any] = Field(default_factory=dict)
    max_tokens: int | None = None
    max_cost: float | None = None
    max_wall_s: float | None = None
    max_env_steps: int | None = Field(None, ge=1, description="Stop before training more than this many environment steps in all (summed over candidates).")
    fitness: str | None = None
    success: float | None = None
    fitness_doc: str = ""
    cards: list[str] = Field(default_factory=list)
    policy: str = Field("", description="SB3 policy class; empty = the card's.")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="Env constructor arguments over the preset's.")
    device: str = "auto"
    n_envs: int = Field(0, ge=0, description="Envs each candidate trains on at once (0: the card's n_envs; the card's vec_env says dummy or subproc).")
    trainer: Literal["sb3", "sbx"] = Field("sb3", description="sb3 (PyTorch) or sbx (SB3's JAX port: 1.3-2.2x faster SAC, slower PPO on a CPU; pip install 'autoreward[sbx]').")
    workers: int = Field(0, description="Candidates trained at once (0: one per core); each is its own sandboxed process.")
    executor: Literal["local", "ray"] = Field("local", description="Where candidates train: local (a pool of --workers) or ray (Ray tasks; pip install 'autoreward[ray]').")
    ray_address: str = Field("", description="Ray cluster to use (e.g. 10.0.0.1:6379 or auto); empty: a new local Ray instance.")
    ray_num_cpus: float = Field(1.0, gt=0.0, description="CPUs Ray reserves for each candidate's training job (its torch threads).")
    ray_num_gpus: float = Field(0.0, ge=0.0, description="GPUs Ray reserves for each candidate's training job (fractions share one).")
    halving: Literal["auto", "on", "off"] = Field(
        "auto", description="Successive halving over an iteration's candidates: auto = on with >= 4 candidates to train."
    )
    halving_rungs: list[float] = Field(default_factory=lambda: [0.25, 0.5, 1.0], description="Rung budgets as fractions of --steps, ascending, ending at 1.0.")
    halving_keep: float = Field(0.5, gt=0.0, lt=1.0, description="Fraction of the ranked candidates that continues to the next rung.")
    report: bool = Field(default_factory=lambda: os.environ.get("AUTOREWARD_NO_REPORT", "").lower() not in ("1", "true", "yes"),
                         description="Write report.html (plots, code, videos) into the run directory at the end (default on; AUTOREWARD_NO_REPORT=1 turns the default off, e.g. in CI).")
    tensorboard: bool = Field(False, description="SB3 TensorBoard logs per candidate, in <candidate>/tensorboard (needs autoreward[tb]).")
    library: bool = Field(True, description="Use the reward library: its most relevant verified rewards go into the designer's first prompt, and this run's best is added to it at the end (--no-library: neither).")
    library_dir: str | None = Field(None, description="Library folder; default AUTOREWARD_LIBRARY, else the user data dir.")
    library_k: int = Field(2, ge=0, description="How many library entries the designer's first prompt shows.")
    library_exclude: list[Exclude] = Field(
        default_factory=list, description="Rules keeping entries out of the prompt (leave-one-out), e.g. [{env: HalfCheetah-v5, preset: run_backwards}]; an entry matching every field of a rule is left out."
    )

    @field_validator("halving_rungs")
    @classmethod
    def _rungs_ascend_to_one(cls, v: list[float]) -> list[float]:
        if not v or v[-1] != 1.0 or any(a >= b for a, b in zip([0.0, *v], v)):
            raise ValueError("rungs must be ascending fractions of the budget in (0, 1], ending at 1.0, e.g. [0.25, 0.5, 1.0]")
        return v
