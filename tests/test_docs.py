"""The README stays short and points into the documentation site, and the site builds in strict
mode (a broken link, a missing anchor or a stale API reference fails the build)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _headings_slugs(page: Path) -> set[str]:
    """The anchors MkDocs gives a page's headings (the toc extension's slugify), fenced code left out."""
    from markdown.extensions.toc import slugify

    slugs: set[str] = set()
    fence = False
    for line in page.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        elif not fence and (m := re.match(r"#{1,6} (.+)", line)):
            text = re.sub(r"[`*]", "", re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1))).strip()
            slugs.add(slugify(text, "-"))
    return slugs


def test_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n <= 250, f"README.md has {n} lines; move detail into docs/ (250 at most)"


def test_readme_keeps_the_two_setup_commands_and_the_example_markers():
    text = README.read_text()
    assert "bash scripts/example.sh" in text and "bash scripts/test.sh" in text
    start, end = text.index("<!-- example:start -->"), text.index("<!-- example:end -->")
    assert start < end
    assert ".venv/bin/mkdocs serve" in text


def test_every_readme_link_into_docs_resolves():
    links = [m.group(1) for m in LINK.finditer(README.read_text())]
    into_docs = [link for link in links if link.startswith("docs/")]
    assert len(into_docs) >= 10, f"the README should link into the documentation, found {into_docs}"
    for link in into_docs:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.is_file(), f"README links to {link}, but {path} does not exist"
        if anchor:
            assert target.suffix == ".md", link
            assert anchor in _headings_slugs(target), f"README links to {link}, but {path} has no heading with that anchor"


def test_every_docs_page_is_in_the_nav():
    """A page left out of mkdocs.yml's nav is built but unreachable from the menu."""
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    missing = [p for p in pages if p not in nav]
    assert not missing, f"docs pages missing from mkdocs.yml's nav: {missing}"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None,
                    reason="mkdocs is not installed (the docs extra: pip install -e '.[docs]')")
def test_the_site_builds_in_strict_mode(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    r = subprocess.run([mkdocs, "build", "--strict", "-d", str(tmp_path / "site")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    # generated from the typer app: a command's options appear without anyone copying them
    assert "autoreward run" in cli and "--max-episode-steps" in cli and "--require-confinement" in cli
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert 'id="autoreward.api.synthesize"' in api and 'id="autoreward.rundir.Run"' in api
