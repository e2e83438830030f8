"""``scripted:FILE``: replay answers from a file, for demos and tests.

The file (JSON or YAML) is a list. Each entry is either a response text, or a rule
``{match: substring, response: text}``. For each sample, the first rule whose ``match``
occurs in the prompt (all message contents joined) answers; otherwise the entries
without ``match`` answer in turn, starting over when they run out. Every prompt asked
is kept in ``prompts`` so tests can assert on what the caller sent.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import yaml

from autoreward.errors import LLMError
from autoreward.llm.base import Backend, BackendOptions, Completion, Message, register


@register
class ScriptedBackend(Backend):
    name = "scripted"
    cacheable = False  # replay is free, and a cache would hide edits to the script file

    def __init__(self, model: str, spec: str, options: BackendOptions) -> None:
        super().__init__(model, spec, options)
        self.path = Path(spec).expanduser()
        self.rules: list[tuple[str, str]] = []
        self.queue: list[str] = []
        for entry in _load(self.path):
            if isinstance(entry, str):
                self.queue.append(entry)
            elif isinstance(entry, dict) and isinstance(entry.get("response"), str):
                if entry.get("match"):
                    self.rules.append((str(entry["match"]), entry["response"]))
                else:
                    self.queue.append(entry["response"])
            else:
                raise LLMError(
                    f"bad entry in {self.path}: {entry!r}",
                    hint="each entry is a response text or {match: substring, response: text}",
                )
        self.prompts: list[list[Message]] = []
        self._next = 0
        self._lock = threading.Lock()

    def generate(
        self, messages: list[Message], *, temperature: float, max_tokens: int | None, seed: int
    ) -> Completion:
        prompt = "\n".join(m["content"] for m in messages)
        with self._lock:
            self.prompts.append([dict(m) for m in messages])  # type: ignore[misc]
            text = next((r for m, r in self.rules if m in prompt), None)
            if text is None:
                if not self.queue:
                    raise LLMError(
                        f"no rule in {self.path} matches the prompt",
                        hint="add a rule whose match occurs in it, or an entry without match",
                    )
                text = self.queue[self._next % len(self.queue)]
                self._next += 1
        return Completion(
            text=text,
            prompt_tokens=len(prompt.split()),  # words, not tokens: there is no tokenizer
            completion_tokens=len(text.split()),
            cost=0.0,
            model=self.model,
        )


def _load(path: Path) -> list[Any]:
    if not path.is_file():
        raise LLMError(f"scripted responses file {path} not found",
                       hint="use scripted:PATH with a JSON or YAML list of responses")
    raw = path.read_text(encoding="utf-8")
    try:
        data = json.loads(raw) if path.suffix == ".json" else yaml.safe_load(raw)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise LLMError(f"cannot parse {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, list) or not data:
        raise LLMError(f"{path} must hold a non-empty list of responses or rules")
    return data
