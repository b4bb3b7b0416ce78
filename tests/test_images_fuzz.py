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
from snakes_web.images import load_image
from tests.corpus import build_corpus

EXAMPLES = int(os.environ.get("SNAKES_FUZZ_EXAMPLES", "200"))
LIMIT = 4_000_000  # small, so a mutated header that claims many pixels is refused, not decoded
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
SEEDS = [case.data for case in build_corpus() if case.status == 200 and len(case.data) < 30_000]

#: Outcomes seen, by kind, for the closing note (printed by the summary test).
OUTCOMES: Counter[str] = Counter()


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
    OUTCOMES["random:" + outcome(data)] += 1


@FUZZ
@given(st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
                        b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"\x00\x00\x00\x18ftypheic",
                        b"\x00\x00\x00\x1cftypavif"]), st.binary(max_size=2048))
def test_a_right_signature_with_random_bytes_after_it_is_an_image_or_a_typed_error(
        signature: bytes, rest: bytes) -> None:
    OUTCOMES["signature:" + outcome(signature + rest)] += 1


@FUZZ
@given(mutated())
def test_mutated_valid_files_are_an_image_or_a_typed_error(data: bytes) -> None:
    OUTCOMES["mutated:" + outcome(data)] += 1


@pytest.mark.parametrize("_", [None])
def test_zz_the_fuzzing_ran_and_met_several_outcomes(_: None, capsys: pytest.CaptureFixture[str]) -> None:
    # Runs after the property tests in this module: the mutations must reach both sides.
    if not OUTCOMES:
        pytest.fail("run this module whole: the property tests record their outcomes here")
    mutated_kinds = {key.split(":")[1] for key in OUTCOMES if key.startswith("mutated:")}
    assert "image" in mutated_kinds and len(mutated_kinds) >= 3
    with capsys.disabled():
        print(f"\nfuzz outcomes ({sum(OUTCOMES.values())} examples): {dict(sorted(OUTCOMES.items()))}")
