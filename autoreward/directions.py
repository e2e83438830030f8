"""Which way a task points, read from its words, and whether a proposed fitness goes that way.

A 1.5B model's fitness proposals pass the sandbox check (finite, varied numbers) while pointing
the wrong way: ``forward_speed`` for "swim backwards", a distance added for "keep it close",
``- alive_fraction`` for "while staying upright". Words cannot prove a direction, but the card's
measures are named and documented for this: each direction comes in a pair (forward/backward,
left/right), distances and tilts are marked ``lower_is_better``, and a task's words say which it
wants. :func:`direction_conflict` reads a proposal's expression against them;
:func:`wanted_measures` gives the measures whose direction the task states, so the sandboxed
fitness check can also compare the proposal's values with theirs on the recorded rollouts (for
proposals written over ``ep`` rather than with the named measures).
"""

from __future__ import annotations

import ast
import re
from typing import Any

from autoreward.textrank import tokens

#: words (stemmed, as textrank.tokens gives them) that name opposite directions; a card's measures
#: come in such pairs (forward_speed / backward_speed, turn_rate_left / turn_rate_right)
OPPOSITES: tuple[tuple[str, str], ...] = (("forward", "backward"), ("left", "right"), ("up", "down"), ("clockwis", "counterclockwis"))


def _signs(expr: str) -> dict[str, set[int]]:
    """The signs (+1, -1) with which each plain name enters ``expr``: ``a - b`` and ``-b`` flip
    ``b``; products and calls keep the sign they sit under. Empty when it does not parse."""
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        return {}
    signs: dict[str, set[int]] = {}

    def walk(node: ast.AST, sign: int) -> None:
        if isinstance(node, ast.Name):
            signs.setdefault(node.id, set()).add(sign)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            walk(node.operand, -sign)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub):
            walk(node.left, sign)
            walk(node.right, -sign)
        else:
            for child in ast.iter_child_nodes(node):
                walk(child, sign)

    walk(tree.body, 1)
    return signs


#: stems of measure names that count staying up (alive_fraction, survived, upright_fraction)
STAYING_MEASURES = frozenset({"aliv", "surviv", "upright"})
#: how a task asks to stay up: these words, or a negated fall ("without falling", "never flips over")
STAYING_WORDS = frozenset({"upright", "stay", "surviv", "aliv", "balanc", "stand", "steadi"})
_NO_FALL = re.compile(r"\b(without|never|not|no|don'?t|avoid\w*)\s+(\w+\s+)?(fall|flip|tip|toppl)", re.I)


#: words (stemmed) with which a task asks for more of a distance (then adding a lower-is-better
#: measure is what it wants); not "tilt" or "damage": "without tilting" says them too
MORE_WORDS = frozenset({"far", "away", "farther", "further", "maxim", "maximis", "increas"})


def _one_way(name: str, said: set[str]) -> list[tuple[str, str]]:
    """(mine, other) for each direction word ``mine`` in a measure's name whose pair the task
    states one way only (it says ``mine`` or ``other``, not both): "forward then backward" is
    not ours to judge."""
    words = tokens(name)
    return [(mine, other) for a, b in OPPOSITES for mine, other in ((a, b), (b, a))
            if mine in words and (mine in said) != (other in said)]


def asks_to_stay_up(task: str) -> bool:
    """Whether the task asks to stay up ("while staying upright", "without falling")."""
    return bool(set(tokens(task)) & STAYING_WORDS or _NO_FALL.search(task))


def staying_measure(measures: dict[str, Any]) -> str | None:
    """The card's measure of staying up the prompt's worked example multiplies by (alive first)."""
    named = [n for n in measures if STAYING_MEASURES & set(tokens(n))]
    return next((n for n in named if "aliv" in tokens(n)), named[0] if named else None)


def composition(task: str, ranked: dict[str, Any]) -> tuple[str, str] | None:
    """(main measure, staying measure) for the proposal prompt's worked example
    ``main * staying`` when the task asks to stay up: the most relevant measure that is not one
    of staying up, and the card's staying measure; None otherwise."""
    staying = staying_measure(ranked) if asks_to_stay_up(task) else None
    main = next((n for n in ranked if not STAYING_MEASURES & set(tokens(n))), None)
    return (main, staying) if main and staying else None


def direction_conflict(task: str, expr: str, measures: dict[str, Any]) -> str | None:
    """Why ``expr`` points the opposite way from the task, or None.

    The embedded model proposed ``forward_speed`` for "swim backwards" with ``backward_speed``
    listed first (4 of 12 of its proposals pointed the wrong way). The sandbox check cannot see
    it (the numbers are fine), so this reads the words: a measure used with a plus sign whose
    name says one direction, while the task says only the opposite one and the card has the
    opposite measure. A measure negated (``-forward_speed``, ``x - forward_speed``) is read the other
    way: it conflicts when the task says its direction (``mean_torso_height - forward_speed`` for
    "run forward while keeping the torso high", proposed by the model after a repair).

    A measure the card marks ``lower_is_better`` (a distance, a tilt, damage) only ever added is
    a conflict too, unless the task asks for more of it ("move far away"): the model proposed
    ``final_distance_to_target - closeness`` for "keep the fingertip close to the target".

    Likewise for staying up: for "hop backwards while staying upright" it proposed
    ``upright_fraction + backward_speed - alive_fraction``, which scores falling early higher;
    a staying measure only ever subtracted, in a task that asks to stay up, is a conflict."""
    said = set(tokens(task))
    signs = _signs(expr)
    for name, used in signs.items():
        if name not in measures or len(used) != 1:
            continue
        for mine, other in _one_way(name, said):
            if used == {1} and other in said:
                opposite = "_".join(other if w == mine else w for w in name.split("_"))
                twin = next((n for n in measures if tokens(n) == tokens(opposite)), None)
                if twin:
                    return (f"the task asks for {other!r} but the fitness uses {name}, which rises when it goes {mine!r}; "
                            f"use {twin} instead")
            if used == {-1} and mine in said:
                return (f"the task asks for {mine!r} but the fitness subtracts {name}, so going {mine!r} lowers it; "
                        f"add {name} instead")
    if not said & MORE_WORDS:
        for name, used in signs.items():
            if name in measures and used == {1} and getattr(measures[name], "lower_is_better", False):
                return (f"the fitness adds {name}, which is lower when the task is done better ({measures[name].doc.rstrip('.')}); "
                        f"subtract it instead (e.g. -{name})")
    if asks_to_stay_up(task):
        for name, used in signs.items():
            if name in measures and used == {-1} and STAYING_MEASURES & set(tokens(name)):
                return (f"the task asks to stay up but the fitness subtracts {name}, so falling early scores higher; "
                        f"multiply the main measure by {name} instead (e.g. <main measure> * {name})")
    return None


def wanted_measures(task: str, measures: dict[str, Any]) -> dict[str, int]:
    """The card's measures whose direction the task's words state: +1 for a measure of a
    direction the task says (``left_speed`` for "walk left", when it does not also say "right"),
    -1 for a ``lower_is_better`` one (a distance, a tilt) unless the task asks for more of it."""
    said = set(tokens(task))
    out: dict[str, int] = {}
    for name, m in measures.items():
        if any(mine in said for mine, _ in _one_way(name, said)):
            out[name] = 1
        if getattr(m, "lower_is_better", False) and not said & MORE_WORDS:
            out[name] = -1
    return out
