"""The documentation: a short README, every page on the site's nav, and numbers quoted from the bench, not copied.

`make docs` (mkdocs build --strict) checks links; these checks need no build and no MkDocs.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
BENCHMARKS = DOCS / "benchmarks.md"
#: A pymdownx.snippets include on a line of its own: --8<-- "file" or --8<-- "file:section" (";" escapes it).
INCLUDE = re.compile(r'^[ \t]*-+8<-+[ \t]+(["\'])(?P<target>.+?)\1[ \t]*$', flags=re.M)
#: A throughput column, as the bench heads its tables ("images/s", "img/s").
RATE = re.compile(r"\b(?:images|img)/s\b")
SECTION_START = re.compile(r"-+8<-+[ \t]+\[[ \t]*start[ \t]*:[ \t]*(?P<name>[a-z][-_0-9a-z]*)[ \t]*\]", flags=re.I)


def pages() -> list[Path]:
    """Return every Markdown page under docs/."""
    return sorted(DOCS.rglob("*.md"))


def nav_files(entry: Any) -> set[str]:
    """Return every file a MkDocs `nav` entry names, however deeply nested."""
    if isinstance(entry, str):
        return {entry}
    if isinstance(entry, list):
        return set().union(*(nav_files(item) for item in entry))
    if isinstance(entry, dict):
        return set().union(*(nav_files(value) for value in entry.values()))
    return set()


def tables(text: str) -> list[list[str]]:
    """Return the Markdown tables of ``text``, each as its lines (the header first)."""
    found: list[list[str]] = []
    current: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.lstrip().startswith("|"):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    return found


def test_the_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move the detail into docs/"


def test_the_readmes_relative_links_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\((?!https?:|mailto:|#)([^)#\s]+)", readme)
    assert links
    assert [link for link in links if not (ROOT / link).exists()] == []


def test_every_page_is_in_the_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["docs_dir"] == "docs"
    listed = nav_files(config["nav"])
    on_disk = {page.relative_to(DOCS).as_posix() for page in pages()}
    assert on_disk - listed == set(), "pages missing from mkdocs.yml's nav"
    assert listed - on_disk == set(), "nav entries with no page"


@pytest.mark.parametrize("page", [p for p in pages() if p != BENCHMARKS], ids=lambda p: p.relative_to(DOCS).as_posix())
def test_no_page_but_the_benchmarks_carries_a_copied_bench_table(page: Path) -> None:
    for table in tables(page.read_text()):
        header, rows = table[0], table[2:]
        copied = bool(RATE.search(header)) and any("×" in row for row in rows)
        assert not copied, f"{page.name}: a bench table typed by hand; quote it from benchmarks.md instead:\n{header}"


def test_every_include_names_a_block_of_the_benchmarks() -> None:
    blocks = set(SECTION_START.findall(BENCHMARKS.read_text()))
    assert blocks, "docs/benchmarks.md has no marked blocks"
    includes = [(page.name, m.group("target")) for page in pages() for m in INCLUDE.finditer(page.read_text())]
    assert includes, "no page quotes the bench"
    for name, target in includes:
        file, _, block = target.partition(":")
        assert file == "benchmarks.md", f"{name} includes {target}: only benchmarks.md blocks are quoted"
        assert block in blocks, f"{name} includes {target}: benchmarks.md has no block {block!r}"


@pytest.mark.slow
def test_the_built_site_opened_from_disk_navigates_and_searches_with_nothing_from_elsewhere(tmp_path: Path) -> None:
    """`make docs`'s site works from file:// with the network cut: pages link, and search finds a setting."""
    import subprocess
    import sys

    from tests.browser import chromium

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--config-file",
                    str(ROOT / "mkdocs.yml"), "--site-dir", str(site)], check=True, cwd=ROOT)
    elsewhere: list[str] = []

    def only_files(route: Any) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    for browser in chromium():
        page = browser.new_page()
        page.route("**/*", only_files)
        page.goto((site / "index.html").as_uri())
        page.get_by_role("link", name="Configuration").first.click()
        assert page.url.endswith("/configuration.html")
        page.locator("label.md-search__icon, .md-search__input").first.click()
        page.locator("input.md-search__input").press_sequentially("SNAKES_MAX_UPLOAD_BYTES", delay=20)
        page.locator(".md-search-result__item").first.wait_for(timeout=15_000)  # the index, from disk
        found = [link.get_attribute("href") for link in page.locator(".md-search-result__item a").all()]
        assert any("reference/settings.html" in href for href in found), found
    assert elsewhere == []
