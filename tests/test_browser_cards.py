"""Many photos, heatmaps and examples in a real browser (Debian's Chromium under Playwright).

Several photos dropped get a card each as they finish; the heatmap toggles on and off over the preview;
everything works with the keyboard alone, at phone width, and (the form post) without JavaScript.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from snakes_web import create_app
from snakes_web.model.heatmaps import Heatmap
from tests.browser import (
    DESKTOP,
    PHONE,
    WATCH_CSP,
    assert_strict_csp,
    chromium,
    live_server,
    screenshot,
    shown_in_the_docs,
    watched_page,
)
from tests.conftest import COLOURS, DATA, FakePredictor, image_bytes
from tests.test_browser import axe_violations

pytestmark = pytest.mark.slow
SCREENSHOTS = Path(__file__).parent.parent / "docs" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, once for the module."""
    yield from chromium()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A desktop-sized page whose CSP violations and script errors fail the test."""
    yield from watched_page(browser)


class ExplainingFake(FakePredictor):
    """The colour fake with a cheap explain(): the left half of the photo lit for every class."""

    explains_with = "cam"

    def __init__(self) -> None:
        super().__init__()
        self.explained: list[str | None] = []

    def explain(self, image: Image.Image, label: str | None) -> tuple[list[Any], Heatmap]:
        predictions = self.predict(image)
        self.explained.append(label)
        grid = np.zeros((7, 7))
        grid[:, :3] = 1.0 if label is None else 0.5
        return predictions, Heatmap(label or predictions[0].label, "cam", grid, (0.0, 0.0, 1.0, 1.0))


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[str, ExplainingFake]]:
    predictor = ExplainingFake()
    with live_server(create_app({"PREDICTOR": predictor, "ALLOW_PRIVATE_URLS": True, "FETCH_TIMEOUT": 2.0})) as base:
        assert_strict_csp(base)
        yield base, predictor


def photos(*names: str) -> list[dict[str, Any]]:
    """Playwright file payloads: one small PNG per colour name ("pdf" for a PDF)."""
    out = []
    for index, name in enumerate(names):
        if name == "pdf":
            out.append({"name": f"{index}.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4\n"})
        else:
            out.append({"name": f"{index}-{name}.png", "mimeType": "image/png",
                        "buffer": image_bytes(size=(90, 60), colour=COLOURS[name])})
    return out


def drop(page: Any, files: list[dict[str, Any]]) -> None:
    """Drop ``files`` on the page's footer, as a visitor dragging them in from the desktop."""
    import base64

    transfer = page.evaluate_handle(
        """(files) => { const t = new DataTransfer();
             for (const f of files) {
               const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
               t.items.add(new File([bytes], f.name, {type: f.mime})); }
             return t; }""",
        [{"b64": base64.b64encode(f["buffer"]).decode(), "name": f["name"], "mime": f["mimeType"]} for f in files])
    page.dispatch_event("footer", "dragenter", {"dataTransfer": transfer})
    page.dispatch_event("footer", "drop", {"dataTransfer": transfer})


def answered(page: Any, count: int) -> list[str]:
    """Wait until ``count`` cards have their answer (or problem); return their headings."""
    page.wait_for_function("(n) => document.querySelectorAll('#outcome .result:not(.pending)').length === n",
                           arg=count, timeout=20_000)
    return [str(h) for h in page.locator("#outcome .result h2").all_inner_texts()]


def test_several_dropped_photos_get_a_card_each_in_order_one_failing_alone(page: Any, site: Any) -> None:
    base, _ = site
    page.goto(base)
    drop(page, photos("blue", "pdf", "green", "red"))
    headings = answered(page, 4)
    assert headings[0].startswith("Blue") and headings[2].startswith("Green") and headings[3].startswith("Red")
    assert headings[1] == "Photo 2: no answer"
    assert page.inner_text("#outcome .result.failed .error").startswith("That file is a PDF")
    assert page.locator("#outcome .result img.preview").count() == 3
    assert page.is_hidden("#problem")  # a batch's problem stays in its card
    # Each answered card asks "Is this right?" with its own form (and its own ids); the failed one does not.
    assert page.locator("#outcome .result form.feedback").count() == 3
    assert page.locator("#outcome .result.failed form.feedback").count() == 0
    assert len(set(page.locator("#outcome form.feedback select").evaluate_all("els => els.map(e => e.id)"))) == 3


