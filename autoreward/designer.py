"""The Reward Designer: asks the LLM for k reward programs, extracts code, repairs, dedups.

Prompts are the templates in ``prompts/``; this module only chooses which one and with what
variables. Code extraction is written by hand because answers arrive in every shape: prose
around fences, several blocks, no fences at all, a function with the wrong name.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from autoreward.program import FUNCTION_NAME, RewardProgram, check_source
from autoreward.prompts_io import render

FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)


def _parses(src: str) -> bool:
    try:
        ast.parse(src)
        return True
    except SyntaxError:
        return False


def _functions(src: str) -> list[ast.FunctionDef]:
    try:
        return [n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef)]
    except SyntaxError:
        return []


def _largest_parsable_prefix(lines: list[str]) -> str:
    for end in range(len(lines), 0, -1):
        chunk = "\n".join(lines[:end]).strip()
        if chunk and _parses(chunk):
            return chunk
    return ""


def extract_code(text: str) -> str | None:
    """The reward program inside an LLM answer, or None when there is no code at all.

    Prefers a fenced block defining ``compute_reward``; else joins the fenced blocks (helpers
    in one, the function in another); else takes unfenced code from the first ``import`` or
    ``def`` line, cutting trailing prose. A single 4-argument function with another name is
    renamed to ``compute_reward``.
    """
    blocks = [b.strip() for lang, b in FENCE_RE.findall(text) if lang.lower() in ("", "python", "py", "python3")]
    blocks = [b for b in blocks if b]
    chosen = next((b for b in blocks if re.search(rf"def\s+{FUNCTION_NAME}\s*\(", b)), None)
    if chosen is None and blocks:
        joined = "\n\n".join(b for b in blocks if _parses(b))
        chosen = joined or blocks[-1]
    if chosen is None:
        lines = text.splitlines()
        start = next((i for i, ln in enumerate(lines) if re.match(r"\s*(import |from \w+ import |def )", ln)), None)
        if start is None:
            return None
        chosen = _largest_parsable_prefix([ln for ln in lines[start:]]) or "\n".join(lines[start:])
    if not re.search(rf"def\s+{FUNCTION_NAME}\s*\(", chosen):
        funcs = [f for f in _functions(chosen) if len(f.args.args) == 4]
        if len(funcs) >= 1:
            old = funcs[-1].name
            chosen = re.sub(rf"\b{re.escape(old)}\b", FUNCTION_NAME, chosen)
    return chosen.strip() + "\n"


@dataclass
class Draft:
    """One designer sample on its way to becoming a candidate."""

    index: int
    source: str | None
    raw: str
    repairs: list[dict[str, str]] = field(default_factory=list)
    error: str = ""

    def program(self) -> RewardProgram:
        assert self.source is not None
        return RewardProgram(self.source, origin=f"sample {self.index}")


class Designer:
    """Writes, repairs and refines reward programs through one LLM client."""

    def __init__(
        self, client: Any, env_text: str, task: str, fitness_doc: str, temperature: float = 0.8, example: str = ""
    ) -> None:
        self.client = client
        self.example = example or DEFAULT_EXAMPLE  # the card's reward_example: the shape to follow
        self.env_text = env_text
        self.task = task
        self.fitness_doc = fitness_doc
        self.temperature = temperature

    def _messages(self, template: str, **variables: Any) -> tuple[list[dict[str, str]], dict[str, Any]]:
        variables = {"env_text": self.env_text, "task": self.task, "fitness_doc": self.fitness_doc, **variables}
        return (
            [
                {"role": "system", "content": render("designer_system.j2", example=self.example)},
                {"role": "user", "content": render(template, **variables)},
            ],
            variables,
        )

    def sample(
        self, k: int, seed: int, parent: dict[str, Any] | None = None, feedback: str = "", failures: list[str] | None = None
    ) -> list[Draft]:
        """k samples: the initial prompt, or the refine prompt when a parent is given. Earlier
        failures go into either prompt so the Designer sees every error."""
        if parent is None:
            msgs, var = self._messages("designer_initial.j2", failures=failures or [])
            template = "designer_initial.j2"
        else:
            msgs, var = self._messages("designer_refine.j2", feedback=feedback, **parent)
            template = "designer_refine.j2"
        outs = self.client.complete(msgs, n=k, temperature=self.temperature, seed=seed, template=template, variables=var)
        drafts = [Draft(i, extract_code(c.text), c.text) for i, c in enumerate(outs)]
        for d in drafts:
            if d.source is None:
                d.error = "the answer contained no Python code"
        return drafts

    def repair(self, draft: Draft, error: str, seed: int) -> Draft:
        """Ask for a fix of ``draft`` given the critic's message; records the exchange.

        Small models often answer a repair request by copying the code unchanged. When that
        happens we do not spend the next attempt on the same prompt: we ask for a fresh sample
        from the initial prompt, told what went wrong."""
        msgs, var = self._messages("designer_repair.j2", code=draft.source or draft.raw, error=error)
        out = self.client.complete(msgs, n=1, temperature=0.7, seed=seed, template="designer_repair.j2", variables=var)[0]
        new = extract_code(out.text)
        draft.repairs.append({"error": error, "answer": out.text})
        if new is None or _same_program(new, draft.source):
            msgs, var = self._messages("designer_initial.j2", failures=[f"a previous version was rejected: {error}"])
            out = self.client.complete(msgs, n=1, temperature=0.9, seed=seed + 1000, template="designer_initial.j2", variables=var)[0]
            draft.repairs.append({"error": "the repair repeated the rejected code; asked for a fresh sample", "answer": out.text})
            new = extract_code(out.text)
        if new is not None:
            draft.source = new
        return draft


def _same_program(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a == b
    try:
        return RewardProgram(a).normalized_ast() == RewardProgram(b).normalized_ast()
    except SyntaxError:
        return a.strip() == b.strip()


#: the reward shape shown to the designer when the card has no ``reward_example``
DEFAULT_EXAMPLE = """import numpy as np

