"""LLMClient: the one object the rest of autoreward talks to.

It turns ``complete(messages, n, temperature)`` into n single-sample backend calls and
wraps each with the three things every backend needs and none should re-implement:
an on-disk cache (so a resumed run never pays twice), retries with backoff on transient
failures (honouring a server's ``Retry-After``), and a JSONL log of every exchange in the run
directory (so every prompt and answer can be read afterwards, as in simonw/llm).

The log has one line per request, written the moment it ends: a process killed while other
samples of the same call are still out leaves the answers it paid for on disk, so budgets
read from the log (:class:`SpendMeter`) count what was really spent, across kills and
resumes. ``read_log`` joins the lines of one call back into one record.

Samples run in daemon threads that the caller only waits on: Ctrl-C stops waiting at once,
tells the threads to send nothing more (no new attempt, no retry), and leaves a request
already on the wire to die with the process. ``ThreadPoolExecutor`` would not do: its
threads are joined at interpreter exit, so a hung request would hold the process.
"""

from __future__ import annotations

import hashlib
import json
import queue
import secrets
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tenacity import (
    RetryCallState,
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

MAX_RETRY_AFTER = 120.0
"""The longest ``Retry-After`` honoured, in seconds: a server asking for more is waited on this
long, so a run never sleeps for an hour on one header."""


class _Cancelled(Exception):
    """A sample told to stop (Ctrl-C, or another sample of its call failed) before sending."""


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
        keys = [self._key(msgs, temperature, max_tokens, seed + i) for i in range(n)]
        results: list[Completion | None] = [None] * n
        call = _Call(secrets.token_hex(6), msgs, n, temperature, max_tokens, seed, template, variables)
        for i, k in enumerate(keys):
            hit = self._cache_get(k) if use_cache else None
            if hit is not None:
                results[i] = hit
                self._log(call, i, hit, time.monotonic())
        todo = [i for i, c in enumerate(results) if c is None]
        cancel = threading.Event()

        def sample(i: int) -> Completion:
            started = time.monotonic()
            try:
                c = self._generate(msgs, temperature, max_tokens, seed + i, cancel)
            except _Cancelled:
                raise
            except LLMError as exc:
                self._log(call, i, None, started, error=exc.one_line())
                raise
            if self._cache is not None:
                self._cache.set(keys[i], c.to_dict())
            self._log(call, i, c, started)
            return c

        if self.backend.parallel and len(todo) > 1:
            for i, c in _in_threads(sample, todo, self.max_parallel, cancel):
                results[i] = c
        else:
            for i in todo:
                results[i] = sample(i)
        done = [c for c in results if c is not None]
        if len(done) != n:  # the contract callers rely on: count what came back
            raise LLMError(f"{self.model} returned {len(done)} of {n} samples")
        return done

    def _generate(
        self, msgs: list[Message], temperature: float, max_tokens: int | None, seed: int,
        cancel: threading.Event,
    ) -> Completion:
        backoff = wait_exponential(multiplier=self.retry_wait, max=60) + wait_random(0, self.retry_wait)

        def wait(state: RetryCallState) -> float:
            """Exponential backoff with jitter (parallel samples spread out), or longer when
            the server said how long in ``Retry-After`` (capped at MAX_RETRY_AFTER)."""
            exc = state.outcome.exception() if state.outcome else None
            asked = getattr(exc, "retry_after", None)
            return max(backoff(state), min(float(asked), MAX_RETRY_AFTER)) if asked else backoff(state)

        def attempt() -> Completion:
            if cancel.is_set():
                raise _Cancelled()
            return self.backend.generate(msgs, temperature=temperature, max_tokens=max_tokens, seed=seed)

        retrying = Retrying(
            retry=retry_if_exception_type(TransientLLMError),
            stop=stop_after_attempt(self.max_retries + 1),
            wait=wait,
            sleep=cancel.wait,  # a cancelled sample stops sleeping at once, then sends nothing
            reraise=True,
        )
        return retrying(attempt)

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
        self, call: "_Call", index: int, completion: Completion | None, started: float,
        error: str | None = None,
    ) -> None:
        """Append one line for sample ``index`` of ``call``. The call's first line carries the
        messages and variables; the others name the call, so the log stays small at n = 16."""
        if self.log_dir is None:
            return
        fresh = completion is not None and not completion.cached
        record: dict[str, Any] = {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "call": call.id,
            "sample": index,
            "model": self.model,
            "template": call.template,
            "n": call.n,
            "temperature": call.temperature,
            "max_tokens": call.max_tokens,
            "seed": call.seed,
            "responses": [completion.to_dict()] if completion is not None else [],
            "prompt_tokens": completion.prompt_tokens if fresh and completion else 0,
            "completion_tokens": completion.completion_tokens if fresh and completion else 0,
            "cost": completion.cost if fresh and completion else 0.0,
            "duration_s": round(time.monotonic() - started, 3),
            "error": error,
        }
        with self._log_lock:
            if not call.head_logged:
                record.update(variables=call.variables, messages=call.messages)
                call.head_logged = True
            line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with open(self.log_dir / LOG_NAME, "a", encoding="utf-8") as f:
                f.write(line)  # one write per record: a killed run leaves whole lines


