"""'Is this right?': receipts on request, answers that bring the photo back, validation, privacy, quota, rate limit."""
from __future__ import annotations

import base64
import io
import re
from typing import Any

import pytest
from PIL import Image
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from snakes_web import create_app
from snakes_web.web.feedback import feedback_of
from tests.conftest import COLOURS, image_bytes

API = "/api/v1/feedback"


def red_photo() -> bytes:
    """Return the photo most tests classify and answer about."""
    return image_bytes("JPEG", (640, 480), COLOURS["red"])


def multipart(client: Any, path: str, fields: dict[str, Any], address: str = "127.0.0.1",
              headers: dict[str, str] | None = None) -> Any:
    """Post fields (FileStorage for files) as multipart, encoded in memory (the test client spools to disk)."""
    boundary, body = encode_multipart(fields)
    return client.post(path, data=body, content_type=f"multipart/form-data; boundary={boundary}",
                       environ_base={"REMOTE_ADDR": address}, headers=headers or {})


def predict(client: Any, data: bytes | None = None, address: str = "127.0.0.1", query: str = "?feedback=1") -> Any:
    """Classify an image through the API (asking for a receipt) and return the answer."""
    data = data if data is not None else red_photo()
    response = multipart(client, "/api/v1/predict" + query,
                         {"file": FileStorage(io.BytesIO(data), "photo.jpg", content_type="image/jpeg")}, address)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def answer(client: Any, receipt: str, photo: bytes | None = None, address: str = "127.0.0.1",
           headers: dict[str, str] | None = None, **fields: str) -> Any:
    """Send feedback about a prediction with its photo again, as the page's script does (multipart)."""
    photo = photo if photo is not None else red_photo()
    parts: dict[str, Any] = {"receipt": receipt, **fields,
                             "file": FileStorage(io.BytesIO(photo), "photo.jpg", content_type="image/jpeg")}
    return multipart(client, API, parts, address, headers)


def asked(client: Any, photo: bytes | None = None, address: str = "127.0.0.1") -> str:
    """Classify ``photo`` (the red one by default) and return its receipt."""
    return str(predict(client, photo, address)["feedback_receipt"])


def stored(app: Any) -> list[Any]:
    """Return every stored entry, with its image."""
    return list(feedback_of(app).store.entries(with_images=True))


def make_app(settings: dict[str, Any], **overrides: Any) -> Any:
    """Create an app on the test settings with some of them changed."""
    return create_app({**settings, **overrides})


# --- the receipt: only when asked, small, and nothing stored until the visitor answers -------------------

def test_an_answer_carries_a_receipt_only_when_asked_and_nothing_is_stored_until_the_visitor_answers(
        app: Any, client: Any) -> None:
    plain = predict(client, query="")
    assert "feedback_receipt" not in plain and "feedback_token" not in plain
    for _ in range(3):
        body = predict(client)
        assert isinstance(body["feedback_receipt"], str) and 100 < len(body["feedback_receipt"]) < 400
    assert predict(client, query="?feedback=0").keys() == plain.keys()
    assert stored(app) == []


def test_a_bad_feedback_parameter_is_a_400(client: Any) -> None:
    response = multipart(client, "/api/v1/predict?feedback=maybe",
                         {"file": FileStorage(io.BytesIO(red_photo()), "p.jpg", content_type="image/jpeg")})
    assert response.status_code == 400 and "`feedback` must be 1" in response.get_json()["detail"]


@pytest.mark.parametrize("fields, verdict, label, other", [
    ({"verdict": "confirm"}, "confirm", "red", None),
    ({"verdict": "correct", "label": "green"}, "correct", "green", None),
    ({"verdict": "correct", "label": "red"}, "confirm", "red", None),  # "correct" to the same label confirms
    ({"label": "blue"}, "correct", "blue", None),  # a label alone is a correction
    ({"verdict": "none", "other": "  a  garter\x07 snake  "}, "none", None, "a garter snake"),
    ({"verdict": "none"}, "none", None, None),
])
def test_each_answer_is_stored_as_said(app: Any, client: Any, fields: dict[str, str], verdict: str,
                                       label: str | None, other: str | None) -> None:
    response = answer(client, asked(client), **fields)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["stored"] is True and body["verdict"] == verdict and body["label"] == label
    [row] = stored(app)
    assert (row.id, row.verdict, row.label, row.other, row.predicted) == (body["id"], verdict, label, other, "red")
    assert row.model == "fake-colours" and 0.5 < row.probability <= 1


