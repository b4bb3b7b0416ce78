"""The bench's peer: a minimal FastAPI app on uvicorn that serves our predictor with our decode.

What a careful engineer writes with FastAPI around the same model: a sync endpoint (FastAPI runs it on
its thread pool), the upload read whole, decoded by ``decode_image`` (the same JPEG draft decode and
limits), predicted by the same ``ServedPredictor`` (``load_configured``: same ONNX session options, one
intra-op thread per worker, the same priors) and answered with the same ``result_payload``. What it
leaves out is everything our server adds around the model: the inference gate, the input budget, paced
sockets, request ids, CORS, CSP and security headers, metrics, feedback, the page.

``BENCH_PEER_DECODE=pillow`` decodes as such apps usually do instead (``same_model``): the "as usually
written" peer.

Run by the bench as ``uvicorn snakes_web.tools.bench.peer:app --workers 2`` with ``SNAKES_MODEL`` set;
the model loads in each worker when it starts (the lifespan), never at import. FastAPI, uvicorn and
python-multipart are in the ``bench`` extra only: the server never imports this module.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, File, HTTPException, UploadFile

from snakes_web.exceptions import SnakesError

from .same_model import answer, load


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    """Load the model once per worker process, as our gunicorn workers do."""
    load()
    yield


app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)


@app.post("/api/v1/predict")
def predict(file: UploadFile = File(...)) -> dict[str, Any]:  # noqa: B008  (FastAPI's own idiom)
    """Decode the upload and answer its predictions, as /api/v1/predict does."""
    try:
        return answer(file.file.read())
    except SnakesError as error:
        raise HTTPException(error.status, str(error)) from None
