"""The hand-written rewards in ``examples/`` that benchmarks (and tests) share."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str) -> str:
    """A hand-written reward from ``examples/`` (benchmarks run from a checkout)."""
    path = EXAMPLES / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run `autoreward bench` from a checkout of the repository")
    return path.read_text()