@pytest.mark.parametrize("fields, status, message", [
    ({"verdict": "maybe"}, 400, "`verdict` must be"),
    ({}, 400, "`verdict` must be"),
    ({"verdict": "correct", "label": "purple"}, 400, "one of the model's labels"),
    ({"verdict": "correct"}, 400, "one of the model's labels"),
    ({"verdict": "none", "other": "x" * 101}, 400, "at most 100"),
])
def test_bad_answers_are_refused_and_nothing_is_stored(app: Any, client: Any, fields: dict[str, Any], status: int,
                                                       message: str) -> None:
    response = answer(client, asked(client), **fields)
    assert response.status_code == status and response.mimetype == "application/problem+json"
    assert message in response.get_json()["detail"]
    assert stored(app) == []


def test_a_json_answer_with_a_field_that_is_not_a_string_is_refused(client: Any) -> None:
    response = client.post(API, json={"receipt": asked(client), "verdict": "confirm", "label": 7})
    assert response.status_code == 400 and "must be a string" in response.get_json()["detail"]


@pytest.mark.parametrize("receipt, message", [
    ("", "Send the `feedback_receipt`"),
    ("not-a-receipt", "not one this server issued"),
    ("é" * 10, "not one this server issued"),
    ("x" * 5000, "Send the `feedback_receipt`"),
])
def test_receipts_we_did_not_issue_are_refused(client: Any, receipt: str, message: str) -> None:
    response = answer(client, receipt, verdict="confirm")
    assert response.status_code == 400 and message in response.get_json()["detail"]


def test_a_tampered_receipt_is_refused(app: Any, client: Any) -> None:
    receipt = asked(client)
    payload, _, rest = receipt.partition(".")
    meta = base64.urlsafe_b64decode(payload + "==").replace(b'"red"', b'"blue"')
    assert b'"blue"' in meta  # the label was there to change
    forged = base64.urlsafe_b64encode(meta).rstrip(b"=").decode() + "." + rest
    assert answer(client, forged, verdict="confirm").status_code == 400
    assert stored(app) == []


def test_a_receipt_signed_with_another_key_is_refused(settings: dict[str, Any]) -> None:
    other = make_app(settings, SECRET_KEY="another server's key, 32 bytes long").test_client()
    ours = make_app(settings, SECRET_KEY="our own key, also 32 bytes long!!").test_client()
    response = answer(ours, asked(other), verdict="confirm")
    assert response.status_code == 400 and "not one this server issued" in response.get_json()["detail"]


@pytest.mark.parametrize("key", ["hunter2", "k" * 31, "é" * 15])  # é is 2 bytes in UTF-8: 30 bytes
def test_a_secret_key_under_32_bytes_stops_start_up_saying_how_to_make_one(settings: dict[str, Any],
                                                                          key: str) -> None:
    from snakes_web.config import ConfigError

    with pytest.raises(ConfigError) as refused:
        make_app(settings, SECRET_KEY=key)
    message = str(refused.value)
    assert "SNAKES_SECRET_KEY" in message and "secrets.token_urlsafe(32)" in message
    assert key not in message  # the message goes to logs: it never repeats the key


@pytest.mark.parametrize("key", ["", "k" * 32, "é" * 16])  # empty: one made once and kept in the database
def test_an_empty_key_or_one_of_32_bytes_signs_receipts(settings: dict[str, Any], key: str) -> None:
    client = make_app(settings, SECRET_KEY=key).test_client()
    assert answer(client, asked(client), verdict="confirm").status_code == 201


def test_an_old_receipt_is_refused(settings: dict[str, Any]) -> None:
    client = make_app(settings, FEEDBACK_TOKEN_TTL=-1).test_client()
    response = answer(client, asked(client), verdict="confirm")
    assert response.status_code == 400 and "too old" in response.get_json()["detail"]


def test_an_old_client_that_sends_a_token_is_told_what_changed(client: Any) -> None:
    response = client.post(API, json={"token": "a.b.c.d", "verdict": "confirm"})
    assert response.status_code == 400 and "?feedback=1" in response.get_json()["detail"]


# --- one answer per prediction, about the photo that was classified -----------------------------------------

