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


#: trainer -> (the package that implements SB3's algorithms, the extra that installs it). SBX is
#: SB3's maintainers' JAX port with the same API and VecEnvs: measured here (benchmarks/search-*)
#: 1.3-2.2x SB3's steps/s for SAC on the CPU and 0.7-0.8x for PPO, so an option, not the default.
TRAINERS: dict[str, tuple[str, str]] = {"sb3": ("stable_baselines3", ""), "sbx": ("sbx", "sbx")}


@dataclass(frozen=True)
class Algorithm:
    """One SB3 algorithm and what we assume about its speed."""

    name: str
    target: str  # "module:Class" (SB3's; another trainer's module has the same class name)
    #: conservative steps/s on a busy 2-core box (Crafter, evaluations included), for the
    #: training job's wall-clock budget; measured figures are in the README
    budget_steps_per_s: float

    def load(self, trainer: str = "sb3") -> type:
        module, _, cls = self.target.partition(":")
        if trainer not in TRAINERS:
            raise ConfigError(f"unknown --trainer {trainer!r}", f"use {' or '.join(TRAINERS)}")
        package, extra = TRAINERS[trainer]
        try:
            mod = importlib.import_module(module if trainer == "sb3" else package)
        except ImportError:
            raise ConfigError(f"--trainer {trainer} needs the {package} package", f"pip install 'autoreward[{extra}]'") from None
        return getattr(mod, cls)


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


def validate_hyperparams(algo: str, hp: dict[str, Any], trainer: str = "sb3") -> None:
    """Refuse unknown hyperparameter names in the parent, before a worker is started."""
    cls = algorithm(algo).load(trainer)
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


def _policy_kwargs(raw: dict[str, Any], trainer: str = "sb3") -> dict[str, Any]:
    """Card hyperparameters are YAML data; turn names into the torch (SB3) or JAX (SBX) functions."""
    out = dict(raw)
    act = out.get("activation_fn")
    if isinstance(act, str):
        if trainer == "sbx":
            import jax

            table: dict[str, Any] = {"relu": jax.nn.relu, "tanh": jax.nn.tanh, "elu": jax.nn.elu, "leaky_relu": jax.nn.leaky_relu, "gelu": jax.nn.gelu}
        else:
            import torch.nn as nn

            table = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU}
        out["activation_fn"] = table[act.lower()]
    return out


def hyperparams_for(card_hyperparams: dict[str, dict[str, Any]], algo: str, overrides: dict[str, Any], trainer: str = "sb3") -> dict[str, Any]:
    """The card's hyperparameters for ``algo`` with ``overrides`` on top, ready for the trainer."""
    hp = dict(card_hyperparams.get(algo, {}))
    hp.update(overrides)
    if "policy_kwargs" in hp:
        hp["policy_kwargs"] = _policy_kwargs(hp["policy_kwargs"], trainer)
    return hp


def discount(card_hyperparams: dict[str, dict[str, Any]], algo: str, overrides: dict[str, Any]) -> float:
    """The gamma training will use: the override, else the card's value for ``algo``, else SB3's
    default for the algorithm. Potential shaping must use the learner's own gamma, or the shaping
    no longer telescopes in the return the learner maximises."""
    hp = {**card_hyperparams.get(algo, {}), **overrides}
    if "gamma" in hp:
        return float(hp["gamma"])
    return float(inspect.signature(algorithm(algo).load().__init__).parameters["gamma"].default)
