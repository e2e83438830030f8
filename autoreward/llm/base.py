"""The shapes every backend shares: a Completion, the Backend contract, the registry.

Backends are registered by name (simonw/llm's plugin idea without the plugin machinery):
a model string ``"name:spec"`` picks the backend registered as ``name``; any other
string goes to the default backend, litellm, which knows every hosted API and local
server. Adding a backend is one subclass and one ``@register`` line.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, TypedDict

from pydantic import BaseModel, ConfigDict, ValidationError

from autoreward.errors import LLMError, LLMUnreachableError

DEFAULT_MODEL = "local"
"""Used when neither the caller nor AUTOREWARD_MODEL names a model: needs no key or server."""

DEFAULT_BACKEND = "litellm"


class Message(TypedDict):
    """One chat message, the OpenAI shape every backend accepts."""

    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class Completion:
    """One sampled answer. Token counts are the backend's own (approximate for scripted)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    cost: float  # US dollars; 0.0 when the provider's price is unknown or it is free
    model: str
    cached: bool = False  # True when it came from the on-disk cache, not the backend

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TransientLLMError(LLMUnreachableError):
    """A failure worth retrying (429, 5xx, timeout). The client retries; if retries run
    out it reaches the caller as the LLMError it is. ``retry_after``: the seconds the server
    asked to wait (its ``Retry-After`` header), which the client honours."""

    def __init__(self, message: str, hint: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, hint)
        self.retry_after = retry_after


class BackendOptions(BaseModel):
    """Base for a backend's options: unknown names are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Backend(ABC):
    """Produces one sample per call. Caching, logging, retries and fan-out to n samples
    live in the client, so a backend only has to talk to its model."""

    name: ClassVar[str]
    Options: ClassVar[type[BackendOptions]] = BackendOptions
    parallel: ClassVar[bool] = False  # may the client call generate() from several threads?
    cacheable: ClassVar[bool] = True  # does a cached answer stand in for a new call?

    def __init__(self, model: str, spec: str, options: BackendOptions) -> None:
        """``model`` is the full model string, ``spec`` the part after ``name:``."""
        self.model = model
        self.spec = spec
        self.options = options

    @abstractmethod
    def generate(
        self, messages: list[Message], *, temperature: float, max_tokens: int | None, seed: int
    ) -> Completion:
        """Return one completion or raise LLMError (TransientLLMError if a retry may help)."""

    def cache_identity(self) -> dict[str, Any]:
        """What besides the request decides the answer (e.g. which server); part of the key."""
        return {"model": self.model}


_REGISTRY: dict[str, type[Backend]] = {}


def register(cls: type[Backend]) -> type[Backend]:
    """Class decorator: make a backend reachable as ``"<cls.name>:…"``."""
    _REGISTRY[cls.name] = cls
    return cls


def backends() -> dict[str, type[Backend]]:
    """Registered backends by name (importing autoreward.llm registers the built-in ones)."""
    return dict(_REGISTRY)


def resolve_model(model: str | None) -> str:
    """The model to use: the argument, else AUTOREWARD_MODEL, else the embedded model."""
    return model or os.environ.get("AUTOREWARD_MODEL") or DEFAULT_MODEL


def make_backend(model: str, **options: Any) -> Backend:
    """Build the backend a model string names, validating its options."""
    name, _, spec = model.partition(":")
    if name not in _REGISTRY:  # e.g. "openai/gpt-4o" or "ollama/qwen2.5-coder:7b"
        name, spec = DEFAULT_BACKEND, model
    cls = _REGISTRY[name]
    try:
        opts = cls.Options(**options)
    except ValidationError as exc:
        bad = ", ".join(str(e["loc"][0]) for e in exc.errors() if e["loc"])
        allowed = ", ".join(cls.Options.model_fields) or "none"
        raise LLMError(
            f"invalid option(s) {bad} for the {name} backend", hint=f"allowed: {allowed}"
        ) from None
    return cls(model, spec, opts)


def cache_root() -> Path:
    """The user's cache directory for autoreward (AUTOREWARD_CACHE_DIR overrides it)."""
    override = os.environ.get("AUTOREWARD_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("autoreward", appauthor=False))
