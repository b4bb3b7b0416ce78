"""'Is this right?': tokens in answers, the API and the form, validation, privacy, quota, rate limit, owner page."""
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


def predict(client: Any, data: bytes | None = None, address: str = "127.0.0.1") -> dict[str, Any]:
    """Classify an image through the API and return the answer."""
    data = data if data is not None else image_bytes("JPEG", (640, 480), COLOURS["red"])
    # Encoded in memory: the test client would spool a large body to a temporary file it never closes.
    boundary, body = encode_multipart({"file": FileStorage(io.BytesIO(data), "photo.jpg", content_type="image/jpeg")})
    response = client.post("/api/v1/predict", data=body, content_type=f"multipart/form-data; boundary={boundary}",
                           environ_base={"REMOTE_ADDR": address})
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def answer(client: Any, token: str, address: str = "127.0.0.1", **fields: str) -> Any:
    """Send feedback about a prediction as JSON."""
    return client.post(API, json={"token": token, **fields}, environ_base={"REMOTE_ADDR": address})


def stored(app: Any) -> list[Any]:
    """Return every stored entry, with its image."""
    return list(feedback_of(app).store.entries(with_images=True))


def make_app(settings: dict[str, Any], **overrides: Any) -> Any:
    """Create an app on the test settings with some of them changed."""
    return create_app({**settings, **overrides})


# --- the token and the three answers ----------------------------------------------------------------

def test_a_prediction_carries_a_token_and_nothing_is_stored_until_the_visitor_answers(app: Any, client: Any) -> None:
    for _ in range(3):
        body = predict(client)
        assert isinstance(body["feedback_token"], str) and len(body["feedback_token"]) > 100
    assert stored(app) == []


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
    response = answer(client, predict(client)["feedback_token"], **fields)
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
    ({"verdict": "confirm", "label": 7}, 400, "must be a string"),
])
def test_bad_answers_are_refused_and_nothing_is_stored(app: Any, client: Any, fields: dict[str, Any], status: int,
                                                       message: str) -> None:
    response = answer(client, predict(client)["feedback_token"], **fields)
    assert response.status_code == status and response.mimetype == "application/problem+json"
    assert message in response.get_json()["detail"]
    assert stored(app) == []


@pytest.mark.parametrize("token, message", [
    ("", "Send the `feedback_token`"),
    ("not-a-token", "not one this server issued"),
    ("é" * 10, "not one this server issued"),
])
def test_tokens_we_did_not_issue_are_refused(client: Any, token: str, message: str) -> None:
    response = answer(client, token, verdict="confirm")
    assert response.status_code == 400 and message in response.get_json()["detail"]


def test_a_tampered_token_is_refused(app: Any, client: Any) -> None:
    token = predict(client)["feedback_token"]
    payload, _, rest = token.partition(".")
    meta = base64.urlsafe_b64decode(payload + "==").replace(b'"red"', b'"blue"')
    forged = base64.urlsafe_b64encode(meta).rstrip(b"=").decode() + "." + rest
    assert answer(client, forged, verdict="confirm").status_code == 400
    assert stored(app) == []


def test_a_token_signed_with_another_key_is_refused(settings: dict[str, Any]) -> None:
    other = make_app(settings, SECRET_KEY="another server's key").test_client()
    ours = make_app(settings, SECRET_KEY="our key").test_client()
    response = answer(ours, predict(other)["feedback_token"], verdict="confirm")
    assert response.status_code == 400 and "not one this server issued" in response.get_json()["detail"]


def test_an_old_token_is_refused(settings: dict[str, Any]) -> None:
    client = make_app(settings, FEEDBACK_TOKEN_TTL=-1).test_client()
    response = answer(client, predict(client)["feedback_token"], verdict="confirm")
    assert response.status_code == 400 and "too old" in response.get_json()["detail"]


def test_a_token_counts_once(app: Any, client: Any) -> None:
    token = predict(client)["feedback_token"]
    assert answer(client, token, verdict="confirm").status_code == 201
    again = answer(client, token, verdict="correct", label="green")
    assert again.status_code == 409 and again.get_json()["type"].endswith(":already-sent")
    assert [row.label for row in stored(app)] == ["red"]


