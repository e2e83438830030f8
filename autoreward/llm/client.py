"""LLMClient: the one object the rest of autoreward talks to.

It turns ``complete(messages, n, temperature)`` into n single-sample backend calls and
wraps each with the three things every backend needs and none should re-implement:
an on-disk cache (so a resumed run never pays twice), retries with backoff on transient
failures, and a JSONL log of every exchange in the run directory (so every prompt and
answer can be read afterwards, as in simonw/llm).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from autoreward.errors import LLMError
from autoreward.llm.base import Backend, Completion, Message, TransientLLMError

LOG_NAME = "llm_exchanges.jsonl"
"""File name of the exchange log inside the log directory (the run directory)."""

CACHE_VERSION = 1  # bump to orphan old cache entries when the key or value shape changes


class LLMClient:
    """Samples completions from one backend with caching, retries and an exchange log."""

    def __init__(
        self,
        backend: Backend,
        *,
        log_dir: Path | None = None,
        cache_dir: Path | None = None,
        max_retries: int = 5,
        retry_wait: float = 1.0,
        max_parallel: int = 8,
    ) -> None:
        """``cache_dir=None`` disables the cache; ``log_dir=None`` disables the log.

        ``retry_wait`` is the first backoff in seconds (it doubles, with jitter, up to 60).
        """
        self.backend = backend
        self.log_dir = log_dir
        self.max_retries = max_retries
        self.retry_wait = retry_wait
        self.max_parallel = max_parallel
        self._cache = None
        if cache_dir is not None and backend.cacheable:
            import diskcache

            self._cache = diskcache.Cache(str(cache_dir))
        self._log_lock = threading.Lock()

    @property
    def model(self) -> str:
        return self.backend.model

    def complete(
        self,
        messages: Sequence[Message] | str,
        n: int = 1,
        temperature: float = 0.7,
        *,
        max_tokens: int | None = None,
        seed: int = 0,
        template: str | None = None,
        variables: dict[str, Any] | None = None,
        use_cache: bool = True,
    ) -> list[Completion]:
        """Return exactly n completions (sample i uses seed ``seed + i``).

        A string is taken as one user message. ``template`` and ``variables`` are only
        recorded in the log, so a reader can see which prompt produced which answer.
        Cached samples are returned without calling the backend; to draw fresh samples
        for the same prompt, pass another ``seed``.
        """
        msgs = _normalize(messages)
        if n < 1:
            raise LLMError(f"n must be at least 1, got {n}")
        started = time.monotonic()
        keys = [self._key(msgs, temperature, max_tokens, seed + i) for i in range(n)]
        results: list[Completion | None] = [
            self._cache_get(k) if use_cache else None for k in keys
        ]
        todo = [i for i, c in enumerate(results) if c is None]

        def sample(i: int) -> Completion:
            c = self._generate(msgs, temperature, max_tokens, seed + i)
            if self._cache is not None:
                self._cache.set(keys[i], c.to_dict())
            return c

        try:
            if self.backend.parallel and len(todo) > 1:
                with ThreadPoolExecutor(min(len(todo), self.max_parallel)) as pool:
                    for i, c in zip(todo, pool.map(sample, todo)):
                        results[i] = c
            else:
                for i in todo:
                    results[i] = sample(i)
        except LLMError as exc:
            self._log(msgs, n, temperature, max_tokens, seed, template, variables,
                      [c for c in results if c is not None], started, error=exc.one_line())
            raise
        done = [c for c in results if c is not None]
        if len(done) != n:  # the contract callers rely on: count what came back
            raise LLMError(f"{self.model} returned {len(done)} of {n} samples")
        self._log(msgs, n, temperature, max_tokens, seed, template, variables, done, started)
        return done

    def _generate(
        self, msgs: list[Message], temperature: float, max_tokens: int | None, seed: int
    ) -> Completion:
        retrying = Retrying(
            retry=retry_if_exception_type(TransientLLMError),
            stop=stop_after_attempt(self.max_retries + 1),
            # doubling from retry_wait up to 60 s, plus jitter so parallel samples spread out
            wait=wait_exponential(multiplier=self.retry_wait, max=60) + wait_random(0, self.retry_wait),
            reraise=True,
        )
        return retrying(
            self.backend.generate, msgs, temperature=temperature, max_tokens=max_tokens, seed=seed
        )

    def _key(
        self, msgs: list[Message], temperature: float, max_tokens: int | None, seed: int
    ) -> str:
        """Hash of everything that decides sample ``seed``. n is not part of it on purpose:
        sample i is the same whether 3 or 5 were asked, so a larger n extends a smaller one."""
        payload = {
            "v": CACHE_VERSION,
            "backend": self.backend.cache_identity(),
            "messages": msgs,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "seed": seed,
        }
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()

    def _cache_get(self, key: str) -> Completion | None:
        if self._cache is None:
            return None
        hit = self._cache.get(key)
        return None if hit is None else Completion(**{**hit, "cached": True})

    def _log(
        self,
        msgs: list[Message],
        n: int,
        temperature: float,
        max_tokens: int | None,
        seed: int,
        template: str | None,
        variables: dict[str, Any] | None,
        completions: list[Completion],
        started: float,
        error: str | None = None,
    ) -> None:
        if self.log_dir is None:
            return
        record = {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "model": self.model,
            "template": template,
            "variables": variables,
            "messages": msgs,
            "n": n,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "seed": seed,
            "responses": [c.to_dict() for c in completions],
            "prompt_tokens": sum(c.prompt_tokens for c in completions if not c.cached),
            "completion_tokens": sum(c.completion_tokens for c in completions if not c.cached),
            "cost": sum(c.cost for c in completions if not c.cached),
            "duration_s": round(time.monotonic() - started, 3),
            "error": error,
        }
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self._log_lock, open(self.log_dir / LOG_NAME, "a", encoding="utf-8") as f:
            f.write(line)  # one write per record: a killed run leaves whole lines


def read_log(log_dir: Path) -> list[dict[str, Any]]:
    """Every exchange logged in ``log_dir``, oldest first (a torn last line is skipped)."""
    path = log_dir / LOG_NAME
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _normalize(messages: Sequence[Message] | str) -> list[Message]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    out: list[Message] = []
    for m in messages:
        if m.get("role") not in ("system", "user", "assistant") or not isinstance(
            m.get("content"), str
        ):
            raise LLMError(
                f"bad chat message {m!r}",
                hint="each message is {'role': 'system'|'user'|'assistant', 'content': str}",
            )
        out.append({"role": m["role"], "content": m["content"]})
    if not out:
        raise LLMError("no messages to send")
    return out
