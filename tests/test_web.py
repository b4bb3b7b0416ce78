"""The HTML page: one form, a server-rendered result, errors shown with the form kept."""
from __future__ import annotations

import io
import re
from typing import Any

from tests.conftest import COLOURS, image_bytes


def test_the_home_page_has_the_form(client: Any) -> None:
    page = client.get("/").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page
    assert 'type="file"' in page and 'name="file"' in page and 'accept="image/*"' in page
    assert 'name="url"' in page


def test_the_home_page_shows_the_model_and_its_labels(client: Any) -> None:
    page = client.get("/").get_data(as_text=True)
    assert "fake-colours" in page
    assert all(f"<li>{label}</li>" in page for label in COLOURS)


def test_a_posted_photo_gets_a_result_page(upload: Any) -> None:
    response = upload(image_bytes(colour=COLOURS["blue"]), path="/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    heading = re.search(r"<h2[^>]*>(.*?)</h2>", page, flags=re.S)
    assert heading is not None and "Blue" in heading.group(1)
    assert page.count("<meter") == 3
    assert 'src="data:image/jpeg;base64,' in page  # the preview, never a file on disk
    assert 'name="file"' in page  # the form stays, for the next photo


def test_a_posted_url_gets_a_result_page(client: Any, image_server: Any) -> None:
    from tests.conftest import Route

    image_server.routes["/g.png"] = Route(image_bytes(colour=COLOURS["green"]),
                                          headers={"Content-Type": "image/png"})
    response = client.post("/", data={"url": image_server.url("/g.png"),
                                      "file": (io.BytesIO(b""), "")})
    assert response.status_code == 200
    assert "Green" in response.get_data(as_text=True)


def test_an_unsure_result_says_so(app: Any, upload: Any) -> None:
    grey = image_bytes(colour=(120, 120, 120))
    assert "unsure" in upload(grey, path="/").get_data(as_text=True)
    assert "unsure" not in upload(image_bytes(colour=(250, 0, 0)), path="/").get_data(as_text=True)


def test_an_error_is_shown_on_the_page_with_a_4xx_and_the_url_kept(client: Any) -> None:
    response = client.post("/", data={"url": "ftp://example.org/snake.jpg"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'role="alert"' in page and "http://" in page
    assert 'value="ftp://example.org/snake.jpg"' in page


def test_a_non_image_is_explained_on_the_page(upload: Any) -> None:
    response = upload(b"%PDF-1.4 not an image", path="/", name="scan.pdf", content_type="application/pdf")
    assert response.status_code == 415
    assert "not an image" in response.get_data(as_text=True)


def test_nothing_posted_is_explained(client: Any) -> None:
    response = client.post("/", data={"url": ""})
    assert response.status_code == 400 and "image file" in response.get_data(as_text=True)


def test_an_upload_over_the_limit_is_a_413_page(upload: Any) -> None:
    response = upload(b"\0" * (3 * 1024 * 1024), path="/")
    assert response.status_code == 413
    page = response.get_data(as_text=True)
    assert response.mimetype == "text/html" and "too large" in page
    assert 'name="file"' in page  # the form is kept


def test_json_is_not_what_the_form_posts(client: Any) -> None:
    response = client.post("/", json={"url": "http://example.org/a.png"})
    assert response.status_code == 415 and response.mimetype == "text/html"


def test_an_unknown_page_is_an_html_404(client: Any) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "nothing at this address" in response.get_data(as_text=True)


def test_the_stylesheet_is_served_locally(client: Any) -> None:
    with client.get("/static/style.css") as response:
        assert response.status_code == 200 and response.mimetype == "text/css"


def test_the_page_has_no_inline_script_or_style_so_a_strict_csp_holds(client: Any, upload: Any) -> None:
    pages = [client.get("/").get_data(as_text=True), upload(image_bytes(), path="/").get_data(as_text=True),
             client.get("/api/v1/docs").get_data(as_text=True)]
    for page in pages:
        scripts = re.findall(r"<script\b[^>]*>", page)
        assert all(' src="/static/' in tag for tag in scripts)  # files from static/ only, no inline code
        assert "<style" not in page and " style=" not in page
        assert not re.search(r"\son[a-z]+=", page)  # no onclick= and friends
        links = [u for u in re.findall(r'(?:src|href)="([^"]*)"', page) if not u.startswith("data:")]
        assert links and all(u.startswith(("/", "#")) for u in links)  # nothing from a CDN


def test_the_page_script_knows_the_api(client: Any) -> None:
    page = client.get("/").get_data(as_text=True)
    assert 'data-api="/api/v1/predict"' in page