@pytest.mark.parametrize("suffix", ["", "!!!!", "====", " ", "\n"])
def test_a_prediction_is_answered_once_however_its_receipt_is_spelled(app: Any, client: Any, suffix: str) -> None:
    receipt = asked(client)
    assert answer(client, receipt, verdict="confirm").status_code == 201
    again = answer(client, receipt + suffix, verdict="correct", label="green")
    assert again.status_code in (400, 409), again.get_json()
    if again.status_code == 409:
        assert again.get_json()["type"].endswith(":already-sent")
    assert [row.label for row in stored(app)] == ["red"]


def test_the_duplicate_check_is_on_the_signed_nonce_not_the_string(app: Any, client: Any) -> None:
    """``!!!!`` after a signature still verifies (base64 decoding skips it); the nonce is what counts."""
    receipt = asked(client)
    assert answer(client, receipt, verdict="confirm").status_code == 201
    again = answer(client, receipt + "!!!!", verdict="confirm")
    assert again.status_code == 409 and again.get_json()["type"].endswith(":already-sent")
    assert len(stored(app)) == 1


def test_the_same_photo_classified_twice_is_two_predictions(app: Any, client: Any) -> None:
    first, second = asked(client), asked(client)
    assert first != second
    assert [answer(client, r, verdict="confirm").status_code for r in (first, second)] == [201, 201]


def test_a_photo_other_than_the_one_classified_is_refused(app: Any, client: Any) -> None:
    receipt = asked(client)
    other = image_bytes("JPEG", (640, 480), COLOURS["green"])
    response = answer(client, receipt, other, verdict="confirm")
    assert response.status_code == 400 and "not the photo that was classified" in response.get_json()["detail"]
    nothing = multipart(client, API, {"receipt": receipt, "verdict": "confirm"})
    assert nothing.status_code == 400 and "Send the photo back" in nothing.get_json()["detail"]
    assert stored(app) == []
    assert answer(client, receipt, verdict="confirm").status_code == 201  # the right photo still may


def test_an_answer_about_a_url_fetches_it_again_and_checks_it_is_the_same(app: Any, client: Any,
                                                                         image_server: Any) -> None:
    from tests.conftest import Route

    image_server.routes["/snake.jpg"] = Route(red_photo(), headers={"Content-Type": "image/jpeg"})
    url = image_server.url("/snake.jpg")
    body = client.post("/api/v1/predict?feedback=1", json={"url": url}).get_json()
    image_server.routes["/changed.jpg"] = Route(image_bytes("JPEG", (640, 480), COLOURS["blue"]),
                                                headers={"Content-Type": "image/jpeg"})
    changed = client.post(API, json={"receipt": body["feedback_receipt"], "verdict": "confirm",
                                     "url": image_server.url("/changed.jpg")})
    assert changed.status_code == 400 and "not the photo that was classified" in changed.get_json()["detail"]
    same = client.post(API, json={"receipt": body["feedback_receipt"], "verdict": "confirm", "url": url})
    assert same.status_code == 201, same.get_json()
    assert [row.label for row in stored(app)] == ["red"]


def test_a_forged_receipt_fetches_nothing(client: Any, image_server: Any) -> None:
    from tests.conftest import Route

    image_server.routes["/snake.jpg"] = Route(red_photo(), headers={"Content-Type": "image/jpeg"})
    response = client.post(API, json={"receipt": "forged.receipt.here", "verdict": "confirm",
                                      "url": image_server.url("/snake.jpg")})
    assert response.status_code == 400 and image_server.hits == []


def test_the_answered_photo_is_decoded_under_the_prediction_limits(settings: dict[str, Any]) -> None:
    """A photo classified under roomy limits and answered under tight ones is refused as a prediction would be."""
    photo = red_photo()
    roomy = make_app(settings, SECRET_KEY="one key for both apps, 32+ bytes!")
    tight = make_app(settings, SECRET_KEY="one key for both apps, 32+ bytes!", MAX_IMAGE_PIXELS=10_000)
    receipt = asked(roomy.test_client(), photo)
    response = answer(tight.test_client(), receipt, photo, verdict="confirm")
    assert response.status_code == 413 and stored(tight) == []


def test_the_key_made_by_one_worker_is_the_key_of_every_other(settings: dict[str, Any]) -> None:
    """Two apps on one database (two workers): a receipt from one is answered through the other."""
    first, second = make_app(settings).test_client(), make_app(settings).test_client()
    assert answer(second, asked(first), verdict="confirm").status_code == 201


# --- the photo kept -----------------------------------------------------------------------------------

