"""'Is this right?' in Chromium: with the script (answered in place) and without it (a form post)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from snakes_web import create_app
from snakes_web.web.feedback import feedback_of
from tests.browser import DESKTOP, PHONE, WATCH_CSP, chromium, live_server, screenshot
from tests.conftest import COLOURS, FakePredictor, image_bytes
from tests.test_browser import axe_violations

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, once for the module."""
    yield from chromium()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """The app with the fake model and its own feedback database, on loopback."""
    app = create_app({"PREDICTOR": FakePredictor(), "DATA_DIR": str(tmp_path)})
    with live_server(app) as base:
        yield base, app


def open_page(browser: Any, base: str, javascript: bool = True, viewport: dict[str, int] = DESKTOP) -> Any:
    """Open the page in a fresh context that records CSP violations."""
    context = browser.new_context(viewport=viewport, java_script_enabled=javascript)
    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    page.goto(base)
    return page


def pick(page: Any, colour: str) -> None:
    """Choose a photo of one colour with the file field."""
    page.set_input_files("#file", files=[{"name": f"{colour}.png", "mimeType": "image/png",
                                          "buffer": image_bytes(colour=COLOURS[colour])}])


def test_with_the_script_the_answer_is_sent_in_place(browser: Any, site: Any) -> None:
    base, app = site
    page = open_page(browser, base)
    pick(page, "blue")
    form = page.locator(".result form.feedback")
    form.wait_for(timeout=15_000)
    assert page.inner_text(".result legend") == "Is this right?"
    assert page.inner_text(".result button[value=confirm]") == "Yes, it is blue"
    assert sorted(page.locator(".result form.feedback select[name=label] option").all_inner_texts()) == ["green", "red"]
    assert axe_violations(page) == []
    screenshot(page, "feedback-question")
    page.select_option(".result form.feedback select[name=label]", "green")
    page.click("button[value=correct]")
    page.locator(".feedback-status.done").wait_for(timeout=10_000)
    assert page.inner_text(".feedback-status.done") == "Thank you. Stored: it is green."
    assert page.url.rstrip("/") == base  # no navigation
    screenshot(page, "feedback-stored")
    assert [(row.predicted, row.label) for row in feedback_of(app).store.entries()] == [("blue", "green")]
    assert page.evaluate("window.__cspViolations") == []
    page.context.close()


def test_with_the_script_an_error_is_said_in_the_form(browser: Any, site: Any) -> None:
    base, app = site
    page = open_page(browser, base)
    pick(page, "red")
    page.locator(".result form.feedback").wait_for(timeout=15_000)
    page.click("button[value=confirm]")
    page.locator(".feedback-status.done").wait_for(timeout=10_000)
    pick(page, "red")  # a new result, a new receipt: answer it twice
    page.locator(".result form.feedback").wait_for(timeout=15_000)
    receipt = page.get_attribute(".result form.feedback input[name=receipt]", "value")
    first = requests.post(f"{base}/api/v1/feedback", data={"receipt": receipt, "verdict": "confirm"},
                          files={"file": ("red.png", image_bytes(colour=COLOURS["red"]), "image/png")}, timeout=30)
    assert first.status_code == 201, first.text  # the page sent the very bytes picked: the same photo
    page.click("button[value=confirm]")
    status = page.locator(".result .feedback-status:not(.done)")
    status.wait_for(state="visible", timeout=10_000)
    assert "already sent" in status.inner_text()
    assert feedback_of(app).store.count() == 2
    page.context.close()


def test_without_the_script_the_form_posts_and_the_server_thanks(browser: Any, site: Any) -> None:
    base, app = site
    page = open_page(browser, base, javascript=False)
    pick(page, "green")
    with page.expect_navigation():
        page.click("form.classify button[type=submit]")
    assert "Your photo is not stored" in page.inner_text("form.classify")
    page.fill("form.feedback input[name=other]", "a green mamba")
    with page.expect_navigation():
        page.click(".feedback-row button[value=none]")
    assert page.url == f"{base}/feedback"
    assert "Stored: none of the model's labels (you said: a green mamba)." in page.inner_text("main")
    [row] = feedback_of(app).store.entries()
    assert (row.verdict, row.label, row.other) == ("none", None, "a green mamba")
    page.context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["with-script", "without-script"])
def test_enter_in_the_words_box_sends_none_of_these_with_the_words(browser: Any, site: Any, javascript: bool) -> None:
    """Enter presses a form's first submit button: it used to be "Yes, it is …", and the words were lost."""
    base, app = site
    page = open_page(browser, base, javascript=javascript)
    pick(page, "green")
    if not javascript:
        with page.expect_navigation():
            page.click("form.classify button[type=submit]")
    page.locator(".result form.feedback").wait_for(timeout=15_000)
    page.fill("form.feedback input[name=other]", "a rough green snake")
    if javascript:
        page.press("form.feedback input[name=other]", "Enter")
        page.locator(".feedback-status.done").wait_for(timeout=10_000)
        assert page.inner_text(".feedback-status.done") == "Thank you. Stored: none of the model's labels."
    else:
        with page.expect_navigation():
            page.press("form.feedback input[name=other]", "Enter")
        assert "you said: a rough green snake" in page.inner_text("main")
    [row] = feedback_of(app).store.entries()
    assert (row.verdict, row.predicted, row.label, row.other) == ("none", "green", None, "a rough green snake")
    page.context.close()


def test_the_question_fits_a_360_pixel_phone(browser: Any, site: Any) -> None:
    base, _ = site
    page = open_page(browser, base, viewport=PHONE)
    pick(page, "green")
    page.locator(".result form.feedback").wait_for(timeout=15_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert axe_violations(page) == []
    page.context.close()
