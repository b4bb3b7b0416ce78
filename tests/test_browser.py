"""The page in a real browser (Debian's Chromium under Playwright): pick, drop, paste, errors, no JavaScript.

Chromium missing is a failure, never a skip: `.ci/run` installs it from Debian.
"""
from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from snakes_web import create_app
from tests.browser import (
    DESKTOP,
    PHONE,
    WATCH_CSP,
    as_file_in_page,
    assert_strict_csp,
    chromium,
    live_server,
    screenshot,
    shown_in_the_docs,
    watched_page,
)
from tests.conftest import COLOURS, DATA, FakePredictor, ImageServer, Route, image_bytes

pytestmark = pytest.mark.slow


class RecordingPredictor(FakePredictor):
    """The colour-naming fake, remembering the size of every image it was shown."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[tuple[int, int]] = []

    def predict(self, image: Image.Image) -> Any:
        self.sizes.append(image.size)
        return super().predict(image)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, once for the module."""
    yield from chromium()


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[str, RecordingPredictor]]:
    """The app with the fake model, on loopback; private URLs allowed for the local image server."""
    predictor = RecordingPredictor()
    app = create_app({"PREDICTOR": predictor, "ALLOW_PRIVATE_URLS": True, "FETCH_TIMEOUT": 2.0})
    with live_server(app) as base:
        assert_strict_csp(base)
        yield base, predictor


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A desktop-sized page whose CSP violations and script errors fail the test."""
    yield from watched_page(browser)


def result_heading(page: Any) -> str:
    """Wait for the answer and return its heading."""
    heading = page.locator(".result:not(.pending) h2")
    heading.wait_for(timeout=15_000)
    return str(heading.inner_text())


def test_a_photo_picked_with_the_file_chooser_is_classified_in_place(page: Any, site: Any) -> None:
    base, _ = site
    page.goto(base)
    with page.expect_file_chooser() as chooser:
        page.click("#file")
    chooser.value.set_files({"name": "blue.png", "mimeType": "image/png",
                             "buffer": image_bytes(colour=COLOURS["blue"])})
    assert result_heading(page).startswith("Blue")
    assert page.url.rstrip("/") == base  # no reload, no navigation
    assert page.locator(".result meter").count() == 3
    assert page.locator(".result .num").first.inner_text().endswith("%")
    assert page.get_attribute(".result img.preview", "src").startswith("blob:")  # the instant preview
    assert page.evaluate("document.activeElement.id") == "result-title"  # focus moves to the answer
    assert page.get_attribute("#outcome", "aria-live") == "polite"


def test_an_unsure_answer_says_so_in_words(page: Any, site: Any) -> None:
    base, _ = site
    page.goto(base)
    page.set_input_files("#file", files=[{"name": "grey.png", "mimeType": "image/png",
                                          "buffer": image_bytes(colour=(120, 120, 120))}])
    result_heading(page)
    assert page.inner_text(".note").startswith("The model is unsure about this one: no class reached 50%.")


def test_a_second_photo_replaces_one_still_in_flight(page: Any, site: Any) -> None:
    base, _ = site
    held: list[Any] = []

    def hold_the_first(route: Any) -> None:
        if held:
            route.continue_()
        else:
            held.append(route)  # the first upload hangs until the test lets it go

    page.route("**/api/v1/predict*", hold_the_first)
    page.goto(base)
    with page.expect_request("**/api/v1/predict*"):
        page.set_input_files("#file", files=[{"name": "red.png", "mimeType": "image/png",
                                              "buffer": image_bytes(colour=COLOURS["red"])}])
    with page.expect_event("requestfailed") as first:
        page.set_input_files("#file", files=[{"name": "blue.png", "mimeType": "image/png",
                                              "buffer": image_bytes(colour=COLOURS["blue"])}])
    assert "ABORTED" in (first.value.failure or "")  # the page gave up on the first upload
    assert result_heading(page).startswith("Blue")
    with contextlib.suppress(Exception):  # too late: the browser cancelled it (Playwright may say so)
        held[0].continue_()
    assert page.locator(".result").count() == 1 and result_heading(page).startswith("Blue")


def test_a_photo_dropped_anywhere_on_the_page_is_classified(page: Any, site: Any) -> None:
    base, _ = site
    page.goto(base)
    transfer = as_file_in_page(page, image_bytes(colour=COLOURS["green"]), "green.png", "image/png")
    page.dispatch_event("footer", "dragenter", {"dataTransfer": transfer})
    assert page.is_visible("#drop-overlay")
    page.dispatch_event("footer", "drop", {"dataTransfer": transfer})
    assert result_heading(page).startswith("Green")
    assert not page.is_visible("#drop-overlay")


def test_a_photo_pasted_from_the_clipboard_is_classified(page: Any, site: Any) -> None:
    base, _ = site
    page.goto(base)
    transfer = as_file_in_page(page, image_bytes("JPEG", colour=COLOURS["red"]), "image.jpg", "image/jpeg")
    page.evaluate("(t) => document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: t, bubbles: true}))",
                  transfer)
    assert result_heading(page).startswith("Red")


def test_an_image_url_pasted_on_the_page_is_fetched_and_classified(page: Any, site: Any) -> None:
    base, _ = site
    images = ImageServer()
    try:
        images.routes["/snake.png"] = Route(image_bytes(colour=COLOURS["green"]),
                                            headers={"Content-Type": "image/png"})
        page.goto(base)
        page.evaluate("""(url) => { const t = new DataTransfer(); t.setData('text/plain', url);
                         document.body.dispatchEvent(
                           new ClipboardEvent('paste', {clipboardData: t, bubbles: true})); }""",
                      images.url("/snake.png"))
        assert result_heading(page).startswith("Green")
        assert page.input_value("#url") == images.url("/snake.png")
        assert images.hits == ["/snake.png"]
    finally:
        images.close()


def test_an_image_url_typed_into_the_field_is_classified(page: Any, site: Any) -> None:
    base, _ = site
    images = ImageServer()
    try:
        images.routes["/b.jpg"] = Route(image_bytes("JPEG", colour=COLOURS["blue"]),
                                        headers={"Content-Type": "image/jpeg"})
        page.goto(base)
        page.fill("#url", images.url("/b.jpg"))
        page.press("#url", "Enter")
        assert result_heading(page).startswith("Blue")
    finally:
        images.close()


def test_a_pdf_gets_an_error_that_reads_like_help(page: Any, site: Any) -> None:
    base, _ = site
    page.goto(base)
    page.set_input_files("#file", files=[{"name": "scan.pdf", "mimeType": "application/pdf",
                                          "buffer": b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n"}])
    problem = page.locator("#problem")
    problem.wait_for(state="visible")
    assert problem.inner_text().startswith("That file is a PDF, not an image. Try a JPEG")
    assert "Reference:" in problem.inner_text()  # the request id, for a report
    assert page.get_attribute("#problem", "role") == "alert"
    assert page.evaluate("document.activeElement.id") == "problem"
    assert page.locator(".result").count() == 0


def test_a_busy_server_is_explained_as_busy_not_as_an_error(browser: Any) -> None:
    """The one inference slot is held by another request: the page's photo gets the 503 and says why.

    Its own page: the shared fixture fails on the console's "status of 503", expected here."""
    from tests.test_gate import HeldPredictor

    predictor = HeldPredictor()
    app = create_app({"PREDICTOR": predictor, "QUEUE_TIMEOUT": 0.3})
    with live_server(app) as base:
        holder = threading.Thread(target=app.test_client().post, args=("/api/v1/predict",),
                                  kwargs={"data": {"file": (io.BytesIO(image_bytes("PNG")), "x.png")}})
        holder.start()
        context = browser.new_context(viewport=DESKTOP)
        try:
            assert predictor.started.wait(10)
            page = context.new_page()
            page.goto(base)
            page.set_input_files("#file", files=[{"name": "red.png", "mimeType": "image/png",
                                                  "buffer": image_bytes("PNG")}])
            problem = page.locator("#problem")
            problem.wait_for(state="visible")
            assert problem.inner_text().startswith("Lots of people are asking right now")
        finally:
            context.close()
            predictor.release.set()
            holder.join()


