"""The reference pages in docs/reference/ are what the code makes now, and each names everything it must."""
from __future__ import annotations

import argparse
import inspect
import re
from pathlib import Path

import pytest

import snakes_web.exceptions
from snakes_web.config import SETTINGS
from snakes_web.exceptions import SnakesError
from snakes_web.tools import reference
from snakes_web.tools.cli import build_parser
from snakes_web.web.openapi import document

FOLDER = Path(__file__).parent.parent / "docs" / "reference"
REFRESH = f"run `{reference.COMMAND}` and commit docs/reference/"


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    """Return the pages the code makes (once: building the CLI parser imports the tools)."""
    return reference.pages()


def commands(parser: argparse.ArgumentParser) -> list[str]:
    """Return the prog of every subcommand under ``parser``, nested ones too."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += [child.prog, *commands(child)]
    return found


def test_the_committed_pages_are_what_the_code_makes(pages: dict[str, str]) -> None:
    for name, text in pages.items():
        path = FOLDER / name
        assert path.is_file(), f"docs/reference/{name} is missing: {REFRESH}"
        assert path.read_text(encoding="utf-8") == text, f"docs/reference/{name} is stale: {REFRESH}"


def test_every_page_says_it_is_generated_then_has_a_title(pages: dict[str, str]) -> None:
    assert set(pages) == {"settings.md", "cli.md", "http.md", "errors.md"}
    for text in pages.values():
        first, title = text.splitlines()[:2]
        assert first == reference.HEADER and title.startswith("# ")


def test_the_settings_page_has_one_row_per_environment_variable(pages: dict[str, str]) -> None:
    rows = re.findall(r"^\| `(SNAKES_[A-Z0-9_]+)` \|", pages["settings.md"], flags=re.M)
    assert rows == [setting.env for setting in SETTINGS]


def test_the_cli_page_has_a_section_for_every_subcommand(pages: dict[str, str]) -> None:
    progs = commands(build_parser())
    assert "snakes-web train" in progs and "snakes-web feedback purge" in progs
    headings = re.findall(r"^#{2,} (snakes-web .+)$", pages["cli.md"], flags=re.M)
    assert headings == progs


def test_the_http_page_has_a_section_for_every_operation(pages: dict[str, str]) -> None:
    operations = [f"{method.upper()} {path}" for path, methods in document()["paths"].items() for method in methods]
    headings = re.findall(r"^### `([A-Z]+ /\S*)`$", pages["http.md"], flags=re.M)
    assert sorted(headings) == sorted(operations)
    assert "`/api/v1/openapi.json`" in pages["http.md"] and "`/api/v1/docs`" in pages["http.md"]


def test_the_errors_page_has_a_row_for_every_error_class_with_its_status(pages: dict[str, str]) -> None:
    classes = [cls for _, cls in inspect.getmembers(snakes_web.exceptions, inspect.isclass)
               if issubclass(cls, SnakesError)]
    assert len(classes) > 10
    rows = {name: int(status) for status, name in re.findall(r"^\| `(\d{3})` \| `(\w+)`", pages["errors.md"],
                                                            flags=re.M)}
    assert rows == {cls.__name__: cls.status for cls in classes}


def test_the_staleness_check_names_a_changed_page_and_a_missing_one(tmp_path: Path) -> None:
    reference.write(tmp_path)
    assert reference.stale(tmp_path) == []
    page = tmp_path / "errors.md"
    page.write_text(page.read_text().replace("Payload Too Large", "Too Big"))
    (tmp_path / "cli.md").unlink()
    assert reference.stale(tmp_path) == ["cli.md", "errors.md"]


def test_check_exits_1_and_says_how_to_refresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    reference.write(tmp_path)
    (tmp_path / "settings.md").write_text("# Settings\n")
    monkeypatch.setattr(reference, "FOLDER", tmp_path)
    assert reference.main(["--check"]) == 1
    said = capsys.readouterr().err
    assert said.startswith("settings.md ") and f"run `{reference.COMMAND}`" in said
    reference.write(tmp_path)
    assert reference.main(["--check"]) == 0
