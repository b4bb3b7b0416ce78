"""The bench's floor: Flask on gunicorn with one route and nothing around the model — our shape, bare.

The same ``answer`` as the FastAPI peer (``same_model``) behind the fewest layers our fixed shape allows:
a Flask route reading ``request.files``, on gunicorn's sync workers (the fastest class with fast clients
on loopback, and the one slow clients take down). None of what our server adds: no gate, input budget,
paced sockets, threads, request ids, CORS, CSP or security headers, metrics, rate limits, access log or
feedback. Its row says what the shape itself reaches against the peer, so the gap between it and ours is
the price of those behaviours, and the gap between it and the peer is the price of the shape.

This module is also its gunicorn configuration, so the repository's gunicorn.conf.py is not read:
``gunicorn -c python:snakes_web.tools.bench.floor -w 2 snakes_web.tools.bench.floor:app``.
The model loads in each worker after the fork (``post_fork``), never at import.
"""
from __future__ import annotations

from typing import Any

from flask import Flask, request

from snakes_web.exceptions import SnakesError

from .same_model import answer, load

# gunicorn reads these names from this module (its settings of the same names).
worker_class = "sync"
loglevel = "warning"
accesslog = None


def post_fork(_server: Any, _worker: Any) -> None:
    """Load the model once per worker process, as our gunicorn workers do."""
    load()


app = Flask(__name__)


@app.post("/api/v1/predict")
def predict() -> tuple[dict[str, Any], int]:
    """Decode the upload and answer its predictions, as /api/v1/predict does."""
    upload = request.files.get("file")
    if upload is None:
        return {"detail": "Send the photo as the multipart field `file`."}, 400
    try:
        return answer(upload.read()), 200
    except SnakesError as error:
        return {"detail": str(error)}, error.status
