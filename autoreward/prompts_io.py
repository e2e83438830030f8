"""Locating and rendering the Jinja2 templates in ``prompts/`` (prompts are data, not code)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

from autoreward.errors import AutorewardError


def data_dir(name: str, pattern: str) -> Path:
    """A top-level data folder (``prompts``, ``envs``): ``autoreward/<name>`` after
    ``pip install .`` (package data), ``<repo>/<name>`` in a checkout."""
    here = Path(__file__).resolve().parent
    for cand in (here / name, here.parent / name):
        if cand.is_dir() and any(cand.glob(pattern)):
            return cand
    raise AutorewardError(f"the packaged {name}/ folder is missing", "reinstall autoreward")


def prompts_dir() -> Path:
    return data_dir("prompts", "*.j2")


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
