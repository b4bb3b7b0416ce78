"""examples/frontend/ on its own origin calls the API with fetch(): CORS works in a real browser."""
from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from snakes_web import create_app
from tests.browser import live_server
from tests.conftest import COLOURS, FakePredictor, ImageServer, Route, image_bytes
from tests.test_browser import browser  # noqa: F401 - the module-scoped Chromium fixture

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).parent.parent / "examples" / "frontend"


@pytest.fixture(scope="module")
def frontend() -> Iterator[str]:
    """Serve examples/frontend/ as `python -m http.server` would, on its own port (its own origin)."""
    handler = functools.partial(_QuietHandler, directory=str(EXAMPLE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def api_server(origins: str) -> Any:
    return live_server(create_app({"PREDICTOR": FakePredictor(), "ALLOW_PRIVATE_URLS": True,
                                   "CORS_ORIGINS": origins,
                                   "METRICS_PORT": 0}))  # /metrics on the app's port: no gunicorn master here


def test_the_example_uploads_a_photo_to_the_api_on_another_origin(browser: Any, frontend: str) -> None:  # noqa: F811
    with api_server("*") as api:
        page = browser.new_page()
        page.goto(f"{frontend}/index.html?api={api}")
        page.wait_for_selector("#model:has-text('fake-colours')")  # a simple cross-origin GET
        page.set_input_files("#photo", files=[{"name": "b.png", "mimeType": "image/png",
                                               "buffer": image_bytes(colour=COLOURS["blue"])}])
        page.click("button[type=submit]")
        page.wait_for_selector("#answer li")
        assert page.inner_text("#answer li >> nth=0").startswith("blue")
        assert len(page.inner_text("#answer .muted").split()[-1]) == 32  # X-Request-ID was readable
        page.close()


def test_a_url_sent_as_json_passes_the_preflight(browser: Any, frontend: str) -> None:  # noqa: F811
    images = ImageServer()
    images.routes["/g.png"] = Route(image_bytes(colour=COLOURS["green"]), headers={"Content-Type": "image/png"})
    try:
        with api_server(frontend) as api:  # only this origin is allowed
            page = browser.new_page()
            page.goto(f"{frontend}/index.html?api={api}")
            page.fill("#link", images.url("/g.png"))
            page.click("button[type=submit]")
            page.wait_for_selector("#answer li")
            assert page.inner_text("#answer li >> nth=0").startswith("green")
            page.close()
            metrics = requests.get(f"{api}/metrics", timeout=10).text  # the server saw the browser's preflight
            assert 'snakes_http_requests_total{endpoint="/api/v1/predict",method="OPTIONS",status="204"} 1.0' in metrics
    finally:
        images.close()


def test_an_origin_that_is_not_allowed_is_blocked_by_the_browser(browser: Any, frontend: str) -> None:  # noqa: F811
    with api_server("https://somewhere-else.example") as api:
        page = browser.new_page()
        page.goto(f"{frontend}/index.html?api={api}")
        page.set_input_files("#photo", files=[{"name": "r.png", "mimeType": "image/png", "buffer": image_bytes()}])
        page.click("button[type=submit]")
        page.wait_for_selector("#answer .problem")
        assert "blocked" in page.inner_text("#answer .problem")
        page.close()