def gps_photo(size: tuple[int, int]) -> bytes:
    """Return a JPEG whose EXIF holds a camera, a GPS position and an orientation."""
    image = Image.effect_noise(size, 60).convert("RGB")
    exif = Image.Exif()
    exif[0x010F] = "SnakeCam"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90°
    exif.get_ifd(0x8825).update({1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)})
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, quality=95, icc_profile=b"\0" * 128, comment=b"secret")
    return out.getvalue()


def test_the_stored_photo_is_re_encoded_upright_small_and_without_metadata(app: Any, client: Any) -> None:
    photo = gps_photo((1200, 900))
    assert Image.open(io.BytesIO(photo)).getexif().get_ifd(0x8825)  # the upload does carry a position
    assert answer(client, asked(client, photo), photo, verdict="confirm").status_code == 201
    [row] = stored(app)
    kept = Image.open(io.BytesIO(row.image))
    assert kept.format == "JPEG" and kept.size == (row.width, row.height) == (384, 512)  # upright, long side 512
    assert not kept.getexif() and not {"exif", "icc_profile", "comment"} & set(kept.info)
    assert b"SnakeCam" not in row.image and b"secret" not in row.image
    assert row.image_bytes == len(row.image) <= app.config["FEEDBACK_IMAGE_BYTES"]


def test_a_photo_that_compresses_badly_is_still_kept_within_the_byte_cap(settings: dict[str, Any]) -> None:
    app = make_app(settings, FEEDBACK_IMAGE_BYTES=40_000)
    client = app.test_client()
    noise = io.BytesIO()
    Image.effect_noise((1000, 800), 120).convert("RGB").save(noise, format="JPEG", quality=95)
    photo = noise.getvalue()
    assert answer(client, asked(client, photo), photo, verdict="confirm").status_code == 201
    [row] = stored(app)
    assert row.image_bytes <= 40_000 and max(row.width, row.height) <= 512


# --- the page, without JavaScript ---------------------------------------------------------------------

def test_the_page_says_photos_are_not_stored(client: Any) -> None:
    page = client.get("/").get_data(as_text=True)
    assert "Your photo is not stored" in page


def page_forms(page: str) -> list[dict[str, str]]:
    """Return the receipt and the preview (the `image` field) of each feedback form on a result page."""
    receipts = re.findall(r'name="receipt" value="([^"]+)"', page)
    previews = re.findall(r'name="image" value="([^"]+)"', page)
    assert len(receipts) == len(previews)
    return [{"receipt": r, "image": i} for r, i in zip(receipts, previews, strict=True)]


def test_the_result_page_asks_and_its_form_stores_without_javascript(app: Any, upload: Any, client: Any) -> None:
    page = upload(image_bytes(colour=COLOURS["green"]), path="/").get_data(as_text=True)
    assert "Is this right?" in page and "Photos you do not answer about are never stored" in page
    form = re.search(r'<form class="feedback" method="post" action="([^"]+)"', page)
    options = re.findall(r"<option>([^<]+)</option>", page)
    [fields] = page_forms(page)
    assert form and form.group(1) == "/feedback" and sorted(options) == ["blue", "red"]
    assert f'src="data:image/jpeg;base64,{fields["image"]}"' in page  # the preview it shows is what goes back
    done = client.post("/feedback", data={**fields, "verdict": "correct", "label": "blue"})
    assert done.status_code == 200 and "Stored: it is blue, not green." in done.get_data(as_text=True)
    assert [row.label for row in stored(app)] == ["blue"]


def test_the_page_form_has_a_button_per_verdict_and_enter_in_the_words_box_means_none_of_these(
        upload: Any) -> None:
    """Enter in a text box presses the form's first submit button: it must be "None of these", not "Yes"."""
    page = upload(image_bytes(colour=COLOURS["green"]), path="/").get_data(as_text=True)
    form = page[page.index('<form class="feedback"'):page.index("</form>", page.index('<form class="feedback"'))]
    buttons = re.findall(r'<button type="submit" name="verdict" value="(\w+)"', form)
    assert buttons[0] == "none" and sorted(set(buttons)) == ["confirm", "correct", "none"]


def test_several_photos_get_a_question_each_and_each_answer_stores_its_own_photo(app: Any, client: Any) -> None:
    from tests.test_batch import post_files
    parts = [(f"{name}.png", image_bytes(colour=COLOURS[name])) for name in ("red", "green", "blue")]
    page = post_files(client, "/", parts).get_data(as_text=True)
    forms = page_forms(page)
    ids = re.findall(r'id="(feedback-[^"]+-label)"', page)
    assert len(forms) == 3 and len({f["receipt"] for f in forms}) == 3 and len(set(ids)) == 3
    for fields in forms:
        assert client.post("/feedback", data={**fields, "verdict": "confirm"}).status_code == 200
    assert sorted(row.label for row in stored(app)) == ["blue", "green", "red"]


