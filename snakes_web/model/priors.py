"""Class priors: correct a classifier's probabilities for the class frequencies a deployment expects.

A classifier trained where class ``i`` made up ``train[i]`` of the photos, and shown photos where it
makes up ``deploy[i]``, should answer ``p'(i|x) ∝ p(i|x) · deploy[i] / train[i]`` — the label-shift
correction of Saerens, Latinne & Decaestecker (2002, "Adjusting the outputs of a classifier to new a
priori probabilities"). It needs no retraining and applies to any single-label model; with equal
priors it is the identity. No torch, no Flask here.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from snakes_web.exceptions import ModelLoadError

PRIORS_SETTING = "SNAKES_PRIORS"
#: ``SNAKES_PRIORS`` values that turn the correction off (the model's training prior is kept).
OFF = frozenset({"none", "off", "training"})


@dataclass(frozen=True)
class PriorShift:
    """The training and the deployment prior of a model's labels, and the weights between them."""

    labels: tuple[str, ...]
    training: tuple[float, ...]
    deployment: tuple[float, ...]
    source: str  # where the deployment prior came from: the setting, or the model's labels file

    @property
    def weights(self) -> tuple[float, ...]:
        """Return each label's ``deployment / training``."""
        return tuple(d / t for d, t in zip(self.deployment, self.training, strict=True))

    def apply(self, probabilities: Sequence[float]) -> list[float]:
        """Return ``probabilities`` (in label order) corrected to the deployment prior, summing to 1."""
        weighted = [p * w for p, w in zip(probabilities, self.weights, strict=True)]
        total = math.fsum(weighted)
        if total <= 0.0:  # every class at probability 0: nothing to reweigh
            return list(probabilities)
        return [value / total for value in weighted]

    def describe(self) -> dict[str, object]:
        """Return the JSON shape ``/api/v1/model`` reports: both priors, by label, and the source."""
        return {"training": dict(zip(self.labels, (round(t, 6) for t in self.training), strict=True)),
                "deployment": dict(zip(self.labels, (round(d, 6) for d in self.deployment), strict=True)),
                "source": self.source}


def parse_spec(raw: str) -> dict[str, float]:
    """Read ``label=p,label=p`` (a label may hold spaces; the last ``=`` splits); raise ValueError."""
    spec: dict[str, float] = {}
    for part in (piece.strip() for piece in raw.split(",")):
        if not part:
            continue
        label, equals, value = part.rpartition("=")
        if not equals or not label.strip():
            raise ValueError(f"{part!r} is not label=probability")
        probability = float(value)
        if not 0.0 < probability < 1.0 or not math.isfinite(probability):
            raise ValueError(f"the prior of {label.strip()!r} must be between 0 and 1 (exclusive), not {value}")
        spec[label.strip()] = probability
    return spec


def normalised(counts: Mapping[str, float], labels: Sequence[str], what: str) -> tuple[float, ...]:
    """Return ``counts`` (label → count or frequency) as frequencies in label order; every label needs one > 0."""
    missing = [label for label in labels if not counts.get(label, 0) > 0]
    unknown = sorted(set(counts) - set(labels))
    if missing or unknown:
        raise ModelLoadError(f"the {what} must give every label of the model a value above 0"
                             + (f"; missing: {', '.join(missing)}" if missing else "")
                             + (f"; not the model's labels: {', '.join(unknown)}" if unknown else ""))
    total = math.fsum(float(counts[label]) for label in labels)
    return tuple(float(counts[label]) / total for label in labels)


def deployment_prior(spec: Mapping[str, float], labels: Sequence[str], training: Sequence[float],
                     what: str = PRIORS_SETTING) -> tuple[float, ...]:
    """Return the deployment prior: the labels ``spec`` names get its values, the rest share what is left
    in proportion to their training prior (so "not a snake=0.5" spreads 0.5 over the species as trained)."""
    unknown = [label for label in spec if label not in labels]
    if unknown:
        raise ModelLoadError(f"{what} names {', '.join(map(repr, unknown))}, not among the model's labels "
                             f"({', '.join(labels)})")
    named = math.fsum(spec.values())
    rest = [i for i, label in enumerate(labels) if label not in spec]
    if named > 1.0 + 1e-9 or (rest and named >= 1.0 - 1e-9) or (not rest and abs(named - 1.0) > 1e-6):
        raise ModelLoadError(f"{what} gives priors that sum to {named:g}: they must sum to 1 when every label is "
                             f"named, and stay below 1 when some are left to share the rest")
    share = math.fsum(training[i] for i in rest)
    values = [spec[label] if label in spec else (1.0 - named) * training[i] / share
              for i, label in enumerate(labels)]
    total = math.fsum(values)
    return tuple(value / total for value in values)
