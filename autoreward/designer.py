"""The Reward Designer: asks the LLM for k reward programs, extracts code, repairs, dedups.

Prompts are the templates in ``prompts/``; this module only chooses which one and with what
variables. Code extraction is written by hand because answers arrive in every shape: prose
around fences, several blocks, no fences at all, a function with the wrong name.
"""

from __future__ import annotations

import ast
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from autoreward.errors import ConfigError
from autoreward.program import FUNCTION_NAME, POTENTIAL_FUNCTION, SIGNATURES, RewardProgram
from autoreward.prompts_io import render
from autoreward.directions import composition, direction_conflict

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


_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)


def _bound(tree: ast.Module) -> set[str]:
    """Names a module binds at top level: functions, classes, imports, assigned names."""
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            out.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            out.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return out


def _read_names(tree: ast.Module) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _with_helpers(chosen: str, blocks: list[str], function: str) -> str:
    """``chosen`` (the block defining ``function``) with the other fenced blocks that define a
    name it reads and does not define itself: a helper, a constant or an import given in a block
    of its own, before or after it. Blocks are kept in the answer's order (a helper's own helpers
    too). Only blocks made of definitions qualify: a usage example that calls the function at top
    level would run when the program loads, and another version of ``function`` is not a helper."""
    try:
        main = ast.parse(chosen)
    except SyntaxError:
        return chosen
    helpers: dict[int, ast.Module] = {}
    for i, b in enumerate(blocks):
        try:
            tree = ast.parse(b)
        except SyntaxError:
            continue
        body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]  # docstrings
        if b is not chosen and body and all(isinstance(n, _DEFINITIONS) for n in body) and function not in _bound(tree):
            helpers[i] = tree
    need, taken = _read_names(main) - _bound(main), set()
    while True:
        more = [i for i, tree in helpers.items() if i not in taken and _bound(tree) & need]
        if not more:
            break
        for i in more:
            taken.add(i)
            need |= _read_names(helpers[i]) - _bound(helpers[i])
    if not taken:
        return chosen
    return "\n\n".join(b for i, b in enumerate(blocks) if i in taken or b is chosen)


def extract_code(text: str, function: str = FUNCTION_NAME) -> str | None:
    """The reward program inside an LLM answer, or None when there is no code at all.

    Prefers a fenced block defining ``function`` (``compute_reward``, or ``compute_potential``
    with ``--shaping potential``), with the blocks holding the helpers it calls; else joins the
    fenced blocks (helpers in one, the function in another); else takes unfenced code from the
    first ``import`` or ``def`` line, cutting trailing prose. A function with another name and the right number of arguments (4 for a
    reward, 1 for a potential) is renamed to ``function``.
    """
    nargs = len(SIGNATURES[function][0])
    blocks = [b.strip() for lang, b in FENCE_RE.findall(text) if lang.lower() in ("", "python", "py", "python3")]
    blocks = [b for b in blocks if b]
    chosen = next((b for b in blocks if re.search(rf"def\s+{function}\s*\(", b)), None)
    if chosen is not None:
        chosen = _with_helpers(chosen, blocks, function)
    if chosen is None and blocks:
        joined = "\n\n".join(b for b in blocks if _parses(b))
        chosen = joined or blocks[-1]
    if chosen is None:
        lines = text.splitlines()
        start = next((i for i, ln in enumerate(lines) if re.match(r"\s*(import |from \w+ import |def )", ln)), None)
        if start is None:
            return None
        chosen = _largest_parsable_prefix([ln for ln in lines[start:]]) or "\n".join(lines[start:])
    if not re.search(rf"def\s+{function}\s*\(", chosen):
        funcs = [f for f in _functions(chosen) if len(f.args.args) == nargs]
        if len(funcs) >= 1:
            old = funcs[-1].name
            chosen = re.sub(rf"\b{re.escape(old)}\b", function, chosen)
    return chosen.strip() + "\n"


@dataclass
class Draft:
    """One designer sample on its way to becoming a candidate."""

    index: int
    source: str | None
    raw: str
    #: which ask it answered: "" the iteration's first, "refill<n>" after every sample was
    #: rejected, "diverse<n>" after dedupe dropped copies (a resumed run counts rounds by it)
    round: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Draft":
        """A draft saved in ``designs.json`` (keys of older versions are ignored)."""
        return cls(int(d["index"]), d.get("source"), str(d.get("raw", "")), str(d.get("round", "")))


