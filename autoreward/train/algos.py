"""The algorithms autoreward trains with, in one table.

The card schema, the command line's checks, the sandbox's time budget and the training job all
read this table, so adding an algorithm is one row (plus its hyperparameters in the cards).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

from autoreward.errors import ConfigError


@dataclass(frozen=True)
class Algorithm:
    """One SB3 algorithm and what we assume about its speed."""

    name: str
    target: str  # "module:Class"
    #: conservative steps/s on a busy 2-core box (Crafter, evaluations included), for the
    #: training job's wall-clock budget; measured figures are in the README
    budget_steps_per_s: float

    def load(self) -> type:
        module, _, cls = self.target.partition(":")
        return getattr(importlib.import_module(module), cls)


ALGORITHMS: dict[str, Algorithm] = {
    "ppo": Algorithm("ppo", "stable_baselines3:PPO", 150.0),
    "sac": Algorithm("sac", "stable_baselines3:SAC", 40.0),
}

POLICIES = ("MlpPolicy", "CnnPolicy", "MultiInputPolicy")


def algorithm(name: str) -> Algorithm:
    """The row for ``name``, or a one-line error listing the known ones."""
    if name not in ALGORITHMS:
        raise ConfigError(f"unknown --algo {name!r}", f"use {' or '.join(ALGORITHMS)}")
    return ALGORITHMS[name]


def validate_hyperparams(algo: str, hp: dict[str, Any]) -> None:
    """Refuse unknown hyperparameter names in the parent, before a worker is started."""
    cls = algorithm(algo).load()
    allowed = set(inspect.signature(cls.__init__).parameters) - {"self", "policy", "env"}
    bad = sorted(set(hp) - allowed)
    if bad:
        raise ConfigError(
            f"unknown {algo.upper()} hyperparameter(s): {', '.join(bad)}",
            f"valid names include: {', '.join(sorted(a for a in allowed if not a.startswith('_'))[:12])}...",
        )


def validate_policy(policy: str) -> None:
    """Refuse a policy name SB3 does not know, in the parent."""
    if policy and policy not in POLICIES:
        raise ConfigError(f"unknown --policy {policy!r}", f"use one of {', '.join(POLICIES)}")


def _policy_kwargs(raw: dict[str, Any]) -> dict[str, Any]:
    """Card hyperparameters are YAML data; turn names into the torch objects SB3 expects."""
    import torch.nn as nn

    out = dict(raw)
    act = out.get("activation_fn")
    if isinstance(act, str):
        table = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU}
        out["activation_fn"] = table[act.lower()]
    return out


def hyperparams_for(card_hyperparams: dict[str, dict[str, Any]], algo: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The card's hyperparameters for ``algo`` with ``overrides`` on top, ready for SB3."""
    hp = dict(card_hyperparams.get(algo, {}))
    hp.update(overrides)
    if "policy_kwargs" in hp:
        hp["policy_kwargs"] = _policy_kwargs(hp["policy_kwargs"])
    return hp


def discount(card_hyperparams: dict[str, dict[str, Any]], algo: str, overrides: dict[str, Any]) -> float:
    """The gamma training will use: the override, else the card's value for ``algo``, else SB3's
    default for the algorithm. Potential shaping must use the learner's own gamma, or the shaping
    no longer telescopes in the return the learner maximises."""
    hp = {**card_hyperparams.get(algo, {}), **overrides}
    if "gamma" in hp:
        return float(hp["gamma"])
    return float(inspect.signature(algorithm(algo).load().__init__).parameters["gamma"].default)
