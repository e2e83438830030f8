"""The LLM layer against real HTTP: litellm talks to scripted servers on localhost."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from autoreward.errors import LLMError
from autoreward.llm import LOG_NAME, Completion, get_client, read_log
try:  # `python -m pytest` puts the repo root on sys.path; plain `pytest` puts tests/
    from tests.llm_servers import ScriptedLLMServer, isolated_env, server  # noqa: F401 (fixtures)
except ImportError:
    from llm_servers import ScriptedLLMServer, isolated_env, server  # type: ignore[no-redef]  # noqa: F401

MESSAGES = [
    {"role": "system", "content": "You write reward functions."},
    {"role": "user", "content": "Make the cheetah run backwards."},
]




def openai_client(server: ScriptedLLMServer, log_dir: Path | None = None, **kw):  # type: ignore[no-untyped-def]
    return get_client("openai/test-model", log_dir, api_base=server.openai_base,
                      api_key="sk-test", retry_wait=0.01, **kw)


def test_n_samples_are_separate_requests_and_counted(server: ScriptedLLMServer) -> None:
    server.default = "def compute_reward(): ..."
    out = openai_client(server).complete(MESSAGES, n=3, temperature=0.9)
    assert len(out) == 3 and all(isinstance(c, Completion) for c in out)
    assert server.count("/chat/completions") == 3
    assert sorted(r.body["seed"] for r in server.requests) == [0, 1, 2]
    assert all(r.body["temperature"] == 0.9 for r in server.requests)
    c = out[0]
    assert c.text == "def compute_reward(): ..." and c.model == "openai/test-model"
    assert c.prompt_tokens > 0 and c.completion_tokens == 3 and c.cost == 0.0 and not c.cached


def test_anthropic_dialect(server: ScriptedLLMServer) -> None:
    server.enqueue("from claude")
    client = get_client("anthropic/claude-test", None, api_base=server.anthropic_base,
                        api_key="ak-test", retry_wait=0.01)
    [c] = client.complete(MESSAGES, n=1, temperature=0.2, max_tokens=100)
    assert c.text == "from claude" and c.completion_tokens == 2
    [req] = server.requests
    assert req.path == "/v1/messages"
    assert req.headers["x-api-key"] == "ak-test" and req.body["max_tokens"] == 100


def test_cache_hit_does_not_call_server(server: ScriptedLLMServer) -> None:
    server.enqueue("first", "second")
    client = openai_client(server)
    a = client.complete(MESSAGES, n=2, temperature=0.7)
    again = openai_client(server).complete(MESSAGES, n=2, temperature=0.7)  # fresh client
    assert server.count() == 2
    assert [c.text for c in again] == [c.text for c in a] and all(c.cached for c in again)
    more = client.complete(MESSAGES, n=3, temperature=0.7)  # extends: one new request only
    assert server.count() == 3 and [c.cached for c in more] == [True, True, False]
    client.complete(MESSAGES, n=1, temperature=0.1)  # another input, another key
    assert server.count() == 4


def test_cache_can_be_disabled(server: ScriptedLLMServer) -> None:
    openai_client(server, use_cache=False).complete(MESSAGES)
    openai_client(server, use_cache=False).complete(MESSAGES)
    assert server.count() == 2


def test_retry_on_429_then_success(server: ScriptedLLMServer) -> None:
    server.enqueue(429, 503, "finally")
    [c] = openai_client(server).complete(MESSAGES)
    assert c.text == "finally" and server.count() == 3


def test_retries_run_out_with_one_line_error(server: ScriptedLLMServer) -> None:
    server.enqueue(429, 429, 429)
    with pytest.raises(LLMError) as err:
        openai_client(server, max_retries=2).complete(MESSAGES)
    assert server.count() == 3 and "429" in err.value.one_line()
    assert "\n" not in err.value.one_line()


def test_no_retry_on_401_and_error_names_key(server: ScriptedLLMServer) -> None:
    server.enqueue(401, "never reached")
    with pytest.raises(LLMError) as err:
        openai_client(server).complete(MESSAGES)
    assert server.count() == 1
    line = err.value.one_line()
    assert "401" in line and "OPENAI_API_KEY" in line and "\n" not in line


def test_no_retry_on_404_unknown_model(server: ScriptedLLMServer) -> None:
    server.enqueue(404)
    with pytest.raises(LLMError, match="no model"):
        openai_client(server).complete(MESSAGES)
    assert server.count() == 1


def test_unreachable_server_is_one_line_error() -> None:
    client = get_client("openai/test-model", None, api_base="http://127.0.0.1:9/v1",
                        api_key="k", retry_wait=0.01)
    with pytest.raises(LLMError) as err:
        client.complete(MESSAGES)
    line = err.value.one_line()
    assert "cannot reach http://127.0.0.1:9/v1" in line and "AUTOREWARD_API_BASE" in line


def test_missing_key_names_variable_and_dotenv() -> None:
    with pytest.raises(LLMError) as err:
        get_client("anthropic/claude-3-5-haiku-latest")
    line = err.value.one_line()
    assert "ANTHROPIC_API_KEY" in line and ".env" in line and "\n" not in line


def test_unknown_model_and_bad_option() -> None:
    with pytest.raises(LLMError, match="unknown model"):
        get_client("nosuchprovider/some-model")
    with pytest.raises(LLMError, match="invalid option"):
        get_client("openai/x", api_key="k", temprature=0.3)


def test_key_from_dotenv_without_overriding_env(
    server: ScriptedLLMServer, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (isolated_env / ".env").write_text("OPENAI_API_KEY=sk-from-dotenv\nAUTOREWARD_API_BASE=nope\n")
    monkeypatch.setenv("AUTOREWARD_API_BASE", server.openai_base)  # env wins over .env
    monkeypatch.setenv("OPENAI_API_KEY", "x")
    monkeypatch.delenv("OPENAI_API_KEY")  # restored (unset) after the test
    get_client("openai/test-model", retry_wait=0.01).complete(MESSAGES)
    assert os.environ["OPENAI_API_KEY"] == "sk-from-dotenv"
    assert server.requests[0].headers["authorization"] == "Bearer sk-from-dotenv"


def test_api_base_env_without_key_reaches_local_server(
    server: ScriptedLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local OpenAI-compatible server usually wants no key: do not demand one."""
    monkeypatch.setenv("AUTOREWARD_API_BASE", server.openai_base)
    [c] = get_client("openai/local-model", retry_wait=0.01).complete(MESSAGES)
    assert c.text == server.default


