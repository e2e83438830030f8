"""Episodes as fitness functions see them, and recordings of rollouts as the critic replays them.

A preset's fitness is an expression over ``ep`` (an :class:`Episode`), for example
``(ep.first.x_position - ep.last.x_position) / ep.duration``. The same Episode type is built
from live rollouts (evaluation) and from recordings (critic), so one fitness definition serves
every place a policy is judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from autoreward.cards import EnvCard, StateExtractor, state_class, termination_cause
from autoreward.program import frozen_array


@dataclass
class Episode:
    """One episode: ``states[0]`` is the reset state, ``states[t+1]`` follows ``actions[t]``."""

    states: list[Any]
    actions: np.ndarray
    env_rewards: np.ndarray
    terminated: bool = False
    truncated: bool = False
    cause: str = "running"
    dt: float = 1.0
    time_limit: int = 0  # the step limit it ran under (0: unknown); measures such as alive_fraction use it
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def length(self) -> int:
        """Number of steps taken."""
        return len(self.states) - 1

    @property
    def duration(self) -> float:
        """Simulated seconds: length * dt (never zero, so fitness may divide by it)."""
        return max(self.length, 1) * self.dt

    @property
    def limit(self) -> int:
        """The step limit the episode ran under (its length when unknown)."""
        return self.time_limit or max(self.length, 1)

    @property
    def first(self) -> Any:
        return self.states[0]

    @property
    def last(self) -> Any:
        return self.states[-1]

    @property
    def env_return(self) -> float:
        return float(np.sum(self.env_rewards))

    def series(self, name: str) -> np.ndarray:
        """The field ``name`` over the episode, reset state included: shape [length+1, ...]."""
        return np.asarray([getattr(s, name) for s in self.states])

    def steps(self, name: str) -> np.ndarray:
        """The field ``name`` after each step (reset state excluded): shape [length, ...]."""
        return self.series(name)[1:]

    def __getattr__(self, name: str) -> Any:
        """Only reached when ``name`` is not an attribute: small models write ``ep.torso_height``
        for a state field, and Python's bare "no attribute" sent three repairs after it; the
        message says how to read the field instead (it goes back to the fitness proposer)."""
        states = self.__dict__.get("states")
        if name.startswith("__") or not states:
            raise AttributeError(name)
        if hasattr(states[0], name):
            raise AttributeError(
                f"the episode has no attribute {name!r}: {name} is a state field, read it with ep.last.{name} "
                f"(at the end), ep.first.{name} (at the start) or np.mean(ep.series({name!r})) (over the episode)"
            )
        raise AttributeError(
            f"the episode has no attribute {name!r}; it has first, last, series(name), steps(name), "
            "length, duration, limit, terminated and env_return"
        )


def compile_fitness(expr: str, measures: dict[str, str] | None = None, fields: Sequence[str] = ()) -> Callable[[Episode], Any]:
    """Compile a fitness expression under the reward-program policy (see ``program.py``); the
    raw value is returned, so a checker can say what came back when it is not one number.

    ``measures`` are the card's named episode measures (name -> expression over ``ep``): a
    fitness may use them as plain names (``backward_speed * survived``). Only the measures the
    expression names are computed, each once per episode. ``fields`` (the card's state field
    names) keep ``ep.last.<field>`` a field where a measure has the same name."""
    from autoreward.program import compile_expression

    expr = _measure_forms(expr, set(measures or {}), set(fields))
    used = _names_in(expr) & set(measures or {})
    order = tuple(sorted(used))
    parts = [compile_expression((measures or {})[name], ("ep",)) for name in order]
    fn = compile_expression(expr, ("ep", *order))

    def raw(ep: Episode) -> Any:
        return fn(ep, *[m(ep) for m in parts])

    return raw


def fitness_function(expr: str, measures: dict[str, str] | None = None, fields: Sequence[str] = ()) -> Callable[[Episode], float]:
    """:func:`compile_fitness`, returning a float per episode."""
    raw = compile_fitness(expr, measures, fields)

    def fitness(ep: Episode) -> float:
        return float(raw(ep))

    return fitness


def _measure_forms(expr: str, names: set[str], fields: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    """Small models write a measure as ``ep.backward_speed``, ``ep.last.backward_speed``,
    ``backward_speed(ep)`` or ``np.mean(ep.series("backward_speed"))`` (seen in 2 of 12 of the
    embedded model's failed proposals); all mean the plain name, so they are rewritten to it
    (Episode's own attributes and the state's fields are left alone)."""
    import ast

    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        return expr  # compile_expression reports it

    class Plain(ast.NodeTransformer):
        def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
            if isinstance(node.value, ast.Name) and node.value.id == "ep" and node.attr in names and not hasattr(Episode, node.attr):
                return ast.copy_location(ast.Name(node.attr, ast.Load()), node)
            v = node.value  # ep.last.<measure> / ep.first.<measure>, when no state field has the name
            if (isinstance(v, ast.Attribute) and v.attr in ("first", "last") and isinstance(v.value, ast.Name) and v.value.id == "ep"
                    and node.attr in names and node.attr not in fields):
                return ast.copy_location(ast.Name(node.attr, ast.Load()), node)
            return self.generic_visit(node)

        def visit_Call(self, node: ast.Call) -> ast.AST:
            f = node.func
            if isinstance(f, ast.Name) and f.id in names and len(node.args) == 1 and not node.keywords \
                    and isinstance(node.args[0], ast.Name) and node.args[0].id == "ep":
                return ast.copy_location(ast.Name(f.id, ast.Load()), node)
            # ep.series("forward_speed") / ep.steps(...) of a measure that is no state field: the
            # measure itself (one number, which np.mean and friends leave as it is)
            if (isinstance(f, ast.Attribute) and f.attr in ("series", "steps") and isinstance(f.value, ast.Name) and f.value.id == "ep"
                    and len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.Constant)
                    and node.args[0].value in names and node.args[0].value not in fields):
                return ast.copy_location(ast.Name(node.args[0].value, ast.Load()), node)
            return self.generic_visit(node)

    new = Plain().visit(tree)
    return ast.unparse(new) if ast.dump(new) != ast.dump(ast.parse(expr, mode="eval")) else expr


def _names_in(expr: str) -> set[str]:
    import ast

    try:
        return {n.id for n in ast.walk(ast.parse(expr, mode="eval")) if isinstance(n, ast.Name)}
    except SyntaxError:
        return set()  # compile_expression reports it


# ---------------------------------------------------------------------------------------------
# Behaviour policies for diverse rollouts (critic's dry run and probe)


def behaviour_policies(action_space: Any, n: int, seed: int) -> list[Callable[[int, Any], Any]]:
    """``n`` open-loop policies that behave differently, so fitness varies across rollouts.

    Uniform random actions barely move most robots, so a probe built on them alone cannot tell a
    reward that points the right way from one that points the wrong way. Besides random play we
    use biased constant actions and sinusoidal gaits of random frequency and phase (continuous
    spaces), or action preferences of random sharpness (discrete spaces).
    """
    from gymnasium import spaces

    rng = np.random.default_rng(seed)
    out: list[Callable[[int, Any], Any]] = []
    if isinstance(action_space, spaces.Discrete):
        k = int(action_space.n)
        for i in range(n):
            logits = rng.normal(0, 0.5 + 2.0 * i / max(n - 1, 1), size=k)
            p = np.exp(logits - logits.max())
            p /= p.sum()
            r = np.random.default_rng(seed + 7919 * (i + 1))
            out.append(lambda t, obs, p=p, r=r: int(r.choice(k, p=p)))
        return out
    low = np.asarray(action_space.low, dtype=np.float64)
    high = np.asarray(action_space.high, dtype=np.float64)
    shape = action_space.shape
    mid, half = (high + low) / 2, (high - low) / 2
    for i in range(n):
        r = np.random.default_rng(seed + 7919 * (i + 1))
        kind = i % 3
        if kind == 0:  # uniform random
            out.append(lambda t, obs, r=r: r.uniform(low, high).astype(np.float32))
        elif kind == 1:  # sinusoidal gait
            freq = r.uniform(0.02, 0.25, size=shape)
            phase = r.uniform(0, 2 * np.pi, size=shape)
            amp = r.uniform(0.3, 1.0, size=shape)
            out.append(
                lambda t, obs, f=freq, ph=phase, a=amp: np.clip(
                    mid + half * a * np.sin(2 * np.pi * f * t + ph), low, high
                ).astype(np.float32)
            )
        else:  # biased constant with noise
            bias = r.uniform(-0.8, 0.8, size=shape)
            out.append(
                lambda t, obs, b=bias, r=r: np.clip(mid + half * (b + r.normal(0, 0.3, size=shape)), low, high).astype(np.float32)
            )
    return out


def rollout(
    card: EnvCard,
    env: Any,
    extractor: StateExtractor,
    policy: Callable[[int, Any], Any],
    seed: int,
    max_steps: int,
    on_step: Callable[[Any, Any, Any], None] | None = None,
) -> Episode:
    """Run one episode with ``policy(t, obs)`` using the env's own termination."""
    obs, info = env.reset(seed=seed)
    states = [extractor(obs, info, 0.0)]
    actions, rewards = [], []
    terminated = truncated = False
    for t in range(max_steps):
        a = policy(t, obs)
        obs, r, terminated, truncated, info = env.step(a)
        s = extractor(obs, info, float(r))
        if on_step is not None:
            on_step(states[-1], a, s)
        states.append(s)
        actions.append(np.asarray(a))
        rewards.append(float(r))
        if terminated or truncated:
            break
    if not (terminated or truncated):
        truncated = True  # cut by max_steps: the probe's own time limit
    dt = float(getattr(states[0], "dt", getattr(env.unwrapped, "dt", 1.0)))
    return Episode(
        states=states,
        actions=np.asarray(actions),
        env_rewards=np.asarray(rewards, dtype=np.float64),
        terminated=bool(terminated),
        truncated=bool(truncated),
        cause=termination_cause(card, states[-1], bool(terminated), bool(truncated)),
        dt=dt,
        time_limit=int(max_steps),
    )


# ---------------------------------------------------------------------------------------------
# Recordings: many episodes in one .npz, replayed in the sandbox


def save_recording(path: Path, card: EnvCard, episodes: list[Episode]) -> None:
    """Store episodes column-wise (one array per state field), atomically."""
    cols: dict[str, Any] = {}
    for name in card.field_names:
        cols["s_" + name] = np.concatenate([ep.series(name) for ep in episodes])
    cols["episode_len"] = np.array([ep.length for ep in episodes])
    cols["actions"] = np.concatenate([ep.actions.reshape(ep.length, -1) for ep in episodes])
    cols["action_shape"] = np.array(episodes[0].actions.shape[1:], dtype=np.int64)  # () for discrete actions
    cols["env_rewards"] = np.concatenate([ep.env_rewards for ep in episodes])
    cols["terminated"] = np.array([ep.terminated for ep in episodes])
    cols["truncated"] = np.array([ep.truncated for ep in episodes])
    cols["cause"] = np.array([ep.cause for ep in episodes])
    cols["dt"] = np.array([ep.dt for ep in episodes])
    cols["time_limit"] = np.array([ep.time_limit for ep in episodes], dtype=np.int64)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **cols)
    tmp.replace(path)


