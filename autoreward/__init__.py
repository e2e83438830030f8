"""autoreward: turn a sentence into a working, checked, trained reward function.

The Python API (``synthesize``, ``check``, ``evaluate``, ``load_run``, ``export``...) lives in
:mod:`autoreward.api` and is re-exported here on first use, so ``import autoreward`` stays cheap
(no torch or stable-baselines3 until a function is called).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

API = ("synthesize", "check", "evaluate", "load_run", "export", "diff", "resume", "refine", "Result", "Evaluation")
__all__ = [*API, "__version__"]


def __getattr__(name: str) -> Any:
    """PEP 562 lazy attribute: ``autoreward.synthesize`` imports :mod:`autoreward.api` then."""
    if name in API:
        from autoreward import api

        return getattr(api, name)
    raise AttributeError(f"module 'autoreward' has no attribute {name!r}")
