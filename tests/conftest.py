"""Fixtures: an app with a fast fake predictor, real models built once a session, a local image server."""
from __future__ import annotations

import http.server
import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from snakes_web import create_app
from snakes_web.model.predictor import Prediction, ranked

DATA = Path(__file__).parent / "data"
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


class FakePredictor:
    """Names the dominant colour of an image: a stand-in model for fast view tests."""

    labels = list(COLOURS)

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, image: Image.Image) -> list[Prediction]:
        self.calls += 1
        r, g, b = image.convert("RGB").resize((1, 1)).getpixel((0, 0))
        total = (r + g + b) or 1
        return ranked(self.labels, [r / total, g / total, b / total])

    def describe(self) -> dict[str, Any]:
        return {"name": "fake-colours", "backend": "fake", "input_size": [1, 1],
                "labels": len(self.labels), "vocab": list(self.labels)}


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48), colour: Any = COLOURS["red"],
                mode: str = "RGB", **save: Any) -> bytes:
    """Return an image of one colour encoded as ``fmt``."""
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, format=fmt, **save)
    return out.getvalue()


DATA_DIR_KEY = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Keep every app's feedback database (even a module-level app's, or a gunicorn's) out of the checkout."""
    import os
    import tempfile

    if "SNAKES_DATA_DIR" not in os.environ:
        config.stash[DATA_DIR_KEY] = os.environ["SNAKES_DATA_DIR"] = tempfile.mkdtemp(prefix="snakes-test-data-")
    # The suite is one host: a CI runner that is itself a pod or a dyno must not make every app (and every
    # gunicorn the tests start) refuse feedback over its SQLite file. Tests that mean it set these themselves.
    for name in ("DYNO", "KUBERNETES_SERVICE_HOST", "K_SERVICE"):
        os.environ.pop(name, None)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the session's data folder."""
    import os
    import shutil

    folder = config.stash.get(DATA_DIR_KEY, None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop("SNAKES_DATA_DIR", None)


@pytest.fixture
def settings(tmp_path: Path) -> dict[str, Any]:
    """Test settings. Private URLs are allowed so the loopback image server is reachable."""
    return {"PREDICTOR": FakePredictor(), "TESTING": True, "ALLOW_PRIVATE_URLS": True,
            "FETCH_TIMEOUT": 1.0, "MAX_UPLOAD_BYTES": 2 * 1024 * 1024, "FETCH_MAX_BYTES": 1024 * 1024,
            "DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def app(settings: dict[str, Any]):  # type: ignore[no-untyped-def]
    return create_app(settings)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def upload(client):  # type: ignore[no-untyped-def]
    """Post a file as multipart to a path: ``upload(data, path="/api/v1/predict", name="x.png")``."""

    def post(data: bytes, path: str = "/api/v1/predict", name: str = "photo.png",
             content_type: str = "image/png", **form: str):  # type: ignore[no-untyped-def]
        # Encoded in memory: the test client would spool a large body to an unclosed temp file.
        fields: dict[str, Any] = {"file": FileStorage(io.BytesIO(data), name, content_type=content_type),
                                  **form}
        boundary, body = encode_multipart(fields)
        return client.post(path, data=body, content_type=f"multipart/form-data; boundary={boundary}")

    return post


# --- a local HTTP server on loopback, for URL input ------------------------------------------

@dataclass
class Route:
    """What the image server answers on one path."""

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0          # seconds before answering
    endless: bool = False       # keep sending until the client goes away
    hold: threading.Event | None = None  # answer only once the test sets this event
    drip: float = 0.0           # seconds between the body's bytes (a remote server on a bad link)


class ImageServer:
    """A threaded HTTP server on 127.0.0.1 whose routes tests set."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.hits.append(self.path)
                route = server.routes.get(self.path, Route(b"no such route", 404))
                time.sleep(route.delay)
                if route.hold is not None:
                    route.hold.wait(120)
                self.send_response(route.status)
                for key, value in route.headers.items():
                    self.send_header(key, value)
                if not route.endless:
                    self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                try:
                    if route.drip:
                        deadline = time.monotonic() + 60
                        for byte in route.body:
                            if time.monotonic() > deadline:
                                break
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(route.drip)
                    elif route.endless:
                        deadline = time.monotonic() + 10
                        while time.monotonic() < deadline:
                            self.wfile.write(b"\0" * 65536)
                    else:
                        self.wfile.write(route.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def image_server() -> Iterator[ImageServer]:
    server = ImageServer()
    yield server
    server.close()


def free_port() -> int:
    """Return a TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- real models, built once a session ---------------------------------------------------------

@pytest.fixture(scope="session")
def default_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the default model with the real command into a fresh folder (about 10 s)."""
    from snakes_web.tools.cli import main

    path = tmp_path_factory.mktemp("default-model") / "export.pkl"
    assert main(["build-default-model", "--output", str(path)]) == 0
    return path


@pytest.fixture(scope="session")
def default_onnx(default_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model converted to ONNX with the real command, once a session."""
    from snakes_web.tools.cli import main

    path = tmp_path_factory.mktemp("onnx") / "export.onnx"
    assert main(["export-onnx", str(default_model_path), str(path)]) == 0
    return path


@pytest.fixture(scope="session")
def default_int8(default_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model through `export-onnx --int8` as `make run` converts it (its own check: two positives
    per class), once a session. With one per class, int8 missed the king snake's one positive on an AMD EPYC
    (17/18, refused) where two per class agree 36/36."""
    from snakes_web.tools.cli import main

    path = tmp_path_factory.mktemp("int8") / "export-int8.onnx"
    assert main(["export-onnx", "--int8", str(default_model_path), str(path)]) == 0
    return path


#: The two CC0 photos positives are pushed from.
PHOTOS = ("chelsea.jpg", "coffee.jpg")


def synthesised(pkl: Path, onnx: Path, images: list[Any], per_class: int = 2) -> Any:
    """Positives of every class of the model, pushed from ``images`` on its fp32 torch network."""
    import numpy as np

    from snakes_web.model.onnx_backend import OnnxPredictor
    from snakes_web.model.quantize import positives_of

    predictor = OnnxPredictor(onnx, threads=1)
    starts = np.concatenate([predictor.prepare(image) for image in images])
    return positives_of(pkl, onnx, starts, predictor.labels, per_class=per_class)


@pytest.fixture(scope="session")
def default_positives(default_model_path: Path, default_onnx: Path) -> Any:
    """Two positives of each of the 18 classes, from the two CC0 photos (once a session, ~20 s)."""
    from snakes_web.imaging.images import load_image

    return synthesised(default_model_path, default_onnx,
                       [load_image((DATA / name).read_bytes(), 50_000_000) for name in PHOTOS])


@pytest.fixture(scope="session")
def default_predictor(default_model_path: Path):  # type: ignore[no-untyped-def]
    from snakes_web.model.loader import load_predictor

    return load_predictor(default_model_path)


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train nothing: a tiny random-init fastai CNN on generated colour squares, exported."""
    from tests.tiny_learner import export_tiny_learner

    return export_tiny_learner(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Train on generated colour photos with `snakes-web train --onnx`, once a session (~20-40 s)."""
    from tests.training_data import train_once

    return train_once(tmp_path_factory.mktemp("trained"))


@pytest.fixture(scope="session")
def int8_trained_model(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Train the head only with `snakes-web train --onnx --int8` at the shipped bar, once a session (~20 s)."""
    from tests.training_data import INT8_TRAINING_ARGS, train_once

    return train_once(tmp_path_factory.mktemp("int8-trained"), INT8_TRAINING_ARGS, environ={})


@pytest.fixture
def photo() -> Callable[[str], bytes]:
    """Return the bytes of a real photo in tests/data."""
    return lambda name: (DATA / name).read_bytes()


# --- databases for the feedback tests (issue 18) -------------------------------------------------

@pytest.fixture(scope="session")
def postgres_socket() -> Iterator[str]:
    """A throw-away PostgreSQL cluster on a Unix socket, once a session (about 1 s)."""
    from tests.postgres import cluster

    with cluster() as folder:
        yield folder


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty feedback database of each kind: a SQLite file, a fresh database in the session's cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.db'}"
    from tests.postgres import new_database

    return new_database(request.getfixturevalue("postgres_socket"))
