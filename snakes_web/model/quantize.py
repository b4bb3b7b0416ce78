"""int8 that keeps the answers: quantize an fp32 ONNX export, measure it against fp32, refuse a bad one.

Why the old ``--int8`` turned snakes into "not a snake": static quantization gives every tensor
one 8-bit range, taken from the calibration photos. After the last weighted layer the tensors are
per-class scores (logits, then the default model's log-softmax over 1000 classes and the logsumexp
that folds 983 of them into "not a snake"); on calibration photos where no snake wins, the snake
scores stay far below zero and "not a snake" stays near 0, so their calibrated ranges clip exactly
the values a snake photo produces: every snake's score saturates under "not a snake"'s. Measured on
synthesised positives of the default model (``positives``): head quantized, 1 of 18 classes kept;
logits layer in fp32 but log-softmax onwards quantized, or the reverse: 15 and 10 of 18; the last
weighted layer and everything after it in fp32: 18 of 18, at no measurable cost (4.1 → 4.2 ms).
So ``head_nodes`` keeps that part in fp32 for any model; weights stay per-channel (QDQ, int8
weights in 7 bits, uint8 activations, MinMax calibration); the convolutions, which are the cost, are int8.
The 7 bits (``reduce_range``): on x86 CPUs without VNNI, ONNX Runtime adds two u8×s8 products in a
saturating 16-bit sum that full-range weights can overflow (the likely reason a file checked on one
machine agreed on only 17/18 photos on another); 7-bit weights cannot overflow it, on any CPU.

``quantize_checked`` then runs both models on the check sets — photos, and positives where each
class is fp32's answer — and writes the int8 file only if the top-1 agreement on every set reaches
the threshold (``SNAKES_INT8_MIN_AGREEMENT``).
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .positives import STEPS, Pixels, Positives, positives_for

#: Ops that carry a learnt weight matrix: the last of them is where the per-class scores begin.
WEIGHTED_OPS = frozenset({"Gemm", "MatMul", "Conv", "ConvTranspose"})


class Int8Refused(ValueError):
    """The int8 model disagrees with fp32 too often; it was not written."""

    def __init__(self, message: str, agreements: Sequence[Agreement]) -> None:
        super().__init__(message)
        self.agreements = list(agreements)


@dataclass(frozen=True)
class CheckSet:
    """Network inputs (N×C×H×W, already preprocessed) on which int8 must agree with fp32."""

    name: str
    inputs: np.ndarray


@dataclass
class Agreement:
    """Top-1 agreement of int8 with fp32 on one check set, in all and per fp32 class."""

    name: str
    same: int
    total: int
    per_class: dict[str, tuple[int, int]] = field(default_factory=dict)  # fp32 top-1 → (same, inputs)

    @property
    def rate(self) -> float:
        """Return the share of inputs with the same top-1 (1.0 for an empty set)."""
        return self.same / self.total if self.total else 1.0

    def worst_class(self) -> tuple[str, float]:
        """Return the class (by fp32's answer) with the lowest agreement, and that agreement."""
        rates = {label: same / n for label, (same, n) in self.per_class.items() if n}
        label = min(rates, key=rates.__getitem__) if rates else ""
        return label, rates.get(label, 1.0)

    def line(self) -> str:
        """Say the agreement in one line."""
        label, worst = self.worst_class()
        classes = len([n for _, n in self.per_class.values() if n])
        return (f"{self.name}: {self.same}/{self.total} ({self.rate:.1%}) same top-1; "
                f"{classes} classes answered by fp32, lowest {worst:.0%} ({label})")


def head_nodes(model: Any) -> list[str]:
    """Name every node from the first of the outputs' last weighted nodes on (kept in fp32).

    Each graph output (the scores; the class activation maps, when the export has them) has a last
    weighted node on its way; the head starts at the earliest of them. Taking only the last weighted
    node of the whole graph is not enough: ONNX Runtime's pre-processing may order the maps' MatMul
    after the classifier's Gemm, and the Gemm would then be quantized (measured: 35/36 positives).
    """
    nodes = list(model.graph.node)
    weights = {initializer.name for initializer in model.graph.initializer}
    producer = {name: index for index, node in enumerate(nodes) for name in node.output}
    starts = []
    for output in model.graph.output:
        above, todo = set(), [output.name]
        while todo:
            index = producer.get(todo.pop())
            if index is not None and index not in above:
                above.add(index)
                todo.extend(nodes[index].input)
        weighted = [i for i in above
                    if nodes[i].op_type in WEIGHTED_OPS and any(name in weights for name in nodes[i].input[1:])]
        if weighted:
            starts.append(max(weighted))
    if not starts:
        return []
    return [node.name for node in nodes[min(starts):] if node.name]


def session(path: Path) -> Any:
    """Open an ONNX Runtime session on one thread, as each server worker runs it."""
    from .onnx_backend import open_session

    return open_session(path, threads=1)


def scorer(path: Path, batch: int = 16) -> Callable[[np.ndarray], np.ndarray]:
    """Return inputs → the model's output scores, run in batches."""
    opened = session(path)
    name = opened.get_inputs()[0].name

    def run(inputs: np.ndarray) -> np.ndarray:
        if not len(inputs):
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate([opened.run(None, {name: inputs[i:i + batch]})[0] for i in range(0, len(inputs), batch)])

    return run


def agreement(fp32: Callable[[np.ndarray], np.ndarray], int8: Callable[[np.ndarray], np.ndarray],
              check: CheckSet, labels: Sequence[str]) -> Agreement:
    """Compare the top-1 of both models on one check set, per fp32 class."""
    reference, ours = np.argmax(fp32(check.inputs), axis=1), np.argmax(int8(check.inputs), axis=1)
    per_class: dict[str, tuple[int, int]] = {}
    for expected, got in zip(reference.tolist(), ours.tolist(), strict=True):
        same, n = per_class.get(labels[expected], (0, 0))
        per_class[labels[expected]] = (same + int(expected == got), n + 1)
    return Agreement(check.name, int((reference == ours).sum()), len(check.inputs), per_class)


def quantize(fp32: Path, destination: Path, calibration: Sequence[np.ndarray], keep_head: bool = True) -> None:
    """Write a static int8 (QDQ, per-channel 7-bit weights) copy of ``fp32``, calibrated on preprocessed inputs."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .quiet import quiet

    name = session(fp32).get_inputs()[0].name
    batches = iter([{name: item if item.ndim == 4 else item[None]} for item in calibration])

    class Reader(CalibrationDataReader):  # type: ignore[misc]  # onnxruntime has no type stubs
        """Feed the preprocessed calibration inputs one by one."""

        def get_next(self) -> dict[str, Any] | None:
            """Return the next batch, or None when done."""
            return next(batches, None)

    with tempfile.TemporaryDirectory(dir=Path(destination).parent) as scratch, quiet():
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        excluded = head_nodes(onnx.load(str(prepared))) if keep_head else []
        quantize_static(str(prepared), str(destination), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=True,
                        nodes_to_exclude=excluded or None)


def quantize_checked(fp32: Path, destination: Path, calibration: Sequence[np.ndarray], checks: Sequence[CheckSet],
                     labels: Sequence[str], min_agreement: float, keep_head: bool = True) -> list[Agreement]:
    """Quantize, measure agreement on every check set, and write ``destination`` only if each reaches the bar.

    Raise ``Int8Refused`` (nothing written) when a set's top-1 agreement is below ``min_agreement``.
    """
    import onnx

    from .onnx_export import write_metadata  # the one place metadata is written

    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent) as scratch:
        partial = Path(scratch) / destination.name
        quantize(fp32, partial, calibration, keep_head=keep_head)
        reference, ours = scorer(fp32), scorer(partial)
        agreements = [agreement(reference, ours, check, labels) for check in checks]
        low = [a for a in agreements if a.rate < min_agreement]
        if low:
            raise Int8Refused(f"the int8 model agrees with fp32 on the top-1 of only {low[0].same} of "
                              f"{low[0].total} {low[0].name} ({low[0].rate:.1%}, below {min_agreement:.1%}); "
                              f"not written", agreements)
        metadata = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}
        head = "classifier head in fp32, " if keep_head else ""
        metadata["quantization"] = (f"int8 static QDQ, per-channel 7-bit weights, {head}calibrated on "
                                    f"{len(calibration)} images; top-1 agreement with fp32: "
                                    + "; ".join(f"{a.name} {a.same}/{a.total}" for a in agreements))
        write_metadata(partial, metadata)
        partial.replace(destination)
    return agreements


def positives_of(pkl: Path, fp32: Path, starts: np.ndarray, labels: Sequence[str], per_class: int = 2,
                 steps: int = STEPS) -> Positives:
    """Synthesise positives of every class of ``fp32`` from ``starts``, on ``pkl``'s fp32 torch network.

    The pixel scale and the activation come from ``fp32``'s metadata, and fp32 ONNX decides which are kept.
    """
    import json

    from .fastai_backend import load_learner_quietly

    meta = dict(session(fp32).get_modelmeta().custom_metadata_map)
    pixels = Pixels(json.loads(meta["div"]), json.loads(meta["mean"]), json.loads(meta["std"]))
    return positives_for(load_learner_quietly(Path(pkl)).model, starts, labels, pixels, meta["activation"],
                         scorer(fp32), per_class=per_class, steps=steps)


@dataclass
class Int8Export:
    """What ``export_int8`` measured: the agreement on each check set, and the positives it made."""

    agreements: list[Agreement]
    positives: dict[str, int]  # class → positives kept
    tried: int

    def lines(self) -> list[str]:
        """Say what was measured, one line per check set (and the classes without a positive)."""
        lines = [f"int8 vs fp32, {a.line()}" for a in self.agreements]
        missing = [label for label, n in self.positives.items() if not n]
        if missing:
            lines.append(f"no positive could be synthesised for: {', '.join(missing)}")
        return lines


def export_int8(pkl: Path, fp32: Path, destination: Path, calibration: Sequence[Any], photos: Sequence[Any],
                min_agreement: float, per_class: int = 2, steps: int | None = None) -> Int8Export:
    """Quantize ``fp32`` (converted from ``pkl``), checked on ``photos`` and on positives synthesised from them.

    ``calibration`` and ``photos`` are PIL images, preprocessed here as the server does; the positives
    start from ``photos`` and are pushed, on the fp32 torch network of ``pkl``, to every class.
    """
    from .onnx_backend import OnnxPredictor

    predictor = OnnxPredictor(Path(fp32), threads=1)
    photo_inputs = np.concatenate([predictor.prepare(image) for image in photos])
    made = positives_of(pkl, fp32, photo_inputs, predictor.labels, per_class=per_class, steps=steps or STEPS)
    checks = [CheckSet("photos", photo_inputs), CheckSet("positives", made.inputs)]
    agreements = quantize_checked(fp32, destination, [predictor.prepare(image) for image in calibration], checks,
                                  predictor.labels, min_agreement)
    return Int8Export(agreements, made.per_class(), made.tried)
