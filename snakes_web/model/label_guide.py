"""The labels file: what each of a model's labels means, for the people who read the answer.

Any model may ship one beside its export (``labels.json``, or the file ``SNAKES_LABELS`` names);
``export-onnx`` copies it into the ONNX file's metadata. Per label: a display name, an optional
scientific name, a one-line description, a warning level and a link. At the top: the sources the
entries were written from, and optionally the model's training prior and the deployment prior its
author argues for (``priors``). The default model's file is ``default_labels.json`` beside this module.
No torch, no Flask here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snakes_web.exceptions import ModelLoadError

LABELS_SETTING = "SNAKES_LABELS"
#: The file looked for beside the model when ``SNAKES_LABELS`` is empty.
BESIDE_MODEL = "labels.json"
#: The default model's labels file (snake species and "not a snake").
DEFAULT_GUIDE = Path(__file__).with_name("default_labels.json")
#: Warning levels, mildest first: the page shows a badge for "caution" and "venomous".
WARNINGS = ("none", "harmless", "caution", "venomous")
ENTRY_FIELDS = frozenset({"name", "scientific_name", "description", "warning", "link"})


@dataclass(frozen=True)
class Entry:
    """What one label means."""

    name: str
    description: str = ""
    scientific_name: str = ""
    warning: str = "none"
    link: str = ""

    def as_dict(self) -> dict[str, str]:
        """Return the JSON shape of the API (empty fields left out)."""
        shape = {"name": self.name, "scientific_name": self.scientific_name, "description": self.description,
                 "warning": self.warning, "link": self.link}
        return {key: value for key, value in shape.items() if value}


@dataclass(frozen=True)
class LabelGuide:
    """A model's labels file, read and checked."""

    entries: dict[str, Entry]
    origin: str  # where it was read from, for /api/v1/model and errors
    sources: tuple[str, ...] = ()
    training_prior: dict[str, float] | None = None
    deployment_prior: dict[str, float] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)  # as read: what export-onnx embeds

    def entry(self, label: str) -> Entry | None:
        """Return the label's entry, if the file has one."""
        return self.entries.get(label)

    def describe(self) -> dict[str, Any]:
        """Return what ``/api/v1/model`` says of the file: where it is from, its sources, every entry."""
        return {"origin": self.origin, "sources": list(self.sources),
                "entries": {label: entry.as_dict() for label, entry in self.entries.items()}}


def read_guide(path: Path) -> LabelGuide:
    """Read a labels file; raise ``ModelLoadError`` saying what is wrong with it."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelLoadError(f"the labels file {path} cannot be read ({type(exc).__name__}: {exc}); "
                             f"fix it or set {LABELS_SETTING}.") from None
    return parse_guide(document, str(path))


def parse_guide(document: Any, origin: str) -> LabelGuide:
    """Check a labels document (the file's JSON); raise ``ModelLoadError`` naming the first problem."""
    try:
        return _parsed(document, origin)
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"the labels file {origin} is not valid: {exc}; fix it or set {LABELS_SETTING}.") \
            from None


def _parsed(document: Any, origin: str) -> LabelGuide:
    """Build the guide, raising ValueError/TypeError on the first field that is wrong."""
    if not isinstance(document, dict) or not isinstance(document.get("labels"), dict):
        raise ValueError('it must be a JSON object with a "labels" object (label → entry)')
    entries = {}
    for label, raw in document["labels"].items():
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"].strip():
            raise ValueError(f"the entry of {label!r} needs a \"name\"")
        unknown = set(raw) - ENTRY_FIELDS
        if unknown:
            raise ValueError(f"the entry of {label!r} has unknown fields {sorted(unknown)} "
                             f"(allowed: {sorted(ENTRY_FIELDS)})")
        if not all(isinstance(value, str) for value in raw.values()):
            raise ValueError(f"the entry of {label!r} must hold text only")
        warning = raw.get("warning", "none")
        if warning not in WARNINGS:
            raise ValueError(f"the warning of {label!r} is {warning!r}, not one of {', '.join(WARNINGS)}")
        link = raw.get("link", "")
        if link and not link.startswith(("https://", "http://")):
            raise ValueError(f"the link of {label!r} must be an http(s) address")
        entries[str(label)] = Entry(raw["name"].strip(), raw.get("description", ""), raw.get("scientific_name", ""),
                                    warning, link)
    sources = document.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(source, str) for source in sources):
        raise ValueError('"sources" must be a list of text')
    return LabelGuide(entries, origin, tuple(sources), _prior(document, "training_prior"),
                      _prior(document, "deployment_prior"), document)


def _prior(document: dict[str, Any], key: str) -> dict[str, float] | None:
    """Return a prior mapping from the document (label → number > 0), or None when absent."""
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, (int, float)) and v > 0 for v in value.values()):
        raise ValueError(f'"{key}" must map labels to numbers above 0')
    return {str(label): float(v) for label, v in value.items()}


def beside_or_carried(model_path: Path, carried: Any) -> LabelGuide | None:
    """Return the model's own labels file: ``labels.json`` beside ``model_path``, else the document the model
    carries (an ONNX file's metadata, the default model's), else None."""
    beside = model_path.parent / BESIDE_MODEL
    if beside.is_file():
        return read_guide(beside)
    return None if carried is None else parse_guide(carried, f"carried by {model_path.name}")


def check_labels(guide: LabelGuide, labels: list[str]) -> None:
    """Raise ``ModelLoadError`` when the file describes labels the model does not have (a file for another model)."""
    unknown = sorted(set(guide.entries) - set(labels))
    if unknown:
        raise ModelLoadError(f"the labels file {guide.origin} describes {', '.join(map(repr, unknown))}, which the "
                             f"model does not have (its labels: {', '.join(labels)}); is it the file of another "
                             f"model? Fix it or set {LABELS_SETTING}.")