@pytest.mark.parametrize("how", ["page form", "script"])
def test_the_largest_preview_comes_back_within_the_form_limits_whatever_the_feedback_image_settings(
        settings: dict[str, Any], how: str) -> None:
    """Noise is what JPEG compresses worst; the preview's size is the page's own (320 px), not the settings'.

    The page's form posts it url-encoded (bounded by MAX_UPLOAD_BYTES only); the script, as a multipart
    text field, which MAX_FORM_MEMORY_SIZE bounds: it must fit there with room to spare.
    """
    import urllib.parse

    import numpy as np

    app = make_app(settings, FEEDBACK_IMAGE_BYTES=4_000_000, FEEDBACK_IMAGE_SIDE=2048)
    client = app.test_client()
    noise = Image.fromarray(np.random.default_rng(3).integers(0, 256, (320, 320, 3), dtype=np.uint8))
    out = io.BytesIO()
    noise.save(out, format="PNG")
    page = multipart(client, "/", {"file": FileStorage(io.BytesIO(out.getvalue()), "n.png")}).get_data(as_text=True)
    [fields] = page_forms(page)
    assert len(fields["image"]) < app.config["MAX_FORM_MEMORY_SIZE"] / 2
    if how == "page form":
        done = client.post("/feedback", data=urllib.parse.urlencode({**fields, "verdict": "confirm"}),
                           content_type="application/x-www-form-urlencoded")
    else:
        done = multipart(client, API, {**fields, "verdict": "confirm"})
    assert done.status_code in (200, 201) and len(stored(app)) == 1


@pytest.mark.parametrize("path", ["/feedback", API])
def test_a_multipart_feedback_field_over_the_form_limit_is_a_clear_413(app: Any, client: Any, path: str) -> None:
    field = "A" * (app.config["MAX_FORM_MEMORY_SIZE"] + 1)
    response = multipart(client, path, {"receipt": asked(client), "image": field, "verdict": "confirm"})
    text = response.get_json()["detail"] if path == API else response.get_data(as_text=True)
    assert response.status_code == 413 and "field that is too long" in text


def test_a_bad_form_post_gets_the_html_error_page(client: Any) -> None:
    response = client.post("/feedback", data={"receipt": "nope", "verdict": "confirm"})
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "not one this server issued" in response.get_data(as_text=True)


def test_feedback_turned_off_means_no_receipt_no_question_and_a_404(settings: dict[str, Any], upload: Any) -> None:
    app = make_app(settings, FEEDBACK=False)
    client = app.test_client()
    assert "feedback_receipt" not in predict(client)
    page = client.post("/", data={"file": (io.BytesIO(image_bytes()), "p.png")}).get_data(as_text=True)
    assert 'class="feedback"' not in page
    assert answer(client, "anything", verdict="confirm").status_code == 404


# --- bounds: quota and rate limit -----------------------------------------------------------------------

def test_past_the_entry_quota_feedback_gets_507_and_a_purge_makes_room(settings: dict[str, Any]) -> None:
    app = make_app(settings, FEEDBACK_MAX_ITEMS=2)
    client = app.test_client()
    statuses = [answer(client, asked(client), verdict="confirm").status_code for _ in range(3)]
    assert statuses == [201, 201, 507]
    full = answer(client, asked(client), verdict="confirm")
    assert full.mimetype == "application/problem+json" and full.get_json()["type"].endswith(":quota-full")
    assert len(stored(app)) == 2
    assert feedback_of(app).store.purge() == 2
    assert answer(client, asked(client), verdict="confirm").status_code == 201


def test_past_the_byte_quota_feedback_gets_507(settings: dict[str, Any]) -> None:
    app = make_app(settings, FEEDBACK_MAX_BYTES=150_000)
    client = app.test_client()
    photo = gps_photo((300, 300))  # noise: some 50 KB re-encoded
    sizes = []
    while True:
        response = answer(client, asked(client, photo), photo, verdict="confirm")
        if response.status_code != 201:
            break
        sizes.append(stored(app)[-1].image_bytes)
    assert response.status_code == 507 and len(sizes) >= 2 and sum(sizes) <= 150_000
    assert feedback_of(app).store.usage() == (len(sizes), sum(sizes))