class _Call:
    """What one ``complete`` call asked, for its log lines."""

    def __init__(self, id: str, messages: list[Message], n: int, temperature: float,
                 max_tokens: int | None, seed: int, template: str | None,
                 variables: dict[str, Any] | None) -> None:
        self.id, self.messages, self.n, self.temperature = id, messages, n, temperature
        self.max_tokens, self.seed, self.template, self.variables = max_tokens, seed, template, variables
        self.head_logged = False


def _in_threads(
    fn: Any, items: list[int], width: int, cancel: threading.Event
) -> list[tuple[int, Completion]]:
    """``fn(i)`` for every item in at most ``width`` daemon threads; the first failure (or
    Ctrl-C in the waiting thread) sets ``cancel`` and is raised at once, without waiting for
    requests still out."""
    work: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in items:
        work.put(i)
    done: queue.SimpleQueue[tuple[int, Completion | None, BaseException | None]] = queue.SimpleQueue()

    def worker() -> None:
        while not cancel.is_set():
            try:
                i = work.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((i, fn(i), None))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                done.put((i, None, exc))

    for _ in range(min(width, len(items))):
        threading.Thread(target=worker, daemon=True, name="autoreward-llm").start()
    out: list[tuple[int, Completion]] = []
    try:
        while len(out) < len(items):
            i, c, exc = done.get()
            if exc is not None and not isinstance(exc, _Cancelled):
                raise exc
            if c is not None:
                out.append((i, c))
    finally:
        cancel.set()  # nothing more goes out once the caller stops waiting, for any reason
    return out


def read_exchanges(log_dir: Path) -> list[dict[str, Any]]:
    """Every line of the log in ``log_dir``, one per request or cache hit, oldest first (a torn
    last line is skipped)."""
    path = Path(log_dir) / LOG_NAME
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def read_log(log_dir: Path) -> list[dict[str, Any]]:
    """Every call logged in ``log_dir``, oldest first: the lines of one ``complete`` call joined
    into one record (responses in sample order, tokens and cost summed, the first error)."""
    calls: dict[str, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for r in read_exchanges(log_dir):
        key = r.get("call")
        if key is None:  # a line from before per-request logging: already a whole call
            out.append(r)
            continue
        c = calls.get(key)
        if c is None:
            c = calls[key] = {**r, "responses": [], "prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0,
                              "duration_s": 0.0, "error": None, "_order": []}
            out.append(c)
        for k in ("messages", "variables"):
            if k in r:
                c[k] = r[k]
        c["_order"] += [(r.get("sample", 0), x) for x in r.get("responses", [])]
        c["prompt_tokens"] += int(r.get("prompt_tokens") or 0)
        c["completion_tokens"] += int(r.get("completion_tokens") or 0)
        c["cost"] += float(r.get("cost") or 0.0)
        c["duration_s"] = max(c["duration_s"], float(r.get("duration_s") or 0.0))
        c["error"] = c["error"] or r.get("error")
    for c in calls.values():
        c["responses"] = [x for _, x in sorted(c.pop("_order"), key=lambda t: t[0])]
        c.pop("sample", None)
    return out


class SpendMeter:
    """Tokens and dollars spent so far, read from the log in ``log_dir`` (every process that
    ever wrote to it, killed ones included; cache hits cost nothing). Reads only the bytes
    appended since the last call."""

    def __init__(self, log_dir: Path) -> None:
        self.path = Path(log_dir) / LOG_NAME
        self.offset = 0
        self.tokens = 0
        self.cost = 0.0

    def read(self) -> tuple[int, float]:
        """(tokens, cost) of every whole line written so far."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return self.tokens, self.cost
        end = chunk.rfind(b"\n") + 1  # a line being written now is read next time
        for line in chunk[:end].splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.tokens += int(r.get("prompt_tokens") or 0) + int(r.get("completion_tokens") or 0)
            self.cost += float(r.get("cost") or 0.0)
        self.offset += end
        return self.tokens, self.cost


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
