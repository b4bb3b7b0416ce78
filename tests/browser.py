"""Helpers for the browser tests: Debian's Chromium under Playwright, and a live server on loopback."""
from __future__ import annotations

import base64
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic"]
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}

#: Runs before the page's own code in every document: records CSP violations where a test can read them.
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__cspViolations.push(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline')));
"""


def assert_strict_csp(base: str) -> None:
    """Check that the page at ``base`` carries security.py's strict policy, which the browser tests watch."""
    import requests

    from snakes_web.web.security import CONTENT_SECURITY_POLICY

    assert requests.get(base, timeout=10).headers.get("Content-Security-Policy") == CONTENT_SECURITY_POLICY


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with Werkzeug on 127.0.0.1 in a thread; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def chromium() -> Iterator[Any]:
    """Start Debian's Chromium headless (never a downloaded browser); fail, not skip, when it is missing."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does it)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def watched_page(browser: Any, viewport: dict[str, int] = DESKTOP) -> Iterator[Any]:
    """Yield a page whose CSP violations and script errors fail the test (4xx answers may be expected)."""
    context = browser.new_context(viewport=viewport)
    context.add_init_script(WATCH_CSP)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    violations = tab.evaluate("window.__cspViolations || []")
    context.close()
    assert violations == [], violations
    assert [e for e in errors if "status of 4" not in e] == [], errors


def as_file_in_page(page: Any, data: bytes, name: str, mime: str) -> Any:
    """Return a handle to a DataTransfer holding one file, built inside the page."""
    return page.evaluate_handle(
        """([b64, name, mime]) => {
             const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
             const transfer = new DataTransfer();
             transfer.items.add(new File([bytes], name, {type: mime}));
             return transfer;
           }""", [base64.b64encode(data).decode("ascii"), name, mime])


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def shown_in_the_docs(screenshot: Path) -> bool:
    """Tell whether README.md or a docs page shows ``screenshot`` by the path that resolves from that page."""
    root = Path(__file__).parent.parent
    for page in [root / "README.md", *sorted((root / "docs").rglob("*.md"))]:
        link = re.escape(os.path.relpath(screenshot, page.parent).replace(os.sep, "/"))
        if re.search(rf"\]\({link}[)\s]|src=\"{link}\"", page.read_text()):
            return True
    return False