def test_exchange_log(server: ScriptedLLMServer, tmp_path: Path) -> None:
    run = tmp_path / "run"
    server.enqueue("a", "b")
    client = openai_client(server, log_dir=run)
    client.complete(MESSAGES, n=2, temperature=0.5, template="designer/initial.j2",
                    variables={"task": "run backwards"})
    client.complete(MESSAGES, n=2, temperature=0.5)  # cache hits are logged too
    server.enqueue(401)
    with pytest.raises(LLMError):
        client.complete("other prompt")
    first, second, failed = read_log(run)
    assert first["template"] == "designer/initial.j2"
    assert first["variables"] == {"task": "run backwards"}
    assert first["messages"] == MESSAGES and first["n"] == 2
    assert sorted(r["text"] for r in first["responses"]) == ["a", "b"]
    assert first["completion_tokens"] == 2 and first["duration_s"] >= 0
    assert all(r["cached"] for r in second["responses"]) and second["completion_tokens"] == 0
    assert failed["error"] and "401" in failed["error"] and failed["responses"] == []
    lines = (run / LOG_NAME).read_text().splitlines()
    assert all(json.loads(line) for line in lines)


def test_default_model_comes_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "s.json"
    script.write_text('["hello"]')
    monkeypatch.setenv("AUTOREWARD_MODEL", f"scripted:{script}")
    assert get_client().model == f"scripted:{script}"
