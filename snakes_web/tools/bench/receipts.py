"""The bench's feedback scenario: what "Is this right?" costs a prediction that does not answer it.

The int8 server on the 1 MP JPEG three ways, alternated over rounds in one run: feedback off, as
shipped (a JavaScript frontend's request, no receipt asked), and as shipped asked for a receipt
(``?feedback=1``, what the page's script sends). Images/s, CPU per image and the answer's size.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .scenarios import Scenario
from .servers import serve

PREDICT = "/api/v1/predict"
#: (name, environment, path) of each way.
WAYS: tuple[tuple[str, dict[str, str], str], ...] = (
    ("feedback off (`SNAKES_FEEDBACK=false`)", {"SNAKES_FEEDBACK": "false"}, PREDICT),
    ("as shipped, no receipt asked (an API client)", {}, PREDICT),
    ("as shipped, `?feedback=1` (the page's script)", {}, PREDICT + "?feedback=1"))


def receipts_section(model: Path, image: Path, args: argparse.Namespace, work: Path) -> str:
    """Measure each way ``rounds`` times, alternating, and return the Markdown section."""
    rounds = 1 if args.smoke else 2
    runs = alternated(WAYS, model, image, args, work, "receipts", rounds)
    lines = ["", "## Feedback's price: a prediction nobody answers", "",
             f"The int8 server (its shipped defaults but the one setting named), {args.concurrency} uploads of "
             f"the {LABEL} in flight, each way measured {rounds} time(s), alternated, in this run; the mean. "
             "A receipt is asked for only with `?feedback=1`; feedback off asks no question at all.", ""]
    return "\n".join(lines + ways_table(runs, "feedback off")) + "\n"


#: The bench image every "ways" comparison is measured on.
LABEL = "1 MP JPEG"


def alternated(ways: Sequence[tuple[str, dict[str, str], str]], model: Path, image: Path, args: argparse.Namespace,
               work: Path, tag: str, rounds: int) -> dict[str, list[Scenario]]:
    """Serve ``model`` once per way and round, return the runs. The order turns round every other round
    (A B, B A, …), so neither drift nor going first or last favours a way."""
    runs: dict[str, list[Scenario]] = {name: [] for name, _, _ in ways}
    for turn in range(rounds):
        order = list(enumerate(ways))
        for index, (name, settings, path) in (order if turn % 2 == 0 else order[::-1]):
            print(f"  {name}, round {turn + 1} of {rounds} ...", flush=True)
            runs[name].append(serve(name, model, {LABEL: image}, args, work / f"{tag}-{index}-{turn}.log",
                                    settings={**settings, "SNAKES_DATA_DIR": str(work / "feedback-data")},
                                    path=path))
    return runs


def ways_table(runs: dict[str, list[Scenario]], baseline: str) -> list[str]:
    """Return the table rows: each way's mean images/s, its ratio to the first way, CPU, p50, answer bytes."""
    first = _mean_rate(next(iter(runs.values())), LABEL)
    lines = [f"| server | img/s | vs {baseline} | CPU ms / image | p50 ms | answer bytes | errors |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, scenarios in runs.items():
        loads = [scenario.loads[LABEL] for scenario in scenarios]
        rate = _mean_rate(scenarios, LABEL)
        cpu = sum(load.cpu_ms_per_image for load in loads) / len(loads)
        p50 = sum(load.percentile(50) for load in loads) / len(loads)
        lines.append(f"| {name} | {rate:.1f} | {rate / first if first else float('nan'):.2f}× | {cpu:.1f} "
                     f"| {p50:.0f} | {loads[-1].answer_bytes:,} | {sum(load.errors for load in loads)} |")
    return lines


def _mean_rate(scenarios: list[Scenario], label: str) -> float:
    """Return the mean images/s of one way over its rounds."""
    return sum(s.loads[label].rate for s in scenarios) / len(scenarios)
