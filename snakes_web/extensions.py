"""One typed slot in a Flask app's ``extensions``: how the factory hands each part to the code that uses it.

No Flask import: the modules that own a part (the predictor, the inference gate, the stop flag) declare
its slot here and stay free of the web layer (the web layer's own parts, feedback and metrics, too).
"""
from __future__ import annotations

from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Slot(Generic[T]):
    """The place of one part in ``app.extensions``, under ``key``."""

    def __init__(self, key: str) -> None:
        self.key = key

    def attach(self, extensions: dict[str, Any], part: T) -> None:
        """Store ``part`` in a Flask app's ``extensions``."""
        extensions[self.key] = part

    def of(self, app: Any) -> T:
        """Return the part of a Flask app built by ``create_app``."""
        part: T = app.extensions[self.key]
        return part

    def find(self, app: Any) -> T | None:
        """Return the part, or None when the factory did not attach it (a setting turned it off)."""
        part: T | None = app.extensions.get(self.key)
        return part
