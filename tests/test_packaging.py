"""prompts/ and envs/ must ship inside the package, not only live in a checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_wheel_contains_cards_and_prompts(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(ROOT), "-w", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    wheel = next(tmp_path.glob("autoreward-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for card in (ROOT / "envs").glob("*.yaml"):
        assert f"autoreward/envs/{card.name}" in names
    for tpl in (ROOT / "prompts").glob("*.j2"):
        assert f"autoreward/prompts/{tpl.name}" in names
    assert "autoreward/py.typed" in names
    for module in (ROOT / "autoreward").rglob("*.py"):  # every subpackage is listed in pyproject.toml
        assert module.relative_to(ROOT).as_posix() in names, module
