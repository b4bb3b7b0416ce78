"""The multipart decoder the app installs finds what Werkzeug's own finds, on bodies made to trip it."""
from __future__ import annotations

import io
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug import formparser
from werkzeug.sansio.multipart import MultipartDecoder

from snakes_web import create_app
from snakes_web.web.multipart import BoundaryFinder, BoundaryFirstDecoder
from tests.conftest import FakePredictor, image_bytes

BOUNDARY = b"b0undary"
#: Pieces that make near-boundaries: line breaks of each kind, dashes, the boundary and parts of it.
PIECES = st.sampled_from([b"\r\n", b"\r", b"\n", b"--", b"-", BOUNDARY, BOUNDARY[:4], b" ", b"\t", b"x" * 7,
                          b"--" + BOUNDARY, b"\r\n--" + BOUNDARY + b"--", b"\r\n--" + BOUNDARY + b"\r\n"])
BODIES = st.lists(PIECES, max_size=40).map(b"".join)


def spans(match: Any) -> tuple[int, int, bytes] | None:
    """Return what the decoder uses of a match: where it starts and ends, and its group."""
    return None if match is None else (match.start(), match.end(), match.group(1))


@settings(max_examples=400, deadline=None)
@given(data=BODIES, pos=st.integers(0, 8))
def test_the_boundary_searches_find_the_matches_werkzeug_s_patterns_find(data: bytes, pos: int) -> None:
    werkzeug = MultipartDecoder(BOUNDARY)
    for ours, theirs in ((BoundaryFinder(BOUNDARY, optional_break=False), werkzeug.boundary_re),
                         (BoundaryFinder(BOUNDARY, optional_break=True), werkzeug.preamble_re)):
        assert spans(ours.search(data, pos)) == spans(theirs.search(data, pos))
        assert spans(ours.search(bytearray(data))) == spans(theirs.search(bytearray(data)))


def test_the_decoder_sets_what_werkzeug_s_own_sets() -> None:
    """It replaces Werkzeug's __init__ (to compile nothing): a Werkzeug that sets more fails here, not in use."""
    assert sorted(vars(BoundaryFirstDecoder(BOUNDARY, 100, max_parts=3))) == sorted(
        vars(MultipartDecoder(BOUNDARY, 100, max_parts=3)))


def events(decoder: MultipartDecoder, body: bytes, chunk: int) -> list[object]:
    """Feed ``body`` in chunks of ``chunk`` bytes; return every event (as repr) or the error's type."""
    seen: list[object] = []
    try:
        for start in range(0, len(body) + 1, chunk):
            decoder.receive_data(body[start:start + chunk] if start < len(body) else None)
            while (event := decoder.next_event()).__class__.__name__ not in ("NeedData", "Epilogue"):
                seen.append(repr(event))
            if event.__class__.__name__ == "Epilogue":
                seen.append(repr(event))
                break
    except ValueError as error:
        seen.append(type(error).__name__)
    return seen


@settings(max_examples=300, deadline=None)
@given(preamble=BODIES, content=BODIES, chunk=st.integers(1, 64))
def test_a_whole_body_decodes_to_the_same_events_in_any_chunking(preamble: bytes, content: bytes, chunk: int) -> None:
    body = (preamble + b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n"
            + content + b"\r\n--" + BOUNDARY + b"--\r\n")
    assert events(BoundaryFirstDecoder(BOUNDARY), body, chunk) == events(MultipartDecoder(BOUNDARY), body, chunk)


def test_the_app_parses_uploads_with_it() -> None:
    app = create_app({"PREDICTOR": FakePredictor(), "TESTING": True})
    assert formparser.MultipartDecoder is BoundaryFirstDecoder
    response = app.test_client().post("/api/v1/predict", data={"file": (io.BytesIO(image_bytes("JPEG")), "a.jpg")})
    assert response.status_code == 200 and response.get_json()["predictions"]