def test_several_pasted_addresses_get_a_card_each(page: Any, site: Any) -> None:
    from tests.conftest import ImageServer, Route

    base, _ = site
    images = ImageServer()
    try:
        for name in ("red", "blue"):
            images.routes[f"/{name}.png"] = Route(image_bytes(colour=COLOURS[name]),
                                                  headers={"Content-Type": "image/png"})
        page.goto(base)
        page.evaluate("""(text) => { const t = new DataTransfer(); t.setData('text/plain', text);
                         document.body.dispatchEvent(
                           new ClipboardEvent('paste', {clipboardData: t, bubbles: true})); }""",
                      images.url("/red.png") + "\n" + images.url("/blue.png"))
        headings = answered(page, 2)
        assert headings[0].startswith("Red") and headings[1].startswith("Blue")
        assert sorted(images.hits) == ["/blue.png", "/red.png"]
    finally:
        images.close()


def test_cards_appear_as_each_answer_comes_back(page: Any, site: Any) -> None:
    base, _ = site
    held: list[Any] = []

    def hold_blue(route: Any) -> None:
        if b"0-blue.png" in (route.request.post_data_buffer or b""):
            held.append(route)  # the first photo's answer waits; the second must not wait for it
        else:
            route.continue_()

    page.route("**/api/v1/predict*", hold_blue)
    page.goto(base)
    page.set_input_files("#file", files=photos("blue", "green"))
    page.wait_for_function("() => document.querySelectorAll('#outcome .result:not(.pending)').length === 1")
    assert page.locator("#outcome .result.pending").count() == 1
    assert page.inner_text("#outcome .result:not(.pending) h2").startswith("Green")
    held[0].continue_()
    assert answered(page, 2)[0].startswith("Blue")


def test_the_heatmap_toggles_on_and_off_over_the_preview_with_its_scale(page: Any, site: Any) -> None:
    base, predictor = site
    page.goto(base)
    assert page.is_checked("#explain")  # a model that explains in the same pass: on by default
    page.set_input_files("#file", files=photos("red"))
    answered(page, 1)
    heat = page.locator(".result .heat")
    assert heat.get_attribute("src").startswith("data:image/png;base64,")
    assert not heat.is_visible() and not page.is_visible(".heat-scale")
    page.check("#heat-1")
    assert heat.is_visible() and page.is_visible(".heat-scale .scale-bar")
    preview, overlay = page.locator(".result .preview").bounding_box(), heat.bounding_box()
    assert overlay == pytest.approx(preview, abs=1)  # exactly over the photo
    assert axe_violations(page) == [], "a card with its heatmap on"
    page.uncheck("#heat-1")
    assert not heat.is_visible()


def test_picking_another_class_maps_that_class(page: Any, site: Any) -> None:
    base, predictor = site
    page.goto(base)
    page.set_input_files("#file", files=photos("red"))
    answered(page, 1)
    page.check("#heat-1")
    before = page.get_attribute(".result .heat", "src")
    predictor.explained.clear()
    page.select_option("#heat-class-1", "blue")
    page.wait_for_function("(old) => document.querySelector('.result .heat').src !== old", arg=before)
    assert predictor.explained == ["blue"]
    assert page.get_attribute(".result .heat", "alt").endswith("for blue")


