"""The runtime state a reward reads: card expressions evaluated on the unwrapped env.

The read-only view is a namedtuple of copies (arrays over immutable memory, see
``program.frozen_array``), so ``state.x = 1`` and ``state.q[0] = 1`` fail, even after
``setflags(write=True)``, and a reward cannot change the physics it is judged by.
"""

from __future__ import annotations

import collections
import math
from functools import lru_cache
from typing import Any, Callable

import numpy as np

from autoreward.cards import mujoco_helpers
from autoreward.cards.schema import EnvCard, FieldSpec
from autoreward.errors import CardError


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
    # a subprocess VecEnv pickles the views in info: rebuilt by name, arrays frozen again
    cls.__reduce__ = lambda self: (_rebuild, (env_id, names, tuple(self)))
    return cls


def _rebuild(env_id: str, names: tuple[str, ...], values: tuple[Any, ...]) -> Any:
    """A state view unpickled in another process (``SubprocVecEnv``): still read-only."""
    frozen = [np.frombuffer(v.tobytes(), dtype=v.dtype).reshape(v.shape) if isinstance(v, np.ndarray) else v for v in values]
    return _state_class(env_id, names)(*frozen)


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
        a = np.asarray(v, dtype=dt)
        # program.frozen_array inlined (hot path): a copy over immutable memory, so the reward
        # never holds a live buffer, nor can it make this one writable again
        return np.frombuffer(a.tobytes(), dtype=dt).reshape(shape)

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
        self.ns["data"] = mujoco_helpers.DataView(data) if data is not None and hasattr(data, "qpos") else data
        self.ns["model"] = model
        self.ns.update(mujoco_helpers.helpers(self.unwrapped))
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
