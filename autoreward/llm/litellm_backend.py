"""litellm: one backend for every hosted API and local server.

``openai/…``, ``anthropic/…``, ``ollama/…``, ``hosted_vllm/…`` and the rest of litellm's
providers. Keys come from the usual environment variables (a ``.env`` in the current
directory is loaded by ``get_client``). ``api_base`` (option or AUTOREWARD_API_BASE)
points a provider at another server, e.g. ``openai/my-model`` at a local
OpenAI-compatible server. litellm's own retries are switched off: the client retries,
so the policy is the same for every backend.
"""

from __future__ import annotations

import email.utils
import json
import os
import time
import warnings
from typing import Any

from pydantic import Field

from autoreward.errors import LLMError, LLMUnreachableError
from autoreward.llm.base import (
    Backend,
    BackendOptions,
    Completion,
    Message,
    TransientLLMError,
    register,
)

# Providers that run on the user's machine and need no key.
_KEYLESS = {"ollama", "ollama_chat", "hosted_vllm", "lm_studio", "llamafile", "vllm"}
TIMEOUT_ENV = "AUTOREWARD_LLM_TIMEOUT"
"""Seconds one request may take before it is retried (default 300)."""
_FIX_BASE = "start the server, or set AUTOREWARD_API_BASE to the URL it listens on"
_FIX_MODEL = "use provider/model, e.g. openai/gpt-4o-mini, anthropic/claude-3-5-haiku-latest, " \
             "ollama/qwen2.5-coder, or 'local' for the embedded model"


def _litellm() -> Any:
    """Import litellm on first use: it takes seconds, and commands that never call an LLM
    should not pay for it. The bundled price map avoids a network fetch at import."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True  # its "Give Feedback" banner is noise in our errors
    # litellm 1.80 dumps its own response objects with mismatched pydantic types and warns
    # on every call; the warning is about litellm's internals, not the user's request.
    warnings.filterwarnings("ignore", message="Pydantic serializer warnings", category=UserWarning)
    return litellm


class LiteLLMOptions(BackendOptions):
    api_base: str | None = None  # default: AUTOREWARD_API_BASE, else the provider's own
    api_key: str | None = None  # default: the provider's environment variable
    timeout: float = Field(default_factory=lambda: _env_timeout(), gt=0)  # seconds per request; retried


def _env_timeout() -> float:
    """AUTOREWARD_LLM_TIMEOUT, else 300 s; a value that is not a positive number is an error."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return 300.0
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise LLMError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds", hint=f"e.g. export {TIMEOUT_ENV}=600")
    return value


