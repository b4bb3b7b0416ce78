"""Many photos in one request, heatmaps on request, the answers that matter: the API and the plain form post."""
from __future__ import annotations

import io
import re
from typing import Any

import pytest
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from tests.conftest import COLOURS, image_bytes

PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n"


def post_files(client: Any, path: str, parts: list[tuple[str, bytes]], query: str = "",
               **fields: str) -> Any:
    """Post several ``file`` parts (name, bytes), in order, as one multipart body."""
    form = MultiDict([("file", FileStorage(io.BytesIO(data), name, content_type="application/octet-stream"))
                      for name, data in parts])
    for key, value in fields.items():
        form.add(key, value)
    boundary, body = encode_multipart(form)
    return client.post(path + query, data=body, content_type=f"multipart/form-data; boundary={boundary}")


def colour(name: str) -> tuple[str, bytes]:
    return f"{name}.png", image_bytes(colour=COLOURS[name])


def test_several_files_get_one_result_each_in_the_order_sent(client: Any) -> None:
    response = post_files(client, "/api/v1/predict", [colour("blue"), colour("red"), colour("green")])
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [r["predictions"][0]["label"] for r in results] == ["blue", "red", "green"]
    assert all(r["model"]["name"] == "fake-colours" and "heatmap" not in r for r in results)


def test_one_bad_photo_is_its_own_problem_and_the_others_still_get_answers(client: Any) -> None:
    parts = [colour("green"), ("scan.pdf", PDF), ("empty.png", b""), ("cut.png", image_bytes()[:40]),
             colour("red")]
    results = post_files(client, "/api/v1/predict", parts).get_json()["results"]
    assert results[0]["predictions"][0]["label"] == "green"
    assert results[4]["predictions"][0]["label"] == "red"
    problems = results[1:4]
    assert [p["status"] for p in problems] == [415, 400, 422]
    assert problems[0]["detail"].startswith("That file is a PDF") and problems[0]["detected"] == "application/pdf"
    assert all(p["type"].startswith("urn:snakes-web:problem:") and p["request_id"] for p in problems)


def test_more_photos_than_the_setting_allows_is_a_413(settings: dict[str, Any]) -> None:
    from snakes_web import create_app

    client = create_app({**settings, "MAX_FILES": 3}).test_client()
    response = post_files(client, "/api/v1/predict", [colour("red")] * 4)
    assert response.status_code == 413 and response.mimetype == "application/problem+json"
    assert response.get_json()["detail"] == "Send at most 3 photos in one request (this one has 4)."
    assert post_files(client, "/api/v1/predict", [colour("red")] * 3).status_code == 200


def test_each_photo_of_a_batch_is_held_to_the_same_pixel_limit(settings: dict[str, Any]) -> None:
    from snakes_web import create_app

    client = create_app({**settings, "MAX_IMAGE_PIXELS": 100 * 100}).test_client()
    big = ("big.png", image_bytes(size=(200, 100)))
    results = post_files(client, "/api/v1/predict", [colour("blue"), big]).get_json()["results"]
    assert results[0]["predictions"][0]["label"] == "blue" and results[1]["status"] == 413


def test_the_whole_batch_stays_under_the_body_limit(client: Any) -> None:
    half = ("half.bin", b"\0" * (1024 * 1024 + 10))  # settings: MAX_UPLOAD_BYTES is 2 MB
    response = post_files(client, "/api/v1/predict", [half, half])
    assert response.status_code == 413


def test_files_and_urls_together_are_refused(client: Any) -> None:
    response = post_files(client, "/api/v1/predict", [colour("red"), colour("blue")], url="http://x.example/a.png")
    assert response.status_code == 400 and "not both" in response.get_json()["detail"]


def test_several_urls_are_fetched_in_order_one_failing_alone(client: Any, image_server: Any) -> None:
    from tests.conftest import Route

    image_server.routes["/b.png"] = Route(image_bytes(colour=COLOURS["blue"]), headers={"Content-Type": "image/png"})
    image_server.routes["/g.png"] = Route(image_bytes(colour=COLOURS["green"]), headers={"Content-Type": "image/png"})
    form = MultiDict([("url", image_server.url("/g.png")), ("url", image_server.url("/missing.png")),
                      ("url", image_server.url("/b.png"))])
    results = client.post("/api/v1/predict", data=form).get_json()["results"]
    assert results[0]["predictions"][0]["label"] == "green" and results[2]["predictions"][0]["label"] == "blue"
    assert results[1]["status"] == 502


def test_one_file_keeps_the_answer_it_always_had(client: Any) -> None:
    body = post_files(client, "/api/v1/predict", [colour("red")], query="?top=2").get_json()
    assert set(body) == {"predictions", "verdict", "says", "model"} and len(body["predictions"]) == 2  # no "results"


def test_top_applies_to_every_result_of_a_batch(client: Any) -> None:
    results = post_files(client, "/api/v1/predict", [colour("red"), colour("blue")], query="?top=1").get_json()
    assert [len(r["predictions"]) for r in results["results"]] == [1, 1]


# --- ?explain= -----------------------------------------------------------------------------------

