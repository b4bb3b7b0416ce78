"""Property: whatever bytes arrive, the decoder answers an RGB image or one of our typed errors.

Example counts are bounded and the search is derandomized, so the suite stays fast and CI sees
the same examples every run. `SNAKES_FUZZ_EXAMPLES` raises the count for a longer local hunt.
"""
from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snakes_web.exceptions import SnakesError
from snakes_web.imaging.images import load_image
from tests.corpus import build_corpus

EXAMPLES = int(os.environ.get("SNAKES_FUZZ_EXAMPLES", "200"))
LIMIT = 4_000_000  # small, so a mutated header that claims many pixels is refused, not decoded
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
SEEDS = [case.data for case in build_corpus() if case.status == 200 and len(case.data) < 30_000]

def outcome(data: bytes) -> str:
    """Decode ``data``; return "image" or the typed error's status. Anything else fails the test."""
    try:
        image = load_image(data, LIMIT)
    except SnakesError as error:
        assert 400 <= error.status < 500 and error.detail
        return str(error.status)
    assert image.mode == "RGB" and image.width > 0 and image.height > 0
    return "image"


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid file from the corpus with bytes flipped, cut, inserted or repeated."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "zero", "repeat"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 4096))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "zero":
            data[at:at + 16] = bytes(len(data[at:at + 16]))
        elif kind == "repeat":
            data[at:at] = data[at:at + 256] * draw(st.integers(2, 8))
    return bytes(data)


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_are_an_image_or_a_typed_error(data: bytes) -> None:
    outcome(data)


@FUZZ
@given(st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
                        b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"\x00\x00\x00\x18ftypheic",
                        b"\x00\x00\x00\x1cftypavif"]), st.binary(max_size=2048))
def test_a_right_signature_with_random_bytes_after_it_is_an_image_or_a_typed_error(
        signature: bytes, rest: bytes) -> None:
    outcome(signature + rest)


@FUZZ
@given(mutated())
def test_mutated_valid_files_are_an_image_or_a_typed_error(data: bytes) -> None:
    outcome(data)


def test_mutations_reach_images_and_several_errors(capsys: pytest.CaptureFixture[str]) -> None:
    # Guards the property above from being vacuous: the mutated files are not all rejected early.
    seen: Counter[str] = Counter()

    @FUZZ
    @given(mutated())
    def collect(data: bytes) -> None:
        seen[outcome(data)] += 1

    collect()
    assert seen["image"] > 0 and len(seen) >= 3
    with capsys.disabled():
        print(f"\nmutated-file outcomes over {sum(seen.values())} examples: {dict(sorted(seen.items()))}")