def compute_reward(prev, action, state, memory):
    effort = -0.05 * float(np.sum(np.square(action)))
    total = effort
    return total, {"effort": effort}
"""


def _compute_reward_dump(source: str) -> str | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "compute_reward":
            body = node.body[1:] if ast.get_docstring(node) else node.body
            return ast.dump(ast.Module(body=body, type_ignores=[]), annotate_fields=False, include_attributes=False)
    return None


def example_copy_error(source: str | None, example: str) -> str:
    """Small models hand back the prompt's example unchanged (seen with the 1.5B model on
    Crafter); it passes every check yet rewards nothing about the task, so it is sent back."""
    if not source:
        return ""
    mine = _compute_reward_dump(source)
    if mine is not None and mine == _compute_reward_dump(example):
        return ("compute_reward is the example from the instructions, unchanged: it rewards nothing the task asks for. "
                "Keep its shape and add components that reward the task")
    return ""


def static_error(source: str | None) -> str:
    """The static policy's findings as one message ('' if none), for the repair prompt."""
    if source is None:
        return "the answer contained no Python code"
    return "; ".join(str(f) for f in check_source(source))


def dedup(programs: list[RewardProgram], earlier: list[RewardProgram] = ()) -> tuple[list[RewardProgram], list[int]]:  # type: ignore[assignment]
    """Drop programs with the same normalized AST as another one or as an ``earlier`` (already
    trained) program; returns the kept ones and the dropped indexes."""
    seen: set[str] = set()
    for p in earlier:
        try:
            seen.add(p.normalized_ast())
        except SyntaxError:
            seen.add(p.source)
    kept, dropped = [], []
    for i, p in enumerate(programs):
        try:
            key = p.normalized_ast()
        except SyntaxError:
            key = p.source
        if key in seen:
            dropped.append(i)
        else:
            seen.add(key)
            kept.append(p)
    return kept, dropped


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


def parse_fitness_proposal(text: str) -> tuple[str, float, str] | None:
    """(expression, threshold, description) from a fitness proposal, or None if malformed."""
    f = re.search(r"FITNESS\s*:\s*`?(.+?)`?\s*$", text, re.M)
    t = re.search(r"THRESHOLD\s*:\s*`?([-+0-9.eE]+)", text)
    d = re.search(r"DESCRIPTION\s*:\s*(.+)", text)
    if not (f and t):
        return None
    expr = f.group(1).strip()
    if not _parses(expr):
        return None
    return expr, float(t.group(1)), d.group(1).strip() if d else ""