def test_classifying_with_nothing_chosen_says_what_to_do(page: Any, site: Any) -> None:
    base, _ = site
    page.goto(base)
    page.click("button[type=submit]")
    assert "Choose a photo" in page.inner_text("#problem")


def test_a_large_photo_is_downscaled_upright_before_upload(page: Any, site: Any) -> None:
    base, predictor = site
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view": stored landscape, seen portrait
    out = io.BytesIO()
    Image.new("RGB", (3000, 2000), COLOURS["red"]).save(out, format="JPEG", quality=95, exif=exif)
    page.goto(base)
    predictor.sizes.clear()
    page.set_input_files("#file", files=[{"name": "big.jpg", "mimeType": "image/jpeg", "buffer": out.getvalue()}])
    assert result_heading(page).startswith("Red")
    [(width, height)] = predictor.sizes
    assert max(width, height) == 1600 and height > width  # smaller, and still the right way up


def test_a_browser_that_cannot_redraw_photos_upright_sends_the_original(page: Any, site: Any) -> None:
    base, predictor = site
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    Image.new("RGB", (2400, 1600), COLOURS["red"]).save(out, format="JPEG", quality=90, exif=exif)
    # As in a browser whose createImageBitmap ignores EXIF: the probe fails, so nothing is redrawn.
    page.add_init_script("window.createImageBitmap = () => Promise.reject(new Error('unsupported'));")
    page.goto(base)
    predictor.sizes.clear()
    page.set_input_files("#file", files=[{"name": "big.jpg", "mimeType": "image/jpeg", "buffer": out.getvalue()}])
    assert result_heading(page).startswith("Red")
    assert predictor.sizes == [(1600, 2400)]  # the full-size original, turned upright by the server


