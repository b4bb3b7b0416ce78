"""The input budget: what one worker holds for request bodies and downloads is counted, bounded, and given back.

docs/serving.md promises: a body is reserved before it is read, and one the budget cannot hold is answered
503 `memory-busy` with Retry-After without being read; a chunked body is counted as it arrives; large
inputs leave a quarter of the budget to ordinary photos; batch URLs are downloaded one at a time, within
one batch's byte and time limit; the budget comes from the worker's share of memory.
"""
from __future__ import annotations

import io
import json
from typing import Any

import pytest
from PIL import Image
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from snakes_web import create_app
from snakes_web.config import ConfigError
from snakes_web.exceptions import MemoryBusy
from snakes_web.imaging.fetch import FetchLimits, fetch_image
from snakes_web.model.predictor import Prediction
from snakes_web.serving import sizing
from snakes_web.serving.budget import LARGE_ABOVE, InputBudget, budget_of, budget_size, least_mb
from tests.conftest import COLOURS, FakePredictor, Route, image_bytes

MB = 2**20


# --- the budget itself --------------------------------------------------------------------------

def test_a_hold_takes_and_gives_back_and_past_the_size_is_refused() -> None:
    budget = InputBudget(10 * MB)
    first, second = budget.hold(), budget.hold()
    first.take(3 * MB)
    second.take(3 * MB)
    assert budget.used == 6 * MB
    with pytest.raises(MemoryBusy) as refused:
        budget.hold().take(5 * MB)  # 6 + 5 > 10
    assert refused.value.status == 503 and refused.value.slug == "memory-busy" and refused.value.retry_after >= 1
    first.release()
    first.release()  # twice is harmless
    assert budget.used == 3 * MB and budget.refused == 1
    with second:
        pass
    assert budget.used == 0


def test_large_inputs_leave_a_quarter_of_the_budget_to_small_ones() -> None:
    budget = InputBudget(40 * MB)
    admitted = 0
    while admitted < 20:
        try:
            budget.hold().take(LARGE_ABOVE + 1)
        except MemoryBusy:
            break
        admitted += 1
    assert admitted == 7 and budget.used <= 30 * MB  # 7 × 4 MB within 75% of 40; the 8th is refused
    small = [budget.hold() for _ in range(4)]
    for hold in small:
        hold.take(2 * MB)  # ordinary photos still get in
    assert budget.used > 30 * MB


def test_a_hold_that_grows_past_large_counts_as_large() -> None:
    budget = InputBudget(12 * MB)
    hold = budget.hold()
    hold.take(4 * MB)
    hold.take(4 * MB)  # 8 MB in all: large, and 8 <= 9 (75% of 12)
    with pytest.raises(MemoryBusy):
        hold.take(2 * MB)  # 10 > 9
    assert hold.bytes == 8 * MB


def test_a_budget_too_small_for_one_largest_upload_is_refused_at_start() -> None:
    assert least_mb(20 * MB) == 27
    assert budget_size({"INPUT_BUDGET_MB": 27, "MAX_UPLOAD_BYTES": 20 * MB}) == 27 * MB
    with pytest.raises(ConfigError, match="SNAKES_INPUT_BUDGET_MB=20 cannot hold one upload"):
        budget_size({"INPUT_BUDGET_MB": 20, "MAX_UPLOAD_BYTES": 20 * MB})
    with pytest.raises(ConfigError):
        create_app({"INPUT_BUDGET_MB": 20, "TESTING": True, "PREDICTOR": FakePredictor()})


@pytest.mark.parametrize("memory_mb, backend, workers, budget", [
    (768, "onnx", 2, 104),      # the Kubernetes pod: (768 - 60) // 2 = 354, less 250 for the worker
    (512, "onnx", 1, 192),      # a 512 MB dyno: one worker, 452 - 250 = 202, capped
    (24576, "onnx", 2, 192),    # a big machine: capped
    (400, "onnx", 1, 90),       # 340 - 250 = 90
    (300, "onnx", 1, 27),       # below one worker's need: still one largest upload
    (None, "onnx", 2, 192),     # memory unknown: the cap
    (2048, "fastai", 1, 192),   # fastai: one 1300 MB worker fits, 688 left: capped
    (1400, "fastai", 1, 40),    # 1340 - 1300 = 40
])
def test_the_budget_is_what_the_workers_share_of_memory_leaves(memory_mb: int | None, backend: str, workers: int,
                                                               budget: int) -> None:
    plan = sizing.plan(backend, 2, memory_mb, least_budget_mb=least_mb(20 * MB))
    assert plan.workers == workers and plan.input_budget_mb == budget
    assert f"{budget} MB each for uploads and downloads in flight" in plan.describe()


