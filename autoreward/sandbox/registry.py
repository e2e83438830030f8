"""The job registry: the child entry point finds jobs here, so the sandbox never imports upward.

A job is a function ``(payload, limits) -> result dict`` that runs inside the sandboxed child.
The module that defines it registers it under a name with :func:`job`; the parent names the
job and its module in ``job.json``, and the worker imports that module (which registers the
job) before it dispatches. The sandbox therefore knows no job by import: the critic and the
trainer depend on the sandbox, never the other way round.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

JobFn = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]

_JOBS: dict[str, tuple[str, JobFn]] = {}


def job(name: str) -> Callable[[JobFn], JobFn]:
    """Decorator: register ``fn`` as the child-side job ``name``."""

    def register(fn: JobFn) -> JobFn:
        _JOBS[name] = (fn.__module__, fn)
        return fn

    return register


def registered_module(name: str) -> str:
    """The module that registered job ``name`` ('' if none did in this process: the worker
    then looks in its own registry); the parent writes it into ``job.json``."""
    return _JOBS[name][0] if name in _JOBS else ""


def lookup(name: str, module: str) -> JobFn:
    """The job function ``name``, importing ``module`` first so it can register itself."""
    if name not in _JOBS and module:
        importlib.import_module(module)
    if name not in _JOBS:
        raise KeyError(f"unknown job kind {name!r}")
    return _JOBS[name][1]
