"""Positives: network inputs that the fp32 model itself rates as each of its classes.

A check of int8 against fp32 can only see a broken class where that class wins. With no licensed
photo of every class at hand (no snake photos here), ``synthesise`` makes one: it starts from a
natural photo (preprocessed exactly as the server does) and changes its pixels by projected
gradient ascent on the fp32 torch network's probability of the wanted class — a signed step of
``step`` pixel levels at a time, clipped to [0, 255], until that class reaches ``confidence`` or
``steps`` run out — then rounds to whole pixel levels, so each positive is an image the server
could be sent (the centre crop it feeds the network). Only inputs the fp32 ONNX model then rates
as the class are kept (``keep_positives``): the check's reference is always fp32's own answer.

Why this is a fair check and not a rigged one: it does not look at the int8 model at all; it pushes
the fp32 network into the state a real photo of the class puts it in (that class's score high,
the rest low) — the state a calibration set without that class never shows the quantizer. The
inputs are adversarial-style, so they sit nearer the decision boundaries than photos do: a
stricter test of agreement, not a kinder one. Deterministic: fixed starts, fixed steps, no noise.

Needs torch (the model layer, like ``onnx_export``); nothing here touches the web.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Defaults that make a confident positive in ~15 steps for EfficientNet-Lite0 (measured: 11-14 steps).
STEPS, STEP, CONFIDENCE = 40, 2.0, 0.9


@dataclass(frozen=True)
class Pixels:
    """How network inputs relate to pixel levels: ``input = (pixel / div - mean) / std`` per channel."""

    div: float
    mean: Sequence[float] | None
    std: Sequence[float] | None

    def to_pixels(self, inputs: np.ndarray) -> np.ndarray:
        """Return the pixel levels (0..255) behind normalised inputs (N×C×H×W)."""
        values = inputs.astype(np.float64)
        if self.mean is not None and self.std is not None:
            values = values * np.asarray(self.std)[None, :, None, None] + np.asarray(self.mean)[None, :, None, None]
        return values * (self.div or 1.0)

    def to_inputs(self, pixels: Any) -> Any:
        """Return normalised inputs for pixel levels (NumPy or torch, N×C×H×W)."""
        values = pixels / (self.div or 1.0)
        if self.mean is not None and self.std is not None:
            mean: Any = np.asarray(self.mean, dtype=np.float32)[None, :, None, None]
            std: Any = np.asarray(self.std, dtype=np.float32)[None, :, None, None]
            if not isinstance(values, np.ndarray):
                import torch

                mean, std = torch.from_numpy(mean), torch.from_numpy(std)
            values = (values - mean) / std
        return values


def synthesise(model: Any, starts: np.ndarray, targets: Sequence[int], pixels: Pixels, activation: str = "softmax",
               steps: int = STEPS, step: float = STEP, confidence: float = CONFIDENCE) -> np.ndarray:
    """Push each start (a preprocessed photo) towards its target class; return the inputs, on the pixel grid."""
    import torch

    model = model.eval().float().cpu()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    target = torch.as_tensor(list(targets), dtype=torch.long)
    levels = torch.from_numpy(np.round(pixels.to_pixels(starts)).astype(np.float32)).requires_grad_(True)
    for _ in range(steps):
        output = model(pixels.to_inputs(levels))
        wanted = output.gather(1, target[:, None])[:, 0]
        if activation == "sigmoid":
            score, others = torch.sigmoid(wanted), torch.zeros_like(wanted)
            loss = -torch.nn.functional.logsigmoid(wanted).sum()
        else:  # softmax (and "none", which fastai reads as scores): cross-entropy on the outputs
            score = torch.softmax(output, dim=1).gather(1, target[:, None])[:, 0]
            masked = output.detach().clone()
            masked.scatter_(1, target[:, None], float("-inf"))
            others = masked.max(dim=1).values
            loss = torch.nn.functional.cross_entropy(output, target, reduction="sum")
        going = (score < confidence) | (wanted.detach() <= others)  # done: confident and on top
        if not bool(going.any()):
            break
        (gradient,) = torch.autograd.grad(loss, levels)
        with torch.no_grad():
            levels -= step * gradient.sign() * going.float()[:, None, None, None]
            levels.clamp_(0, 255)
    rounded = torch.round(levels.detach()).numpy()
    return np.ascontiguousarray(pixels.to_inputs(rounded).astype(np.float32))


@dataclass
class Positives:
    """Inputs the fp32 model rates as each class: ``inputs[i]`` is a positive of ``labels[classes[i]]``."""

    inputs: np.ndarray
    classes: list[int]
    labels: list[str]
    tried: int

    def per_class(self) -> dict[str, int]:
        """Return how many positives each class has (0 where synthesis failed)."""
        counts = {label: 0 for label in self.labels}
        for index in self.classes:
            counts[self.labels[index]] += 1
        return counts


def keep_positives(run: Any, inputs: np.ndarray, targets: Sequence[int], labels: Sequence[str]) -> Positives:
    """Keep the inputs whose fp32 top-1 (``run``: inputs → scores) is their target class."""
    top = np.argmax(run(inputs), axis=1)
    keep = [i for i, target in enumerate(targets) if int(top[i]) == int(target)]
    return Positives(inputs[keep], [int(targets[i]) for i in keep], list(labels), len(targets))


def positives_for(model: Any, starts: np.ndarray, labels: Sequence[str], pixels: Pixels, activation: str,
                  run: Any, per_class: int = 2, steps: int = STEPS, batch: int = 36) -> Positives:
    """Synthesise ``per_class`` positives of every class from ``starts`` (cycled), checked with ``run``."""
    targets = [klass for klass in range(len(labels)) for _ in range(per_class)]
    chosen = np.stack([starts[(klass * per_class + k) % len(starts)]
                       for klass in range(len(labels)) for k in range(per_class)])
    made = [synthesise(model, chosen[i:i + batch], targets[i:i + batch], pixels, activation, steps=steps)
            for i in range(0, len(targets), batch)]
    return keep_positives(run, np.concatenate(made), targets, labels)
