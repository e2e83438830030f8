"""Benchmarks (``autoreward bench``): speed, memory and quality targets live here, not in timed
tests. One module per suite; each suite is ``run(console) -> dict`` of plain data whose
top-level scalars are the headline numbers. A suite that takes options (``--model``,
``--tasks``... on ``autoreward bench``) accepts them as keyword arguments."""

from __future__ import annotations

import importlib
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
}


def suite(name: str) -> Callable[..., dict[str, Any]]:
    """The suite's entry point (the caller checks ``name`` against :data:`SUITES`)."""
    module, _, fn = SUITES[name].partition(":")
    return getattr(importlib.import_module(module), fn)