def test_a_small_photo_is_sent_as_it_is(page: Any, site: Any) -> None:
    base, predictor = site
    page.goto(base)
    predictor.sizes.clear()
    page.set_input_files("#file", files=[{"name": "s.png", "mimeType": "image/png",
                                          "buffer": image_bytes(size=(300, 200))}])
    result_heading(page)
    assert predictor.sizes == [(300, 200)]


def test_without_javascript_the_form_posts_and_the_server_renders_the_result(browser: Any, site: Any) -> None:
    base, _ = site
    context = browser.new_context(viewport=DESKTOP, java_script_enabled=False)
    page = context.new_page()
    page.goto(base)
    assert not page.is_visible(".camera") and not page.is_visible(".js-only")
    page.set_input_files("#file", files=[{"name": "blue.png", "mimeType": "image/png",
                                          "buffer": image_bytes(colour=COLOURS["blue"])}])
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.inner_text(".result h2").startswith("Blue")
    assert page.get_attribute(".result img.preview", "src").startswith("data:image/jpeg;base64,")
    context.close()


def test_the_page_fits_a_360_pixel_phone(browser: Any, site: Any) -> None:
    base, _ = site
    context = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    page = context.new_page()
    page.goto(base)
    assert page.is_visible(".camera-button")  # a touch screen gets a button straight to the camera
    assert page.get_attribute("#camera", "capture") == "environment"
    with page.expect_file_chooser() as chooser:
        page.tap(".camera-button")
    chooser.value.set_files({"name": "camera.jpg", "mimeType": "image/jpeg",
                             "buffer": image_bytes("JPEG", size=(400, 300), colour=COLOURS["green"])})
    assert result_heading(page).startswith("Green")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    context.close()


def test_the_keyboard_reaches_every_control_in_order(page: Any, site: Any) -> None:
    base, _ = site
    page.goto(base)
    reached = []
    for _ in range(8):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
    order = [name for name in reached if name in {"file", "url", "BUTTON"}]
    assert order[:3] == ["file", "url", "BUTTON"]


def axe_violations(page: Any) -> list[str]:
    """Run axe-core (WCAG rules: labels, contrast, ARIA, landmarks...) on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{v['id']}: {v['help']}" for v in results.response["violations"]]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_axe_finds_no_accessibility_violations(browser: Any, site: Any, viewport: dict[str, int]) -> None:
    base, _ = site
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.goto(base)
    assert axe_violations(page) == [], "the empty form"
    page.set_input_files("#file", files=[{"name": "g.png", "mimeType": "image/png",
                                          "buffer": image_bytes(colour=(120, 120, 120))}])
    result_heading(page)
    assert axe_violations(page) == [], "a result with the unsure note"
    page.set_input_files("#file", files=[{"name": "x.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4"}])
    page.locator("#problem").wait_for(state="visible")
    assert axe_violations(page) == [], "an error"
    page.goto(f"{base}/api/v1/docs")
    assert axe_violations(page) == [], "the API reference"
    context.close()


# --- the real default model, and the screenshots of the docs -----------------------------------

@pytest.fixture(scope="module")
def real_site(default_model_path: Path) -> Iterator[str]:
    """The default model as shipped (its labels file, its deployment prior), on loopback."""
    from snakes_web.config import load_settings
    from snakes_web.model.loader import load_configured

    predictor = load_configured(load_settings(overrides={"MODEL": str(default_model_path)}))
    with live_server(create_app({"PREDICTOR": predictor})) as base:
        assert_strict_csp(base)
        yield base


@pytest.mark.parametrize("size_name, viewport", [("desktop", DESKTOP), ("phone", PHONE)])
def test_the_real_model_answers_in_the_browser_and_the_result_is_photographed(
        browser: Any, real_site: str, size_name: str, viewport: dict[str, int]) -> None:
    context = browser.new_context(viewport=viewport, device_scale_factor=1)
    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    page.goto(real_site)
    page.set_input_files("#file", str(DATA / "chelsea.jpg"))
    assert result_heading(page).startswith("Not a snake")
    assert page.inner_text(".note") == "This does not look like a snake."
    assert page.locator(".result meter").count() == 18
    page.wait_for_function("document.querySelector('.result img.preview').complete")
    path = screenshot(page, f"result-{size_name}")
    assert page.evaluate("window.__cspViolations") == []
    context.close()
    with Image.open(path) as shot:
        assert shot.width == viewport["width"]


def test_the_committed_screenshots_are_there_for_the_docs() -> None:
    root = Path(__file__).parent.parent
    for name in ("result-desktop", "result-phone"):
        screenshot = root / "docs/screenshots" / f"{name}.png"
        assert screenshot.is_file()
        assert shown_in_the_docs(screenshot), f"no page shows {screenshot.relative_to(root)}"

