"""MkDocs hook: the CLI reference, generated from the typer app at build time.

A page line ``<!-- autoreward-cli -->`` becomes the Markdown that typer's own generator
(``typer autoreward.cli utils docs``) writes for ``autoreward.cli.app``: every command, argument,
option, default and help text, as the code says them, so the page cannot go stale. It runs in the
build's process (no ``typer`` on PATH needed). mkdocs-click and mkdocs-typer2's native engine are
not used: typer 0.29 vendors its own click, whose parameters they do not recognise.
"""

from __future__ import annotations

from typing import Any

import typer
import typer.cli

MARKER = "<!-- autoreward-cli -->"


def cli_markdown() -> str:
    """The typer-generated Markdown of the whole ``autoreward`` command tree."""
    from autoreward.cli import app

    command = typer.main.get_command(app)
    ctx = typer.Context(command, info_name="autoreward")
    ctx.ensure_object(dict)
    ctx.obj[typer.cli.MARKUP_MODE_KEY] = app.rich_markup_mode
    return typer.cli.get_docs_for_click(obj=command, ctx=ctx, name="autoreward").strip() + "\n"


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_markdown())