def half_and_half() -> tuple[str, bytes]:
    """A photo whose left half is red and right half blue."""
    from PIL import Image

    image = Image.new("RGB", (70, 70), COLOURS["blue"])
    image.paste(COLOURS["red"], (0, 0, 35, 70))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return "halves.png", out.getvalue()


def test_explain_adds_a_heatmap_for_the_class_asked_for(client: Any) -> None:
    """The fake has no explain(): occlusion through predict() lights the half that holds the colour."""
    body = post_files(client, "/api/v1/predict", [half_and_half()], query="?explain=red").get_json()
    heatmap = body["heatmap"]
    assert heatmap["label"] == "red" and heatmap["method"] == "occlusion" and heatmap["box"] == [0, 0, 1, 1]
    assert heatmap["png"].startswith("data:image/png;base64,")
    grid = heatmap["grid"]
    left = sum(row[c] for row in grid for c in range(3)) / 21
    right = sum(row[c] for row in grid for c in range(4, 7)) / 21
    assert left > 0.3 and right == 0
    blue = post_files(client, "/api/v1/predict", [half_and_half()], query="?explain=blue").get_json()["heatmap"]
    assert sum(blue["grid"][3][4:]) > 0 and sum(blue["grid"][3][:3]) == 0


def test_explain_top_maps_the_most_likely_class(client: Any) -> None:
    body = post_files(client, "/api/v1/predict", [colour("green")], query="?explain=top").get_json()
    assert body["heatmap"]["label"] == body["predictions"][0]["label"] == "green"


@pytest.mark.parametrize("value", ["purple", "TOPS", "0"])
def test_explain_must_be_top_or_a_label(client: Any, value: str) -> None:
    response = post_files(client, "/api/v1/predict", [colour("red")], query=f"?explain={value}")
    assert response.status_code == 400 and "`explain`" in response.get_json()["detail"]


def test_no_explain_no_heatmap_and_no_extra_predictions(app: Any, client: Any) -> None:
    predictor = app.config["PREDICTOR"]
    before = predictor.calls
    body = post_files(client, "/api/v1/predict", [colour("red")]).get_json()
    assert "heatmap" not in body and predictor.calls == before + 1


# --- the plain form post (no JavaScript) -------------------------------------------------------

def cards(html: str) -> list[str]:
    return re.findall(r'<section class="result[^"]*"', html)


def test_the_form_posts_several_photos_and_gets_a_card_each(client: Any) -> None:
    response = post_files(client, "/", [colour("blue"), ("scan.pdf", PDF), colour("red")], explain="top")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert cards(html) == ['<section class="result"', '<section class="result failed"', '<section class="result"']
    assert html.index("Blue") < html.index("That file is a PDF") < html.index("Red")
    assert html.count('class="heat-toggle"') == 2 and html.count('src="data:image/png;base64,') == 2


def test_the_page_lists_the_answers_that_matter_and_the_rest_behind_a_click(settings: dict[str, Any]) -> None:
    from snakes_web import create_app
    from tests.many_classes import ManyClasses

    client = create_app({**settings, "PREDICTOR": ManyClasses(), "SHOW_ABOVE": 0.05}).test_client()
    html = post_files(client, "/", [colour("red")]).get_data(as_text=True)
    top, rest = html.split('<details class="rest">')
    assert top.count("<meter") == 4  # four classes above 5%
    assert rest.count("<meter") == 14 and "The other 14 classes" in rest
    html = create_app({**settings, "PREDICTOR": ManyClasses(), "SHOW_ABOVE": 0.5}).test_client().post(
        "/", data={"file": (io.BytesIO(image_bytes()), "x.png")}).get_data(as_text=True)
    assert html.split('<details class="rest">')[0].count("<meter") == 3  # never fewer than the top 3


def test_an_example_photo_is_classified_by_its_name_and_only_ours(client: Any) -> None:
    response = client.post("/", data={"example": "example-chelsea.jpg"})
    assert response.status_code == 200 and len(cards(response.get_data(as_text=True))) == 1
    response = client.post("/", data={"example": "../../config.py"})
    assert response.status_code == 400 and "no example photo" in response.get_data(as_text=True)


def test_the_page_offers_the_example_photos_from_its_own_static_files(client: Any) -> None:
    html = client.get("/").get_data(as_text=True)
    for name in ("example-chelsea.jpg", "example-coffee.jpg"):
        assert f'value="{name}"' in html
        with client.get(f"/static/{name}") as response:
            assert response.status_code == 200 and response.data[:2] == b"\xff\xd8"
    assert 'multiple' in html.split('id="file"')[1].split(">")[0]


def test_the_openapi_document_describes_explain_and_batches(client: Any) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    post = doc["paths"]["/api/v1/predict"]["post"]
    assert "explain" in [p.get("name") for p in post["parameters"]]
    assert {"$ref": "#/components/schemas/BatchResult"} in \
        post["responses"]["200"]["content"]["application/json"]["schema"]["oneOf"]
    assert set(doc["components"]["schemas"]["Heatmap"]["required"]) == {"label", "method", "png", "grid", "box"}
    assert "array" in str(post["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]["file"])
