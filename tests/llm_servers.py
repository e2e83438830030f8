"""A scripted LLM HTTP server on localhost, so tests run litellm's real client code.

One server speaks both dialects: OpenAI's ``POST …/chat/completions`` and Anthropic's
``POST …/v1/messages``. Replies come from a script: ``enqueue("text")`` answers 200 with
that text, ``enqueue(429)`` (or any status) answers that error; once the script is empty
every request gets ``default``. ``rule(match, reply)`` answers every request whose messages
contain ``match`` (rules come before the script), so a whole ``autoreward run`` can be
driven over HTTP. A :class:`Reply` scripts the faults a real server shows: a ``Retry-After``
header, a delay or a hang, a body that is not JSON or is cut off mid-way, no ``choices``.
Every request is recorded (path, headers, JSON body, whether it was answered) so tests can
count calls and assert on what was sent. No mocks: the bytes cross a socket.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Union


@dataclass
class Reply:
    """One scripted reply with the faults real servers show.

    ``status`` with ``text`` (200) or an error body (otherwise); ``headers`` added to the
    response (e.g. ``{"Retry-After": "2"}``); ``delay`` seconds before answering (``hang()``:
    an hour, until the client gives up or the server stops); ``raw`` sent as the body instead of
    JSON; ``truncate`` sends only the first half of the body and closes the connection;
    ``empty_choices`` answers 200 with ``"choices": []``."""

    status: int = 200
    text: str = "default answer"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw: bytes | None = None
    truncate: bool = False
    empty_choices: bool = False

    @classmethod
    def hang(cls) -> "Reply":
        return cls(delay=3600.0)

    @classmethod
    def retry_after(cls, seconds: float, status: int = 429) -> "Reply":
        return cls(status=status, headers={"Retry-After": f"{seconds:g}"})


Item = Union[str, int, Reply]


@dataclass
class Request:
    """One request as the server saw it (``answered``: a 200 answer was sent in full)."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    time: float = 0.0  # time.monotonic() on arrival
    answered: bool = False

    @property
    def prompt(self) -> str:
        """Every message's content joined, as rules match it."""
        texts = [m.get("content") for m in self.body.get("messages", [])] + [self.body.get("system")]
        return "\n".join(t if isinstance(t, str) else json.dumps(t) for t in texts if t)


@dataclass
class ScriptedLLMServer:
    """Serve scripted answers on 127.0.0.1 in a background thread (a context manager)."""

    default: str = "default answer"
    requests: list[Request] = field(default_factory=list)
    _script: deque[Item] = field(default_factory=deque)
    _rules: list[tuple[str, Item]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    def enqueue(self, *items: Item) -> None:
        """Queue replies: a str is a 200 answer with that text, an int an error status, a
        :class:`Reply` anything else."""
        with self._lock:
            self._script.extend(items)

    def rule(self, match: str, reply: Item) -> None:
        """Answer every request whose prompt contains ``match`` with ``reply`` (first rule wins;
        rules come before the queue). Replaces an earlier rule with the same ``match``."""
        with self._lock:
            self._rules = [(m, r) for m, r in self._rules if m != match] + [(match, reply)]

    def matching(self, match: str) -> list[Request]:
        """The requests whose prompt contains ``match``."""
        with self._lock:
            return [r for r in self.requests if match in r.prompt]

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def openai_base(self) -> str:
        """The api_base litellm's ``openai/…`` provider expects (it appends /chat/completions)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base(self) -> str:
        """The api_base litellm's ``anthropic/…`` provider expects (it appends /v1/messages)."""
        return f"http://127.0.0.1:{self.port}"

    def count(self, suffix: str = "") -> int:
        """How many requests arrived (optionally only those whose path ends with suffix)."""
        with self._lock:
            return sum(1 for r in self.requests if r.path.endswith(suffix))

    def start(self) -> ScriptedLLMServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                req = Request(self.path, dict(self.headers), body, time.monotonic())
                with server._lock:
                    server.requests.append(req)
                    item = next((r for m, r in server._rules if m in req.prompt), None)
                    if item is None:
                        item = server._script.popleft() if server._script else server.default
                reply = item if isinstance(item, Reply) else Reply(status=item) if isinstance(item, int) else Reply(text=item)
                if reply.delay and server._stopping.wait(reply.delay):
                    return  # the server is stopping: drop the connection unanswered
                if reply.status != 200:
                    payload = _error_body(reply.status)
                elif self.path.endswith("/messages"):
                    payload = _anthropic_body(body, reply.text)
                elif self.path.endswith("/chat/completions"):
                    payload = _openai_body(body, reply.text)
                    if reply.empty_choices:
                        payload["choices"] = []
                else:
                    reply, payload = Reply(status=404), _error_body(404)
                data = reply.raw if reply.raw is not None else json.dumps(payload).encode()
                try:
                    self._send(reply.status, data, reply.headers, reply.truncate)
                except OSError:  # the client gave up (timeout, Ctrl-C): nothing was answered
                    return
                req.answered = reply.status == 200 and not reply.truncate

            def _send(self, status: int, data: bytes, headers: dict[str, str], truncate: bool) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if truncate else data)
                if truncate:
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases delayed and hung replies
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ScriptedLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _words(body: dict[str, Any]) -> int:
    """A stand-in token count: words across all message contents."""
    texts = [m.get("content") for m in body.get("messages", [])] + [body.get("system")]
    return sum(len(str(t).split()) for t in texts if t)


def _openai_body(request: dict[str, Any], text: str) -> dict[str, Any]:
    prompt, completion = _words(request), len(text.split())
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": request.get("model", "test"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def _anthropic_body(request: dict[str, Any], text: str) -> dict[str, Any]:
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": request.get("model", "test"),
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": _words(request), "output_tokens": len(text.split())},
    }


def _error_body(status: int) -> dict[str, Any]:
    kinds = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error"}
    kind = kinds.get(status, "api_error")
    return {
        "type": "error",
        "error": {"type": kind, "message": f"scripted {status}", "code": str(status)},
    }


# ---- fixtures for the LLM client tests (imported by name into tests/test_llm.py and test_faults.py)

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """Own cache dir, a cwd without .env, and no real keys or LLM settings (set-then-del so
    pytest restores them)."""
    monkeypatch.setenv("AUTOREWARD_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AUTOREWARD_MODEL", "AUTOREWARD_API_BASE", "AUTOREWARD_LLM_TIMEOUT"):
        monkeypatch.setenv(var, "x")
        monkeypatch.delenv(var)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    """A scripted server for one test."""
    with ScriptedLLMServer() as s:
        yield s
