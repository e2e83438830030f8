"""A scripted LLM HTTP server on localhost, so tests run litellm's real client code.

One server speaks both dialects: OpenAI's ``POST …/chat/completions`` and Anthropic's
``POST …/v1/messages``. Replies come from a script: ``enqueue("text")`` answers 200 with
that text, ``enqueue(429)`` (or any status) answers that error; once the script is empty
every request gets ``default``. Every request is recorded (path, headers, JSON body) so
tests can count calls and assert on what was sent. No mocks: the bytes cross a socket.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class ScriptedLLMServer:
    """Serve scripted answers on 127.0.0.1 in a background thread (a context manager)."""

    default: str = "default answer"
    requests: list[Request] = field(default_factory=list)
    _script: deque[str | int] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None

    def enqueue(self, *items: str | int) -> None:
        """Queue replies: a str is a 200 answer with that text, an int an error status."""
        with self._lock:
            self._script.extend(items)

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
                with server._lock:
                    server.requests.append(Request(self.path, dict(self.headers), body))
                    item = server._script.popleft() if server._script else server.default
                if isinstance(item, int):
                    self._send(item, _error_body(item))
                elif self.path.endswith("/messages"):
                    self._send(200, _anthropic_body(body, item))
                elif self.path.endswith("/chat/completions"):
                    self._send(200, _openai_body(body, item))
                else:
                    self._send(404, _error_body(404))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
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