def test_the_rate_limit_is_per_client_and_answers_429_with_retry_after(settings: dict[str, Any]) -> None:
    client = make_app(settings, FEEDBACK_RATE_LIMIT="3/minute").test_client()
    tokens = [asked(client) for _ in range(5)]
    statuses = [answer(client, token, verdict="confirm").status_code for token in tokens[:4]]
    assert statuses == [201, 201, 201, 429]
    limited = answer(client, tokens[3], verdict="confirm")
    assert limited.status_code == 429 and limited.mimetype == "application/problem+json"
    assert limited.get_json()["type"].endswith(":rate-limited") and 1 <= int(limited.headers["Retry-After"]) <= 60
    assert answer(client, tokens[4], address="192.0.2.7", verdict="confirm").status_code == 201  # another client


def test_a_prediction_costs_the_rate_limiter_nothing(settings: dict[str, Any]) -> None:
    """The limiter resolves limits for feedback's routes only: a prediction, page or API, never reaches it."""
    from snakes_web.web.feedback import feedback_of

    app = make_app(settings, FEEDBACK_RATE_LIMIT="3/minute")
    manager = feedback_of(app).limiter.limit_manager
    resolved: list[str | None] = []
    original = manager.resolve_limits
    manager.resolve_limits = lambda app, endpoint, *rest: (resolved.append(endpoint), original(app, endpoint, *rest))[1]
    client = app.test_client()
    token = asked(client)
    assert client.post("/", data={"file": (io.BytesIO(red_photo()), "p.jpg")}).status_code == 200
    assert client.get("/api/v1/model").status_code == 200
    assert resolved == []
    assert answer(client, token, verdict="confirm").status_code == 201
    assert resolved and all(endpoint.startswith("feedback.") for endpoint in resolved)


def test_the_page_form_and_the_api_share_one_count(settings: dict[str, Any]) -> None:
    client = make_app(settings, FEEDBACK_RATE_LIMIT="2/minute").test_client()
    page_form = page_forms(client.post("/", data={"file": (io.BytesIO(red_photo()), "p.jpg")}).get_data(as_text=True))
    tokens = [asked(client) for _ in range(3)]
    assert client.post("/feedback", data={**page_form[0], "verdict": "confirm"}).status_code == 200
    assert answer(client, tokens[1], verdict="confirm").status_code == 201
    assert answer(client, tokens[2], verdict="confirm").status_code == 429


def test_the_page_form_is_rate_limited_too(settings: dict[str, Any]) -> None:
    client = make_app(settings, FEEDBACK_RATE_LIMIT="1/minute").test_client()
    forms = [page_forms(client.post("/", data={"file": (io.BytesIO(red_photo()), "p.jpg")}).get_data(as_text=True))[0]
             for _ in range(2)]
    assert client.post("/feedback", data={**forms[0], "verdict": "confirm"}).status_code == 200
    limited = client.post("/feedback", data={**forms[1], "verdict": "confirm"})
    assert limited.status_code == 429 and limited.mimetype == "text/html" and "Retry-After" in limited.headers


def test_the_rate_limit_is_shared_by_every_worker_on_the_database(settings: dict[str, Any], database_url: str) -> None:
    """Two apps (two workers, or two replicas on PostgreSQL) count one client's feedback together."""
    apps = [make_app(settings, DATABASE_URL=database_url, FEEDBACK_RATE_LIMIT="4/minute") for _ in range(2)]
    clients = [a.test_client() for a in apps]
    try:
        statuses = [answer(clients[i % 2], asked(clients[i % 2]), verdict="confirm").status_code for i in range(6)]
    finally:
        for a in apps:
            feedback_of(a).store.database.dispose()  # PostgreSQL connections are closed, not left to the GC
    assert statuses == [201, 201, 201, 201, 429, 429]


# --- the owner page -------------------------------------------------------------------------------------

def test_the_owner_page_is_off_without_a_token(client: Any) -> None:
    assert client.get("/owner").status_code == 404