def test_the_key_made_by_one_worker_is_the_key_of_every_other(settings: dict[str, Any]) -> None:
    """Two apps on one database (two workers): a token from one is stored by the other."""
    first, second = make_app(settings).test_client(), make_app(settings).test_client()
    assert answer(second, predict(first)["feedback_token"], verdict="confirm").status_code == 201


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
    assert answer(client, predict(client, photo)["feedback_token"], verdict="confirm").status_code == 201
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
    assert answer(client, predict(client, noise.getvalue())["feedback_token"], verdict="confirm").status_code == 201
    [row] = stored(app)
    assert row.image_bytes <= 40_000 and max(row.width, row.height) <= 512


# --- the page, without JavaScript ---------------------------------------------------------------------

def test_the_page_says_photos_are_not_stored(client: Any) -> None:
    page = client.get("/").get_data(as_text=True)
    assert "Your photo is not stored" in page


def test_the_result_page_asks_and_its_form_stores_without_javascript(app: Any, upload: Any, client: Any) -> None:
    page = upload(image_bytes(colour=COLOURS["green"]), path="/").get_data(as_text=True)
    assert "Is this right?" in page and "Photos you do not answer about are never stored" in page
    form = re.search(r'<form class="feedback" method="post" action="([^"]+)"', page)
    token = re.search(r'name="token" value="([^"]+)"', page)
    options = re.findall(r"<option>([^<]+)</option>", page)
    assert form and token and form.group(1) == "/feedback" and sorted(options) == ["blue", "red"]
    done = client.post("/feedback", data={"token": token.group(1), "verdict": "correct", "label": "blue"})
    assert done.status_code == 200 and "Stored: it is blue, not green." in done.get_data(as_text=True)
    assert [row.label for row in stored(app)] == ["blue"]


def test_several_photos_get_a_question_each_and_each_answer_stores_its_own_photo(app: Any, client: Any) -> None:
    from tests.test_batch import post_files
    parts = [(f"{name}.png", image_bytes(colour=COLOURS[name])) for name in ("red", "green", "blue")]
    page = post_files(client, "/", parts).get_data(as_text=True)
    tokens = re.findall(r'name="token" value="([^"]+)"', page)
    ids = re.findall(r'id="(feedback-[^"]+-label)"', page)
    assert len(tokens) == 3 and len(set(tokens)) == 3 and len(set(ids)) == 3
    for token in tokens:
        assert client.post("/feedback", data={"token": token, "verdict": "confirm"}).status_code == 200
    assert sorted(row.label for row in stored(app)) == ["blue", "green", "red"]


def test_a_bad_form_post_gets_the_html_error_page(client: Any) -> None:
    response = client.post("/feedback", data={"token": "nope", "verdict": "confirm"})
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "not one this server issued" in response.get_data(as_text=True)


def test_feedback_turned_off_means_no_token_no_question_and_a_404(settings: dict[str, Any], upload: Any) -> None:
    app = make_app(settings, FEEDBACK=False)
    client = app.test_client()
    assert "feedback_token" not in predict(client)
    page = client.post("/", data={"file": (io.BytesIO(image_bytes()), "p.png")}).get_data(as_text=True)
    assert 'class="feedback"' not in page
    assert answer(client, "anything", verdict="confirm").status_code == 404


# --- bounds: quota and rate limit -----------------------------------------------------------------------

def test_past_the_entry_quota_feedback_gets_507_and_a_purge_makes_room(settings: dict[str, Any]) -> None:
    app = make_app(settings, FEEDBACK_MAX_ITEMS=2)
    client = app.test_client()
    statuses = [answer(client, predict(client)["feedback_token"], verdict="confirm").status_code for _ in range(3)]
    assert statuses == [201, 201, 507]
    full = answer(client, predict(client)["feedback_token"], verdict="confirm")
    assert full.mimetype == "application/problem+json" and full.get_json()["type"].endswith(":quota-full")
    assert len(stored(app)) == 2
    assert feedback_of(app).store.purge() == 2
    assert answer(client, predict(client)["feedback_token"], verdict="confirm").status_code == 201


