"""The Critic's LLM reviews: "does this code reward the task as written?" and, for a proposed
fitness, "does this number rise when the task is done better?".

The prompt is ``prompts/critic_review.j2``; the answer is parsed here. Whether a REJECT vetoes
the program or is only recorded is the loop's choice (``--review veto|advise|off``). An answer
with neither ACCEPT nor REJECT is "no verdict" (``accept=None``), never a pass: the loop records
and shows it, and the program stands on the automatic checks as if the reviewer were unavailable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from autoreward.prompts_io import render


@dataclass
class Review:
    """One review: accept (None when the answer held no verdict), the reason, the raw answer."""

    accept: bool | None
    reason: str
    answer: str


def parse_review(text: str) -> tuple[bool | None, str]:
    """(accept?, reason) from a critic review answer; None when the answer has no verdict."""
    m = re.search(r"VERDICT\s*:\s*\**\s*(ACCEPT|REJECT)", text, re.I)
    if not m:  # small models often drop the label: "REJECT\nREASON: ..." or "**ACCEPT**"
        m = re.search(r"^[\s*#>-]*(ACCEPT|REJECT)\b", text, re.M) or re.search(r"\b(ACCEPT|REJECT)\b", text)
    reason = re.search(r"REASON\s*:\s*(.+)", text, re.I)
    why = reason.group(1).strip() if reason else re.sub(r"^[\s*#>-]*(ACCEPT|REJECT)\b[\s*.:]*", "", text.strip())[:300]
    if not m:
        return None, why
    return m.group(1).upper() == "ACCEPT", why


def review(
    complete: Callable[..., list[Any]], task: str, env_text: str, code: str, probe: dict[str, Any] | None, seed: int
) -> Review:
    """Ask the reviewer through ``complete`` (the loop's budget-counting client call)."""
    var = {"task": task, "env_text": env_text, "code": code, "probe": probe}
    msgs = [{"role": "user", "content": render("critic_review.j2", **var)}]
    out = complete(msgs, n=1, temperature=0.0, seed=seed, template="critic_review.j2", variables=var, max_tokens=200)[0]
    ok, reason = parse_review(out.text)
    return Review(ok, reason, out.text)


def review_fitness(
    complete: Callable[..., list[Any]], task: str, env_text: str, expr: str, threshold: float, measures: dict[str, Any], seed: int
) -> Review:
    """Ask whether a proposed fitness rises when the task is done better (advice shown beside
    the proposal, never a veto); the named measures it uses are explained to the reviewer."""
    used = {name: m for name, m in measures.items() if re.search(rf"\b{re.escape(name)}\b", expr)}
    var = {"task": task, "env_text": env_text, "expr": expr, "threshold": threshold, "measures": used}
    msgs = [{"role": "user", "content": render("fitness_review.j2", **var)}]
    out = complete(msgs, n=1, temperature=0.0, seed=seed, template="fitness_review.j2", variables=var, max_tokens=200)[0]
    ok, reason = parse_review(out.text)
    return Review(ok, reason, out.text)
