"""Step 4, the evaluation: validation accuracy, the confusion matrix and the worst mistakes, as text and PNG."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snakes_web.model.quiet import quiet

from .dataset import Dataset, relative


@dataclass
class Report:
    """Validation results: accuracy, the confusion matrix (rows: actual), and each photo's probabilities."""

    classes: list[str]
    paths: list[Path]
    actual: list[int]
    probabilities: list[list[float]]

    @property
    def predicted(self) -> list[int]:
        """Return the top class index of each validation photo."""
        return [top_index(row) for row in self.probabilities]

    @property
    def accuracy(self) -> float:
        """Return the fraction of validation photos whose top class is right."""
        right = sum(a == p for a, p in zip(self.actual, self.predicted, strict=True))
        return right / len(self.actual) if self.actual else 0.0

    @property
    def confusion(self) -> list[list[int]]:
        """Return counts[actual][predicted]."""
        matrix = [[0] * len(self.classes) for _ in self.classes]
        for actual, predicted in zip(self.actual, self.predicted, strict=True):
            matrix[actual][predicted] += 1
        return matrix

    def mistakes(self) -> list[tuple[Path, str, str, float]]:
        """Return (photo, actual, predicted, its probability) for each wrong one, most confident first."""
        wrong = [(path, self.classes[a], self.classes[p], self.probabilities[i][p])
                 for i, (path, a, p) in enumerate(zip(self.paths, self.actual, self.predicted, strict=True)) if a != p]
        return sorted(wrong, key=lambda item: -item[3])

    def text(self, root: Path | None = None, max_mistakes: int = 10) -> str:
        """Return the accuracy, the confusion matrix and the worst mistakes as plain text."""
        right = round(self.accuracy * len(self.actual))
        lines = [f"Validation accuracy: {self.accuracy:.1%} ({right} of {len(self.actual)})", "",
                 "Confusion matrix (rows: actual class, columns: predicted):"]
        width = max(5, *(len(label) for label in self.classes))
        cell = max(5, min(12, width) + 1, *(len(str(n)) + 1 for row in self.confusion for n in row))
        lines.append(" " * (width + 2) + "".join(f"{label[:cell - 1]:>{cell}}" for label in self.classes))
        for label, row in zip(self.classes, self.confusion, strict=True):
            lines.append(f"  {label:<{width}}" + "".join(f"{n:>{cell}}" for n in row))
        mistakes = self.mistakes()
        if mistakes:
            lines += ["", f"Mistakes ({len(mistakes)}, most confident first; worth a look for wrong labels):"]
            for path, actual, predicted, probability in mistakes[:max_mistakes]:
                shown = relative(path, root) if root else str(path)
                lines.append(f"  {shown}: {actual}, predicted {predicted} ({probability:.0%})")
            if len(mistakes) > max_mistakes:
                lines.append(f"  ... and {len(mistakes) - max_mistakes} more")
        return "\n".join(lines)


def top_index(probabilities: Sequence[float]) -> int:
    """Return the index of the largest probability (the first, on a tie)."""
    return max(range(len(probabilities)), key=probabilities.__getitem__)


def evaluate(learner: Any, dataset: Dataset) -> Report:
    """Predict every validation photo with the trained learner (the server's preprocessing)."""
    with learner.no_bar(), learner.no_logging(), quiet():
        probabilities, targets = learner.get_preds(ds_idx=1)
    return Report(list(learner.dls.vocab), [path for path, _ in dataset.valid], [int(t) for t in targets],
                  probabilities.tolist())


def plot_confusion(report: Report, destination: Path) -> Path:
    """Draw the confusion matrix as a PNG (matplotlib's Agg canvas: no display, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(report.classes)
    side = min(16.0, 2.5 + 0.6 * n)
    figure = Figure(figsize=(side, side), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    matrix = report.confusion
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(n), report.classes, rotation=45, ha="right")
    axes.set_yticks(range(n), report.classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("actual")
    axes.set_title(f"Validation accuracy {report.accuracy:.1%} ({len(report.actual)} photos)")
    top = max(max(row) for row in matrix) or 1
    for row in range(n):
        for column in range(n):
            value = matrix[row][column]
            axes.text(column, row, str(value), ha="center", va="center",
                      color="white" if value > top / 2 else "black")
    figure.tight_layout()
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(destination)
    return destination