@dataclass
class Designer:
    """Writes, repairs and refines reward programs through one LLM client (anything with the
    client's ``complete``; the loop passes itself, so every call counts against the budgets)."""

    client: Any
    env_text: str
    task: str
    fitness_doc: str
    #: the minimal reward the system prompt shows as the shape to follow: the card's
    #: ``reward_example`` or the default for its action space (:func:`default_example`)
    example: str
    temperature: float = 0.8
    #: verified rewards from the library (entries as plain dicts) that the initial prompt shows
    #: as examples with their measured fitness (Text2Reward's few-shot setting)
    library: list[dict[str, Any]] = field(default_factory=list)
    #: ``--shaping potential``: ask for ``compute_potential(state)`` (the ``*_potential.j2``
    #: system and first prompts; the refine and repair prompts say "potential")
    potential: bool = False

    @property
    def function(self) -> str:
        return POTENTIAL_FUNCTION if self.potential else FUNCTION_NAME

    @property
    def initial_template(self) -> str:
        return "designer_initial_potential.j2" if self.potential else "designer_initial.j2"

    def _messages(self, template: str, **variables: Any) -> tuple[list[dict[str, str]], dict[str, Any]]:
        variables = {"env_text": self.env_text, "task": self.task, "fitness_doc": self.fitness_doc, **variables}
        if template == "designer_initial.j2":
            variables.setdefault("library", self.library)
        if self.potential:
            variables["potential"] = True
        system = "designer_system_potential.j2" if self.potential else "designer_system.j2"
        return (
            [
                {"role": "system", "content": render(system, example=self.example)},
                {"role": "user", "content": render(template, **variables)},
            ],
            variables,
        )

    def sample(
        self, k: int, seed: int, parent: dict[str, Any] | None = None, feedback: str = "", failures: list[str] | None = None,
        written: list[str] | None = None,
    ) -> list[Draft]:
        """k samples: the initial prompt, or the refine prompt when a parent is given. Earlier
        failures go into either prompt so the Designer sees every error; ``written`` (the
        round's distinct programs, when dedupe dropped copies) asks for a different one."""
        more = {"written": written} if written else {}  # absent, the prompt is byte-identical to one without (cache hits)
        if parent is None:
            template = self.initial_template
            msgs, var = self._messages(template, failures=failures or [], **more)
        else:
            msgs, var = self._messages("designer_refine.j2", feedback=feedback, **parent, **more)
            template = "designer_refine.j2"
        outs = self.client.complete(msgs, n=k, temperature=self.temperature, seed=seed, template=template, variables=var)
        return [Draft(i, extract_code(c.text, self.function), c.text) for i, c in enumerate(outs)]

    def repair(self, draft: Draft, error: str, kind: str, seed: int) -> Draft:
        """Ask for a fix of ``draft`` given the critic's message and failure ``kind`` (the
        template adds kind-specific advice); every exchange is in the run's LLM log.

        Small models often answer a repair request by copying the code unchanged. When that
        happens we do not spend the next attempt on the same prompt: we ask for a fresh sample
        from the initial prompt, told what went wrong."""
        msgs, var = self._messages("designer_repair.j2", code=draft.source or draft.raw, error=error, kind=kind)
        out = self.client.complete(msgs, n=1, temperature=0.7, seed=seed, template="designer_repair.j2", variables=var)[0]
        new = extract_code(out.text, self.function)
        if new is None or _same_program(new, draft.source):
            msgs, var = self._messages(self.initial_template, failures=[f"a previous version was rejected: {error}"])
            out = self.client.complete(msgs, n=1, temperature=0.9, seed=seed + 1000, template=self.initial_template, variables=var)[0]
            new = extract_code(out.text, self.function)
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


def default_example(action_space: Any) -> str:
    """The reward shape shown to a designer when the card has no ``reward_example``: one for
    continuous actions (an effort penalty) and one for discrete ones, where an effort term means
    nothing (the 1.5B model copied it onto Crafter's discrete actions). Both are templates in
    ``prompts/``, checked against the static policy by the tests."""
    from gymnasium import spaces

    return render("reward_example_continuous.j2" if isinstance(action_space, spaces.Box) else "reward_example_discrete.j2")


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


def parse_fitness_proposal(text: str) -> tuple[str, float, str] | None:
    """(expression, threshold, description) from a fitness proposal, or None if malformed."""
    f = re.search(r"FITNESS\s*:\s*`?(.+?)`?\s*$", text, re.M)
    t = re.search(r"THRESHOLD\s*:\s*`?([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)", text)
    d = re.search(r"DESCRIPTION\s*:\s*(.+)", text)
    if not (f and t):
        return None
    expr = f.group(1).strip()
    if not _parses(expr):
        return None
    return expr, float(t.group(1)), d.group(1).strip() if d else ""


