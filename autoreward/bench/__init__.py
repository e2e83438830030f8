"""Benchmarks (``autoreward bench``): speed, memory and quality targets live here, not in timed
tests. One module per suite; each suite is ``run(console) -> dict`` of plain data whose
top-level scalars are the headline numbers. A suite that takes options (``--model``,
``--tasks``... on ``autoreward bench``) accepts them as keyword arguments."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

from rich.console import Console

#: suite name -> "module:function", imported only when that suite runs
SUITES: dict[str, str] = {
    "quick": "autoreward.bench.quick:run",
    "crafter": "autoreward.bench.crafter:run",
    "fitness": "autoreward.bench.fitness:run",
    "metaworld": "autoreward.bench.metaworld:run",
    "search": "autoreward.bench.search:run",
    "quality": "autoreward.bench.quality:run_full",
    "quality-quick": "autoreward.bench.quality:run_quick",
    "library": "autoreward.bench.library:run",
    "behaviour": "autoreward.bench.behaviour:run",
    "judge": "autoreward.bench.judge:run",
}


def suite(name: str) -> Callable[..., dict[str, Any]]:
    """The suite's entry point (the caller checks ``name`` against :data:`SUITES`)."""
    module, _, fn = SUITES[name].partition(":")
    return getattr(importlib.import_module(module), fn)


def picked(tasks: list[Any], env_var: str) -> list[Any]:
    """The tasks whose indices ``env_var`` lists ("0,2,5"), or all of them when it is unset: a
    suite that calls the embedded model for minutes per task can then be measured in parts."""
    import os

    chosen = os.environ.get(env_var, "")
    return [tasks[int(i)] for i in chosen.split(",") if i.strip()] if chosen else list(tasks)


@contextlib.contextmanager
def llm_workspace(suite_name: str) -> Iterator[tuple[Path, Any]]:
    """A temporary folder and an LLM client logging into it, for a suite that asks a model
    (AUTOREWARD_BENCH_MODEL, default the embedded one) without making a run directory."""
    import os
    import tempfile

    from autoreward.llm import get_client

    with tempfile.TemporaryDirectory(prefix=f"autoreward-bench-{suite_name}-") as tmp:
        root = Path(tmp)
        yield root, get_client(os.environ.get("AUTOREWARD_BENCH_MODEL") or None, log_dir=root)
