"""The example photos a visitor can classify with one click: CC0 photographs shipped in ``static/``.

Their sources and licences are recorded in ``tests/data/SOURCES.md`` (the same files, byte for byte).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import STATIC


@dataclass(frozen=True)
class Example:
    """One example photo: its file in ``static/``, what it shows, and its credit line."""

    file: str
    alt: str
    credit: str


EXAMPLES: tuple[Example, ...] = (
    Example("example-chelsea.jpg", "Chelsea the cat, a tabby, close up",
            "Chelsea the cat: Stefan van der Walt, CC0 (via scikit-image)"),
    Example("example-coffee.jpg", "A cup of espresso on a saucer",
            "Coffee: Rachel Michetti, CC0 (via scikit-image)"),
)


def example_bytes(name: str) -> bytes | None:
    """Return the bytes of the example called ``name``, or None when there is no such example."""
    for example in EXAMPLES:
        if example.file == name:
            return (STATIC / example.file).read_bytes()
    return None