def test_a_configured_budget_is_taken_as_given() -> None:
    assert sizing.plan("onnx", 2, 768, input_budget_mb=50, least_budget_mb=27).input_budget_mb == 50


# --- request bodies in the app -------------------------------------------------------------------

class UsedRecorder(FakePredictor):
    """A fake model that notes how much of the input budget is held while it predicts."""

    def __init__(self) -> None:
        super().__init__()
        self.app: Any = None
        self.used: list[int] = []

    def predict(self, image: Image.Image) -> list[Prediction]:
        self.used.append(budget_of(self.app).used)
        return super().predict(image)


@pytest.fixture
def recorded(settings: dict[str, Any]) -> tuple[Any, UsedRecorder]:
    recorder = UsedRecorder()
    app = create_app({**settings, "PREDICTOR": recorder, "INPUT_BUDGET_MB": 4})  # 2 MB uploads: at least 3
    recorder.app = app
    return app, recorder


def noisy_png(side: int) -> bytes:
    """A PNG of random pixels: about 3 bytes a pixel on disk."""
    import numpy as np

    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def multipart_body(data: bytes, name: str = "photo.png") -> tuple[bytes, str]:
    boundary, body = encode_multipart({"file": FileStorage(io.BytesIO(data), name, content_type="image/png")})
    return body, f"multipart/form-data; boundary={boundary}"


def test_a_body_is_held_while_its_request_runs_and_given_back_after(recorded: tuple[Any, UsedRecorder]) -> None:
    app, recorder = recorded
    body, content_type = multipart_body(image_bytes())
    response = app.test_client().post("/api/v1/predict", data=body, content_type=content_type)
    assert response.status_code == 200
    assert recorder.used == [len(body)]  # exactly its Content-Length, while the model ran
    assert budget_of(app).used == 0


class UnreadableBody(io.BytesIO):
    """A body stream that fails the test if anything reads it."""

    def read(self, size: int | None = -1) -> bytes:
        raise AssertionError("the body of a refused request was read")

    readline = read  # type: ignore[assignment]


@pytest.mark.parametrize("path, kind", [("/api/v1/predict", "application/problem+json"), ("/", "text/html")])
def test_a_body_the_budget_cannot_hold_is_refused_503_without_being_read(recorded: tuple[Any, UsedRecorder],
                                                                        path: str, kind: str) -> None:
    app, recorder = recorded
    taken = budget_of(app).hold()
    taken.take(int(3.5 * MB))  # someone else's uploads hold all but half a megabyte
    body, content_type = multipart_body(noisy_png(500))
    assert len(body) > MB // 2
    response = app.test_client().post(path, input_stream=UnreadableBody(body), content_type=content_type,
                                      headers={"Content-Length": str(len(body))})
    assert response.status_code == 503 and response.mimetype == kind
    assert int(response.headers["Retry-After"]) >= 1
    text = response.get_data(as_text=True)
    if kind.endswith("json"):
        assert response.get_json()["type"].endswith("memory-busy")
    else:
        assert "holding as many uploads" in text and 'name="file"' in text  # the page, with its form
    assert recorder.used == [] and budget_of(app).used == int(3.5 * MB) and budget_of(app).refused == 1
    taken.release()
    assert app.test_client().post(path, data=body, content_type=content_type).status_code == 200


def test_a_body_over_the_upload_limit_is_413_not_503(recorded: tuple[Any, UsedRecorder]) -> None:
    app, _ = recorded
    body, content_type = multipart_body(b"\0" * (3 * MB))
    response = app.test_client().post("/api/v1/predict", data=body, content_type=content_type)
    assert response.status_code == 413 and budget_of(app).refused == 0


def test_a_chunked_body_is_counted_as_it_arrives(recorded: tuple[Any, UsedRecorder]) -> None:
    app, recorder = recorded
    body, content_type = multipart_body(image_bytes())
    environ = {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True}
    response = app.test_client().post("/api/v1/predict", input_stream=io.BytesIO(body), content_type=content_type,
                                      environ_overrides=environ)
    assert response.status_code == 200 and recorder.used and recorder.used[0] >= len(body)
    assert budget_of(app).used == 0
    budget_of(app).hold().take(4 * MB - 100)  # now a chunked body has no room: refused as it is read
    response = app.test_client().post("/api/v1/predict", input_stream=io.BytesIO(body), content_type=content_type,
                                      environ_overrides=environ)
    assert response.status_code == 503 and response.get_json()["type"].endswith("memory-busy")