def load_recording(path: Path, card: EnvCard) -> list[Episode]:
    """Rebuild the episodes of a recording with read-only state views."""
    cls = state_class(card)
    with np.load(path, allow_pickle=False) as z:  # over immutable memory: setflags(write=True) fails
        data = {k: frozen_array(z[k]) for k in z.files}
    lens = data["episode_len"]
    actions = data["actions"]
    if "action_shape" in data:  # the env's own action shape: a discrete action is a scalar again
        actions = actions.reshape((len(actions), *data["action_shape"].tolist()))
    episodes: list[Episode] = []
    s0 = a0 = 0
    conv = {f.name: f for f in card.state}
    for i, n in enumerate(lens):
        n = int(n)
        states = []
        for j in range(s0, s0 + n + 1):
            vals = []
            for name in card.field_names:
                v = data["s_" + name][j]
                spec = conv[name]
                if not spec.shape:
                    v = {"float": float, "int": int, "bool": bool, "str": str}[spec.dtype](v)
                vals.append(v)
            states.append(cls(*vals))
        episodes.append(
            Episode(
                states=states,
                actions=actions[a0 : a0 + n],
                env_rewards=data["env_rewards"][a0 : a0 + n],
                terminated=bool(data["terminated"][i]),
                truncated=bool(data["truncated"][i]),
                cause=str(data["cause"][i]),
                dt=float(data["dt"][i]),
                time_limit=int(data["time_limit"][i]) if "time_limit" in data else 0,
            )
        )
        s0 += n + 1
        a0 += n
    return episodes