def test_the_owner_page_needs_the_token(settings: dict[str, Any]) -> None:
    client = make_app(settings, OWNER_TOKEN="s3cret").test_client()
    assert client.get("/owner").status_code == 401
    assert "Basic" in client.get("/owner").headers["WWW-Authenticate"]
    wrong = base64.b64encode(b"owner:guess").decode()
    assert client.get("/owner", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
    assert client.get("/owner", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_the_owner_page_shows_recent_photos_and_the_confusion(settings: dict[str, Any]) -> None:
    client = make_app(settings, OWNER_TOKEN="s3cret").test_client()
    for fields in ({"verdict": "confirm"}, {"verdict": "correct", "label": "green"},
                   {"verdict": "correct", "label": "green"}, {"verdict": "none", "other": "a <b>lizard</b>"}):
        assert answer(client, asked(client), **fields).status_code == 201
    auth = base64.b64encode(b"me:s3cret").decode()
    page = client.get("/owner", headers={"Authorization": f"Basic {auth}"}).get_data(as_text=True)
    assert page.count('<img src="data:image/jpeg;base64,') == 4
    assert "4 answers stored" in page and "&lt;b&gt;lizard&lt;/b&gt;" in page and "<b>lizard" not in page
    header = re.search(r"<thead><tr><th scope=\"col\">predicted</th>(.*?)</tr></thead>", page).group(1)
    assert re.findall(r">([^<]+)</th>", header) == ["green", "none of these", "red"]
    row = re.search(r'<tr><th scope="row">red</th>(.*?)</tr>', page).group(1)
    assert re.findall(r">(\d*)</td>", row) == ["2", "1", "1"]


# --- when the database is not there ----------------------------------------------------------------------

def test_without_a_database_predictions_still_answer_and_feedback_says_503(settings: dict[str, Any], tmp_path: Any,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    client = make_app(settings, DATA_DIR=str(blocker / "data")).test_client()
    for _ in range(3):
        assert "feedback_receipt" not in predict(client)  # answered, without the question
    assert sum("feedback is unavailable" in r.getMessage() for r in caplog.records) == 1  # at start, then every 30 s
    page = client.post("/", data={"file": (io.BytesIO(image_bytes()), "p.png")}).get_data(as_text=True)
    assert 'class="feedback"' not in page and "Red" in page
    response = answer(client, "x" * 50, verdict="confirm")
    assert response.status_code == 503 and response.get_json()["type"].endswith(":storage-unavailable")


def test_a_rate_limit_that_does_not_parse_stops_start_up_naming_the_setting() -> None:
    from snakes_web.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="SNAKES_FEEDBACK_RATE_LIMIT"):
        load_settings(environ={"SNAKES_FEEDBACK_RATE_LIMIT": "lots per fortnight"})


# --- the database never slows a prediction ---------------------------------------------------------------

def test_a_migration_error_leaves_predictions_answering_and_feedback_says_503(settings: dict[str, Any],
                                                                             tmp_path: Any,
                                                                             caplog: pytest.LogCaptureFixture) -> None:
    """Not a SQLAlchemyError or an OSError: Alembic's own (a database from a newer version of the app)."""
    import sqlite3

    data = tmp_path / "newer"
    data.mkdir()
    with sqlite3.connect(data / "snakes-web.db") as connection:
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        connection.execute("INSERT INTO alembic_version VALUES ('9999')")
    client = make_app(settings, DATA_DIR=str(data)).test_client()
    assert "feedback_receipt" not in predict(client)
    assert any("CommandError" in r.getMessage() for r in caplog.records)
    response = answer(client, "x" * 50, verdict="confirm")
    assert response.status_code == 503 and response.get_json()["type"].endswith(":storage-unavailable")


def test_a_database_that_never_answers_costs_predictions_nothing(settings: dict[str, Any]) -> None:
    """A PostgreSQL address that accepts connections and never says a word: start-up gives up in seconds."""
    import socket
    import time

    silent = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = False

    def accept() -> None:
        silent.settimeout(0.2)
        while not stop:
            try:
                held.append(silent.accept()[0])
            except OSError:
                continue

    import threading
    threading.Thread(target=accept, daemon=True).start()
    try:
        url = f"postgresql://nobody@127.0.0.1:{silent.getsockname()[1]}/feedback"
        started = time.monotonic()
        client = make_app(settings, DATABASE_URL=url, DATABASE_TIMEOUT=1.0).test_client()
        assert time.monotonic() - started < 15  # not a hang: the connect timeout ended it
        assert held  # the app did try the database
        for _ in range(3):
            assert "feedback_receipt" not in predict(client)
        response = answer(client, "x" * 50, verdict="confirm")
        assert response.status_code == 503
    finally:
        stop = True
        silent.close()
        for connection in held:
            connection.close()


def test_a_stopped_postgresql_leaves_predictions_answering_with_receipts(settings: dict[str, Any]) -> None:
    """The key was read at start: predictions never need the database; only storing an answer does (503)."""
    from tests.postgres import cluster, new_database

    with cluster() as folder:
        url = new_database(folder)
        app = make_app(settings, DATABASE_URL=url, DATABASE_TIMEOUT=2.0)
        client = app.test_client()
        assert answer(client, asked(client), verdict="confirm").status_code == 201
        feedback_of(app).store.database.dispose()
    receipt = asked(client)  # the database is gone; the prediction does not notice
    response = answer(client, receipt, verdict="confirm")
    assert response.status_code == 503 and response.get_json()["type"].endswith(":storage-unavailable")
    later = make_app(settings, DATABASE_URL=url, DATABASE_TIMEOUT=2.0).test_client()  # a worker starting now
    assert "feedback_receipt" not in predict(later)


# --- the real client address ----------------------------------------------------------------------------

def test_behind_a_proxy_each_forwarded_client_has_its_own_limit(settings: dict[str, Any]) -> None:
    client = make_app(settings, PROXY_HOPS=1, FEEDBACK_RATE_LIMIT="1/minute").test_client()
    receipts = [asked(client) for _ in range(3)]

    def forwarded(receipt: str, address: str) -> int:
        return int(answer(client, receipt, address="10.0.0.2", headers={"X-Forwarded-For": address},
                          verdict="confirm").status_code)

    assert forwarded(receipts[0], "198.51.100.1") == 201
    assert forwarded(receipts[1], "198.51.100.2") == 201  # another visitor, through the same proxy
    assert forwarded(receipts[2], "198.51.100.1") == 429


def test_with_nothing_in_front_a_forwarded_header_is_not_believed(settings: dict[str, Any]) -> None:
    client = make_app(settings, FEEDBACK_RATE_LIMIT="1/minute").test_client()
    receipts = [asked(client) for _ in range(2)]
    statuses = [answer(client, r, headers={"X-Forwarded-For": f"198.51.100.{i}"}, verdict="confirm").status_code
                for i, r in enumerate(receipts)]
    assert statuses == [201, 429]  # a client cannot buy a new count with a header


def test_an_ipv6_client_counts_as_its_64(settings: dict[str, Any]) -> None:
    client = make_app(settings, FEEDBACK_RATE_LIMIT="1/minute").test_client()
    receipts = [asked(client) for _ in range(3)]
    assert answer(client, receipts[0], address="2001:db8::1", verdict="confirm").status_code == 201
    assert answer(client, receipts[1], address="2001:db8::ffff:2", verdict="confirm").status_code == 429
    assert answer(client, receipts[2], address="2001:db8:0:1::1", verdict="confirm").status_code == 201


@pytest.mark.parametrize("address, key", [("192.0.2.1", "192.0.2.1"), ("::ffff:192.0.2.1", "192.0.2.1"),
                                          ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"), ("fe80::1%eth0", "fe80::/64"),
                                          ("", "-"), ("not an address", "not an address")])
def test_the_rate_limit_key_of_an_address(address: str, key: str) -> None:
    from snakes_web.web.clients import address_key

    assert address_key(address) == key


# --- where replicas are likely ------------------------------------------------------------------------

@pytest.mark.parametrize("sign", ["DYNO", "KUBERNETES_SERVICE_HOST", "K_SERVICE"])
def test_one_of_several_replicas_on_its_own_sqlite_without_a_shared_key_refuses_feedback(
        settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        sign: str) -> None:
    monkeypatch.setenv(sign, "web.1")
    client = make_app(settings).test_client()
    assert "feedback_receipt" not in predict(client)  # predictions answer; no question is asked
    page = client.post("/", data={"file": (io.BytesIO(red_photo()), "p.jpg")}).get_data(as_text=True)
    assert 'class="feedback"' not in page
    response = answer(client, "x" * 50, verdict="confirm")
    assert response.status_code == 503 and "SNAKES_SECRET_KEY" in response.get_json()["detail"]
    assert any(sign in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)


def test_replicas_with_a_shared_key_or_database_ask_for_feedback(settings: dict[str, Any],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNO", "web.1")
    client = make_app(settings, SECRET_KEY="one random key for every dyno, 32+").test_client()
    assert answer(client, asked(client), verdict="confirm").status_code == 201