def test_a_request_without_a_body_costs_the_budget_nothing(recorded: tuple[Any, UsedRecorder]) -> None:
    app, _ = recorded
    budget_of(app).hold().take(4 * MB)  # full
    assert app.test_client().get("/").status_code == 200
    assert app.test_client().get("/api/v1/model").status_code == 200


# --- downloads ------------------------------------------------------------------------------------

def test_a_download_is_taken_from_the_requests_hold_as_it_arrives(recorded: tuple[Any, UsedRecorder],
                                                                   image_server: Any) -> None:
    app, recorder = recorded
    photo = image_bytes(colour=COLOURS["green"])
    image_server.routes["/g.png"] = Route(photo, headers={"Content-Type": "image/png"})
    body = {"url": image_server.url("/g.png")}
    response = app.test_client().post("/api/v1/predict", json=body)
    assert response.status_code == 200
    assert recorder.used == [len(photo) + len(json.dumps(body))]  # the photo and the small JSON body
    assert budget_of(app).used == 0


def test_fetch_tells_take_of_every_piece_and_take_can_stop_it(image_server: Any) -> None:
    image_server.routes["/big"] = Route(b"\xff" * 500_000, headers={"Content-Type": "image/jpeg"})
    limits = FetchLimits(max_bytes=MB, timeout=2.0, allow_private=True)
    pieces: list[int] = []
    assert len(fetch_image(image_server.url("/big"), limits, take=pieces.append)) == 500_000
    assert sum(pieces) == 500_000 and len(pieces) > 1
    budget = InputBudget(200_000)
    with pytest.raises(MemoryBusy), budget.hold() as hold:
        fetch_image(image_server.url("/big"), limits, take=hold.take)
    assert budget.used == 0


def test_batch_urls_are_downloaded_classified_and_dropped_one_at_a_time(recorded: tuple[Any, UsedRecorder],
                                                                        image_server: Any) -> None:
    app, recorder = recorded
    sizes = []
    for index, name in enumerate(["red", "green", "blue"]):
        photo = image_bytes(size=(64 + 200 * index, 48 + 200 * index), colour=COLOURS[name])
        sizes.append(len(photo))
        image_server.routes[f"/{name}.png"] = Route(photo, headers={"Content-Type": "image/png"})
    form = MultiDict([("url", image_server.url(f"/{name}.png")) for name in ["red", "green", "blue"]])
    response = app.test_client().post("/api/v1/predict", data=form)
    assert [r["predictions"][0]["label"] for r in response.get_json()["results"]] == ["red", "green", "blue"]
    body = recorder.used[0] - sizes[0]  # the form itself, held for the whole request
    assert recorder.used == [body + size for size in sizes]  # only the photo being classified, each in turn
    assert budget_of(app).used == 0


def test_a_batchs_downloads_together_stay_under_the_upload_limit(settings: dict[str, Any], image_server: Any) -> None:
    app = create_app({**settings, "MAX_UPLOAD_BYTES": MB, "FETCH_MAX_BYTES": MB})
    photo = _bmp(300_000)
    image_server.routes["/p.bmp"] = Route(photo, headers={"Content-Type": "image/bmp"})
    form = MultiDict([("url", image_server.url("/p.bmp"))] * 4)
    results = app.test_client().post("/api/v1/predict", data=form).get_json()["results"]
    assert [("predictions" in r) for r in results] == [True, True, True, False]
    assert results[3]["status"] == 413 and "together are larger than 1 MB" in results[3]["detail"]


def test_a_batchs_downloads_share_one_fetch_deadline(settings: dict[str, Any], image_server: Any) -> None:
    app = create_app({**settings, "FETCH_TIMEOUT": 0.5})  # 1.5 s for the whole batch
    image_server.routes["/slow.png"] = Route(image_bytes(), headers={"Content-Type": "image/png"}, delay=0.4)
    form = MultiDict([("url", image_server.url("/slow.png"))] * 6)
    results = app.test_client().post("/api/v1/predict", data=form).get_json()["results"]
    answered = [r for r in results if "predictions" in r]
    late = [r for r in results if r.get("status") == 504]
    assert 1 <= len(answered) <= 4 and len(answered) + len(late) == 6
    assert any("ran out of their 1.5 s" in r["detail"] or "too long" in r["detail"] for r in late)


def _bmp(size: int) -> bytes:
    """A BMP of about ``size`` bytes (uncompressed, so its size is its pixels)."""
    side = int((size / 3) ** 0.5)
    out = io.BytesIO()
    Image.new("RGB", (side, side), COLOURS["red"]).save(out, "BMP")
    return out.getvalue()