def test_keyboard_only_an_example_its_heatmap_and_the_other_classes(page: Any, site: Any) -> None:
    base, _ = site
    page.goto(base)
    for _ in range(30):  # Tab through the form to the first example photo
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('example')"):
            break
    assert page.evaluate("document.activeElement.value") == "example-chelsea.jpg"
    page.keyboard.press("Enter")
    answered(page, 1)
    assert page.evaluate("document.activeElement.id") == "result-title"  # focus moved to the answer
    page.keyboard.press("Shift+Tab")  # the toggle sits under the photo, before the answer
    assert page.evaluate("document.activeElement.id") == "heat-1"
    page.keyboard.press("Space")
    assert page.is_visible(".result .heat")
    page.keyboard.press("Tab")  # then the class picker, shown with the heatmap
    assert page.evaluate("document.activeElement.id") == "heat-class-1"
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Space")
    assert not page.is_visible(".result .heat")


def test_several_photos_fit_a_360_pixel_phone(browser: Any, site: Any) -> None:
    base, _ = site
    context = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    page = context.new_page()
    page.goto(base)
    page.set_input_files("#file", files=photos("red", "green", "blue"))
    answered(page, 3)
    page.check("#heat-2")
    assert page.is_visible("#outcome .result:nth-child(2) .heat")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    boxes = [page.locator(f"#outcome .result:nth-child({n})").bounding_box() for n in (1, 2, 3)]
    assert boxes[0]["y"] < boxes[1]["y"] < boxes[2]["y"]  # one column, in order
    context.close()


def test_without_javascript_several_photos_post_and_the_heatmap_still_toggles(
        browser: Any, site: Any) -> None:
    base, _ = site
    context = browser.new_context(viewport=DESKTOP, java_script_enabled=False)
    page = context.new_page()
    page.goto(base)
    page.set_input_files("#file", files=photos("blue", "pdf", "red"))
    with page.expect_navigation():
        page.click("#classify button[type=submit]")
    headings = page.locator("#outcome .result h2").all_inner_texts()
    assert headings[0].startswith("Blue") and headings[1] == "Photo 2: no answer" and headings[2].startswith("Red")
    assert not page.is_visible("#outcome .result:nth-child(3) .heat")
    page.check("#heat-3")  # a CSS toggle: no script needed
    assert page.is_visible("#outcome .result:nth-child(3) .heat")
    page.goto(base)
    with page.expect_navigation():
        page.click("button.example[value='example-coffee.jpg']")
    assert page.locator("#outcome .result").count() == 1
    context.close()


# --- the real default model: the screenshots of the docs ------------------------------------------

@pytest.fixture(scope="module")
def real_site(default_predictor: Any) -> Iterator[str]:
    with live_server(create_app({"PREDICTOR": default_predictor})) as base:
        yield base


@pytest.mark.parametrize("size_name, viewport", [("desktop", DESKTOP), ("phone", PHONE)])
def test_the_real_model_maps_two_photos_and_the_cards_are_photographed(
        browser: Any, real_site: str, size_name: str, viewport: dict[str, int]) -> None:
    context = browser.new_context(viewport=viewport, device_scale_factor=1)
    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    page.goto(real_site)
    page.set_input_files("#file", [str(DATA / "chelsea.jpg"), str(DATA / "coffee.jpg")])
    headings = answered(page, 2)
    assert all(h.startswith("Not a snake") for h in headings)
    assert page.locator("#outcome .result .heat-about").first.inner_text() != ""
    page.check("#heat-1")
    page.check("#heat-2")
    page.wait_for_function("() => [...document.querySelectorAll('.result img')].every((i) => i.complete)")
    assert page.evaluate("window.__cspViolations") == []
    path = screenshot(page, f"cards-{size_name}")
    context.close()
    with Image.open(path) as shot:
        assert shot.width == viewport["width"]


def test_the_committed_card_screenshots_are_in_the_docs() -> None:
    for name in ("cards-desktop", "cards-phone"):
        screenshot = SCREENSHOTS / f"{name}.png"
        assert screenshot.is_file() and shown_in_the_docs(screenshot), f"no page shows {screenshot.name}"
