"""Shared fixtures: the HalfCheetah card, one recording per session, a temp run root."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"


def pytest_configure(config: pytest.Config) -> None:
    """Before any fixture, module- and session-scoped ones included (the function-scoped
    ``library_dir`` below comes too late for them): a module fixture's run once added its best
    reward to the user's real library, and the next real run showed it to the designer."""
    os.environ["AUTOREWARD_LIBRARY"] = tempfile.mkdtemp(prefix="autoreward-test-library-")
    os.environ["AUTOREWARD_NO_REPORT"] = "1"


@pytest.fixture(scope="session")
def cheetah():
    from autoreward.cards import load_card

    return load_card("HalfCheetah-v5")


@pytest.fixture(scope="session")
def cheetah_recording(cheetah, tmp_path_factory):
    from autoreward.critic import record_rollouts

    return record_rollouts(cheetah, tmp_path_factory.mktemp("rec") / "probe.npz")


@pytest.fixture
def backwards_source() -> str:
    return (EXAMPLES / "halfcheetah_backwards.py").read_text()


@pytest.fixture(autouse=True)
def library_dir(tmp_path_factory, monkeypatch) -> Path:
    """Every run adds its best reward to the reward library: each test gets its own library
    folder (AUTOREWARD_LIBRARY, inherited by CLI subprocesses), never the user's data dir."""
    path = tmp_path_factory.mktemp("library")
    monkeypatch.setenv("AUTOREWARD_LIBRARY", str(path))
    return path


@pytest.fixture(autouse=True)
def no_report_by_default(monkeypatch) -> None:
    """A run's end-of-run report films every trained candidate (about 25 s each): tests that are
    not about the report skip it (AUTOREWARD_NO_REPORT, inherited by CLI subprocesses); the report
    tests run without it (tests/test_report.py)."""
    monkeypatch.setenv("AUTOREWARD_NO_REPORT", "1")