def test_past_the_byte_quota_feedback_gets_507(settings: dict[str, Any]) -> None:
    app = make_app(settings, FEEDBACK_MAX_BYTES=150_000)
    client = app.test_client()
    photo = gps_photo((300, 300))  # noise: some 50 KB re-encoded
    sizes = []
    while True:
        response = answer(client, predict(client, photo)["feedback_token"], verdict="confirm")
        if response.status_code != 201:
            break
        sizes.append(stored(app)[-1].image_bytes)
    assert response.status_code == 507 and len(sizes) >= 2 and sum(sizes) <= 150_000
    assert feedback_of(app).store.usage() == (len(sizes), sum(sizes))


def test_the_rate_limit_is_per_client_and_answers_429_with_retry_after(settings: dict[str, Any]) -> None:
    client = make_app(settings, FEEDBACK_RATE_LIMIT="3/minute").test_client()
    tokens = [predict(client)["feedback_token"] for _ in range(5)]
    statuses = [answer(client, token, verdict="confirm").status_code for token in tokens[:4]]
    assert statuses == [201, 201, 201, 429]
    limited = answer(client, tokens[3], verdict="confirm")
    assert limited.status_code == 429 and limited.mimetype == "application/problem+json"
    assert limited.get_json()["type"].endswith(":rate-limited") and 1 <= int(limited.headers["Retry-After"]) <= 60
    assert answer(client, tokens[4], address="192.0.2.7", verdict="confirm").status_code == 201  # another client


def test_the_page_form_and_the_api_share_one_count(settings: dict[str, Any]) -> None:
    client = make_app(settings, FEEDBACK_RATE_LIMIT="2/minute").test_client()
    tokens = [predict(client)["feedback_token"] for _ in range(3)]
    assert client.post("/feedback", data={"token": tokens[0], "verdict": "confirm"}).status_code == 200
    assert answer(client, tokens[1], verdict="confirm").status_code == 201
    assert answer(client, tokens[2], verdict="confirm").status_code == 429


def test_the_page_form_is_rate_limited_too(settings: dict[str, Any]) -> None:
    client = make_app(settings, FEEDBACK_RATE_LIMIT="1/minute").test_client()
    tokens = [predict(client)["feedback_token"] for _ in range(2)]
    assert client.post("/feedback", data={"token": tokens[0], "verdict": "confirm"}).status_code == 200
    limited = client.post("/feedback", data={"token": tokens[1], "verdict": "confirm"})
    assert limited.status_code == 429 and limited.mimetype == "text/html" and "Retry-After" in limited.headers


def test_the_rate_limit_is_shared_by_every_worker_on_the_database(settings: dict[str, Any], database_url: str) -> None:
    """Two apps (two workers, or two replicas on PostgreSQL) count one client's feedback together."""
    apps = [make_app(settings, DATABASE_URL=database_url, FEEDBACK_RATE_LIMIT="4/minute") for _ in range(2)]
    clients = [a.test_client() for a in apps]
    try:
        statuses = [answer(clients[i % 2], predict(clients[i % 2])["feedback_token"], verdict="confirm").status_code
                    for i in range(6)]
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
        assert answer(client, predict(client)["feedback_token"], **fields).status_code == 201
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
        assert "feedback_token" not in predict(client)  # answered, without the question
    assert sum("feedback is unavailable" in r.getMessage() for r in caplog.records) == 1  # said once
    page = client.post("/", data={"file": (io.BytesIO(image_bytes()), "p.png")}).get_data(as_text=True)
    assert 'class="feedback"' not in page and "Red" in page
    response = answer(client, "x" * 50, verdict="confirm")
    assert response.status_code == 503 and response.get_json()["type"].endswith(":storage-unavailable")


def test_a_rate_limit_that_does_not_parse_stops_start_up_naming_the_setting() -> None:
    from snakes_web.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="SNAKES_FEEDBACK_RATE_LIMIT"):
        load_settings(environ={"SNAKES_FEEDBACK_RATE_LIMIT": "lots per fortnight"})
