"""What the bench's comparison servers serve: our predictor, our decode and our answer, once per worker.

The FastAPI peer (``peer.py``) and the Flask floor (``floor.py``) both call ``answer``; only the server
and framework around it differ, so their rows beside ours measure the request path and nothing else.
``BENCH_PEER_DECODE=pillow`` decodes as such apps usually do instead (``Image.open(...).convert("RGB")``:
the whole image, no draft, no limits): the "as usually written" peer.
"""
from __future__ import annotations

import io
import os
from typing import Any

from PIL import Image

from snakes_web.config import load_settings
from snakes_web.model.loader import load_configured
from snakes_web.model.predictor import needed_side
from snakes_web.web.inputs import decode_image
from snakes_web.web.results import Doubt, result_payload

#: ``pillow``: decode as usually written; anything else: our ``decode_image``.
DECODE_ENV = "BENCH_PEER_DECODE"
#: One worker's settings, predictor, model description and doubt rule, filled in when it starts.
STATE: dict[str, Any] = {}


def load() -> None:
    """Load the model in this worker process (``SNAKES_*`` from the environment), as our workers do."""
    settings = load_settings(overrides={"TORCH_THREADS": int(os.environ.get("SNAKES_TORCH_THREADS") or 1)})
    predictor = load_configured(settings)
    STATE.update(settings=settings, predictor=predictor, model=predictor.describe(), doubt=Doubt.of(settings),
                 side=needed_side(predictor), pillow=os.environ.get(DECODE_ENV) == "pillow")


def answer(data: bytes) -> dict[str, Any]:
    """Decode an upload and answer its predictions as /api/v1/predict does (a bad file raises SnakesError)."""
    if STATE["pillow"]:
        image = Image.open(io.BytesIO(data)).convert("RGB")
    else:
        image = decode_image(data, STATE["settings"], min_side=STATE["side"])
    return result_payload(STATE["predictor"].predict(image), STATE["model"], STATE["doubt"])