@dataclass
class FitnessProposal:
    """A fitness the proposer wrote and the sandbox accepted (or the last one it rejected)."""

    expr: str
    success: float
    description: str
    check: dict[str, Any]  # the fitness check's result (values on the recorded rollouts)
    attempts: list[dict[str, Any]]  # every answer, what was parsed from it, and why it was rejected


def measures_by_relevance(task: str, measures: dict[str, Any]) -> dict[str, Any]:
    """The card's measures, the ones whose name and doc share most words with the task first.

    The prompt's example names the first measure, and the 1.5B model copies the example: in
    card order that was ``forward_speed`` for "hop backwards while staying upright"."""
    from autoreward.textrank import rank

    names = list(measures)
    docs = [f"{n} {getattr(measures[n], 'doc', '')}" for n in names]
    return {names[i]: measures[names[i]] for i in rank(task, docs)}


def propose_fitness(
    complete: Callable[..., list[Any]],
    env_text: str,
    task: str,
    measures: dict[str, Any],
    check: Callable[[str, float], Any],
    seed: int,
    max_repairs: int = 3,
    feedback: str = "",
) -> FitnessProposal:
    """Ask for a fitness, check it on the recorded rollouts (``check(expr, success)`` runs the
    sandboxed fitness check) and send each failure back with its exact message, up to
    ``max_repairs`` times. Raises ConfigError when no proposal passes; never involves the
    reward designer."""
    ranked = measures_by_relevance(task, measures)
    base = {"env_text": env_text, "task": task, "measures": ranked, "compose": composition(task, ranked)}
    template, var, temperature = "fitness_proposal.j2", {**base, "feedback": feedback}, 0.2
    attempts: list[dict[str, Any]] = []
    for attempt in range(max_repairs + 1):
        msgs = [{"role": "user", "content": render(template, **var)}]
        out = complete(msgs, n=1, temperature=temperature, seed=seed + attempt, template=template, variables=var)[0]
        parsed = parse_fitness_proposal(out.text)
        if parsed is not None and attempts and (parsed[0], parsed[1]) == (attempts[-1].get("fitness"), attempts[-1].get("success")):
            # the 1.5B model answered every repair with the rejected proposal verbatim: instead,
            # a fresh proposal, warmer, told what was wrong (as the reward designer does)
            var = {**base, "feedback": f"{feedback} Do not propose {parsed[0]} with threshold {parsed[1]:g}: {attempts[-1]['error']}".strip()}
            template, temperature = "fitness_proposal.j2", 0.8
            msgs = [{"role": "user", "content": render(template, **var)}]
            attempts.append({"answer": out.text, "fitness": parsed[0], "success": parsed[1], "error": "the repair repeated the rejected proposal; asked for a fresh one"})
            out = complete(msgs, n=1, temperature=temperature, seed=seed + 100 + attempt, template=template, variables=var)[0]
            parsed = parse_fitness_proposal(out.text)
        if parsed is None:
            error = "the answer was not in the form FITNESS: <expression> / THRESHOLD: <number> / DESCRIPTION: <sentence>, or the expression is not valid Python"
            attempts.append({"answer": out.text, "error": error})
            template, var = "fitness_proposal.j2", {**base, "feedback": f"{feedback} Your previous answer was rejected: {error}.".strip()}
            continue
        expr, success, description = parsed
        conflict = direction_conflict(task, expr, measures)
        if conflict:
            attempts.append({"answer": out.text, "fitness": expr, "success": success, "error": conflict})
            template, temperature = "fitness_repair.j2", 0.2
            var = {**base, "expr": expr, "threshold": success, "error": conflict, "episodes": ""}
            continue
        result = check(expr, success)
        attempts.append({"answer": out.text, "fitness": expr, "success": success, "error": "" if result.passed else result.message})
        if result.passed:
            return FitnessProposal(expr, success, description, asdict(result), attempts)
        template, temperature = "fitness_repair.j2", 0.2
        var = {**base, "expr": expr, "threshold": success, "error": result.message, "episodes": result.details.get("episodes") or "the"}
    last = attempts[-1]
    raise ConfigError(
        f"no usable fitness after {len(attempts)} proposal(s); the last was rejected: {last['error']}",
        "pass --preset, or --fitness EXPR --success X",
    )