@register
class LiteLLMBackend(Backend):
    name = "litellm"
    Options = LiteLLMOptions
    parallel = True  # HTTP APIs take concurrent requests; the client fans n out to threads

    def __init__(self, model: str, spec: str, options: BackendOptions) -> None:
        super().__init__(model, spec, options)
        assert isinstance(options, LiteLLMOptions)
        self.litellm_model = spec  # "litellm:openai/x" and "openai/x" mean the same
        self.api_base = options.api_base or os.environ.get("AUTOREWARD_API_BASE") or None
        self.api_key = options.api_key
        self.timeout = options.timeout
        litellm = _litellm()
        try:
            _, self.provider, _, _ = litellm.get_llm_provider(self.litellm_model)
        except Exception:
            raise LLMError(f"unknown model {model!r}", hint=_FIX_MODEL) from None
        self.key_var = f"{self.provider.upper()}_API_KEY"
        if self.api_key is None and self.provider not in _KEYLESS:
            missing = litellm.validate_environment(self.litellm_model)["missing_keys"]
            missing = [k for k in missing if not k.endswith("_API_BASE")]
            if missing and self.api_base is None:
                self.key_var = missing[0]
                raise LLMError(
                    f"{model} needs {' and '.join(missing)}",
                    hint=f"export {missing[0]}=... or put {missing[0]}=... in a .env file "
                    "in the current directory, or pick another model with --model",
                )
            if missing:  # a local OpenAI-compatible server usually ignores the key
                self.api_key = "no-key"

    def cache_identity(self) -> dict[str, Any]:
        return {"model": self.litellm_model, "api_base": self.api_base}

    def generate(
        self, messages: list[Message], *, temperature: float, max_tokens: int | None, seed: int
    ) -> Completion:
        litellm = _litellm()
        kwargs: dict[str, Any] = {
            "model": self.litellm_model,
            "messages": messages,
            "temperature": temperature,
            "seed": seed,
            "timeout": self.timeout,
            "max_retries": 0,
            "num_retries": 0,
            "drop_params": True,  # e.g. Anthropic has no seed: drop it rather than fail
        }
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.api_key:
            kwargs["api_key"] = self.api_key
        try:
            resp = litellm.completion(**kwargs)
        except Exception as exc:
            raise self._translate(exc) from exc
        if not getattr(resp, "choices", None):  # e.g. a filtered answer; another try may get one
            raise TransientLLMError(f"{self._where()} answered 200 with no choices for {self.model}",
                                    hint="retry later; if it persists, the provider is filtering the prompt")
        usage = getattr(resp, "usage", None)
        try:
            cost = float(litellm.completion_cost(completion_response=resp) or 0.0)
        except Exception:  # no price known for this model (local servers, new models)
            cost = 0.0
        return Completion(
            text=resp.choices[0].message.content or "",
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            cost=cost,
            model=self.model,
        )

    def _where(self) -> str:
        return self.api_base or f"the {self.provider} API"

    def _translate(self, exc: Exception) -> LLMError:
        """Map litellm's exception zoo to: retry (429/5xx/timeout/dropped connection) or a
        one-line fix. litellm wraps transport faults as 500s; the cause chain tells the truth."""
        import httpx

        where = self._where()
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, httpx.ConnectError):
                return LLMUnreachableError(f"cannot reach {where} for {self.model}", hint=_FIX_BASE)
            if isinstance(cause, json.JSONDecodeError):
                return LLMUnreachableError(
                    f"{where} answered 200 with a body that is not JSON for {self.model}",
                    hint="it is not an OpenAI/Anthropic-compatible API (a proxy or a web page?); "
                    "check AUTOREWARD_API_BASE and the model's provider prefix",
                )
            if isinstance(cause, (httpx.RemoteProtocolError, httpx.ReadError)):
                return TransientLLMError(f"{where} closed the connection mid-answer for {self.model}",
                                         hint="retry later; the server or a proxy dropped it")
            if isinstance(cause, httpx.TimeoutException):
                break
            cause = cause.__cause__ or cause.__context__
        status = getattr(exc, "status_code", None)
        if isinstance(exc, _litellm().Timeout) or status == 408:
            return TransientLLMError(
                f"{where} did not answer within {self.timeout:g} s for {self.model}",
                hint=f"retry later, or allow longer with {TIMEOUT_ENV}=SECONDS",
            )
        if status == 429 or (isinstance(status, int) and status >= 500):
            return TransientLLMError(f"{where} answered {status} for {self.model}: {detail}",
                                     hint="retry later; the provider is overloaded or limiting",
                                     retry_after=_retry_after(exc))
        if status in (401, 403):
            return LLMError(
                f"{where} rejected the API key for {self.model} ({status})",
                hint=f"check {self.key_var} in your environment or .env file",
            )
        if status == 404:
            return LLMError(f"{where} has no model {self.litellm_model!r} (404)", hint=_FIX_MODEL)
        return LLMError(f"{self.model} request failed: {detail}")


def _retry_after(exc: Exception) -> float | None:
    """Seconds from the response's ``Retry-After`` (seconds or an HTTP date), if it sent one."""
    headers = getattr(exc, "litellm_response_headers", None) or getattr(getattr(exc, "response", None), "headers", None)
    raw = headers.get("retry-after") if headers is not None else None
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
