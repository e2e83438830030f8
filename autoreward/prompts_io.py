"""Locating and rendering the Jinja2 templates in ``prompts/`` (prompts are data, not code)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

from autoreward.errors import AutorewardError


def prompts_dir() -> Path:
    """``prompts/`` in a checkout, ``autoreward/prompts`` after ``pip install .``."""
    here = Path(__file__).resolve().parent
    for cand in (here / "prompts", here.parent / "prompts"):
        if cand.is_dir() and any(cand.glob("*.j2")):
            return cand
    raise AutorewardError("the prompt templates are missing", "reinstall autoreward")


@lru_cache(maxsize=1)
def jinja_env() -> jinja2.Environment:
    """Strict environment: an undefined variable in a template is an error, not empty text."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(prompts_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env


def render(template: str, **variables: object) -> str:
    """Render ``prompts/<template>`` with ``variables``."""
    return jinja_env().get_template(template).render(**variables)
