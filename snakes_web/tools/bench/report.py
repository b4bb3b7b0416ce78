"""The Markdown the bench writes into docs/benchmarks.md: tables, ratios against the strongest baseline, targets."""
from __future__ import annotations

import argparse
import math
import os
import platform
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .in_process import (
    meets_bar,
)
from .scenarios import BASELINES, STRONGEST, SYNC, SYNC_ARGS, THREADED, WRITTEN, Scenario
from .slow_clients import SLOW_UPLOAD_BYTES


def machine() -> str:
    """Describe the machine: CPU, cores, memory, load, versions."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    from snakes_web.serving.sizing import available_cores, available_memory_mb

    versions = []
    for package in ("onnxruntime", "torch", "fastai", "pillow", "numpy", "gunicorn", "flask"):
        try:
            from importlib.metadata import version

            versions.append(f"{package} {version(package)}")
        except Exception:  # noqa: BLE001 - a package that is not installed is just not listed
            pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"{cpu}; {available_cores()} usable cores ({os.cpu_count()} online); "
            f"{available_memory_mb()} MB available; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}; {', '.join(versions)}; load average before the run: {load}")


def table(scenarios: list[Scenario], labels: Sequence[str]) -> str:
    """Render the results as a Markdown table with ratios against the first scenario."""
    base = scenarios[0]
    written = next((s for s in scenarios if s.name == BASELINES[WRITTEN]), base)
    lines = ["| scenario | image | images/s | × learn.predict | × as written | p50 ms | p99 ms | CPU ms/image | CPU × "
             "| errors |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for scenario in scenarios:
        for label in labels:
            load, reference = scenario.loads[label], base.loads[label]
            ratio = load.rate / reference.rate if reference.rate else float("nan")
            usual = load.rate / written.loads[label].rate if written.loads[label].rate else float("nan")
            saving = reference.cpu_ms_per_image / load.cpu_ms_per_image if load.cpu_ms_per_image else float("nan")
            lines.append(f"| {scenario.name} | {label} | {load.rate:.1f} | {ratio:.2f}× | {usual:.2f}× | "
                         f"{load.percentile(50):.0f} | {load.percentile(99):.0f} | {load.cpu_ms_per_image:.1f} | "
                         f"{saving:.2f}× | {load.errors} |")
    lines += ["", "| scenario | set-up | RSS per worker (MB) | process start → first answer (s) "
                  "| load generator CPU ms/request |",
              "|---|---|---|---:|---:|"]
    for scenario in scenarios:
        rss = ", ".join(f"{value:.0f}" for value in scenario.rss_mb)
        client_ms = [load.client_cpu_ms for load in scenario.loads.values() if not math.isnan(load.client_cpu_ms)]
        client = f"{statistics.mean(client_ms):.1f}" if client_ms else "—"
        lines.append(f"| {scenario.name} | {scenario.note} | {rss} | {scenario.start_to_first_answer_s:.2f} "
                     f"| {client} |")
    return "\n".join(lines)


def versus_table(scenarios: list[Scenario], labels: Sequence[str]) -> str:
    """Render images/s of the threaded server (3) over the sync one (3s), per image."""
    named = {scenario.name: scenario for scenario in scenarios}
    threaded, sync = named[THREADED], named[SYNC]
    lines = ["| image | (3) threaded images/s | (3s) sync images/s | threaded ÷ sync | ≥ 0.95 "
             "| CPU ms/image threaded / sync |",
             "|---|---:|---:|---:|---|---:|"]
    for label in labels:
        new, old = threaded.loads[label], sync.loads[label]
        ratio = new.rate / old.rate if old.rate else float("nan")
        lines.append(f"| {label} | {new.rate:.1f} | {old.rate:.1f} | {ratio:.2f}× | {'yes' if ratio >= 0.95 else 'no'} "
                     f"| {new.cpu_ms_per_image:.1f} / {old.cpu_ms_per_image:.1f} |")
    return "\n".join(lines)


def counted(outcomes: dict[str, int]) -> str:
    """Render how slow sockets ended, commonest first: ``408 × 96, no answer × 2``."""
    return ", ".join(f"{outcome} × {count}" for outcome, count in Counter(outcomes).most_common()) or "—"


def slow_table(scenarios: list[Scenario]) -> str:
    """Render the slow-clients measurement of each server that had one."""
    configs = {THREADED: "threaded (now)", SYNC: "sync (before)"}
    lines = ["| config | slow uploads held | slow URLs held | normal uploads answered 200 / sent | p50 ms | "
             "p99 ms | max ms | slow uploads ended as | slow URLs ended as |",
             "|---|---|---|---:|---:|---:|---:|---|---|"]
    for scenario in scenarios:
        if (slow := scenario.slow) is None:
            continue
        normal = slow.normal
        lines.append(f"| {configs.get(scenario.name, scenario.name)} | {slow.held_uploads} of {slow.plan.uploads} "
                     f"(re-opened: {slow.cuts}) | {slow.held_urls} of {slow.plan.urls} (being fetched: "
                     f"{slow.fetching}; re-opened: {slow.url_restarts}) | {normal.total - normal.errors} / "
                     f"{normal.total} | {normal.percentile(50):.0f} | {normal.percentile(99):.0f} | "
                     f"{max(normal.latencies_ms):.0f} | {counted(slow.upload_ends)} | {counted(slow.url_ends)} |")
    return "\n".join(lines)


def slow_section(scenarios: list[Scenario]) -> str:
    """Return the report's slow-clients paragraph and table, or nothing when it was not measured."""
    plans = {scenario.name: scenario.slow.plan for scenario in scenarios if scenario.slow is not None}
    if THREADED not in plans or SYNC not in plans:
        return ""
    threaded, sync = plans[THREADED], plans[SYNC]
    spread = f", spread over {threaded.spread:g} s so they straddle the server's cuts" if threaded.spread else ""
    return f"""
**Slow clients.** On the servers of (3) and (3s), after their load (both started with
`SNAKES_ALLOW_PRIVATE_URLS=true SNAKES_FETCH_TIMEOUT={threaded.fetch_timeout:g}`, otherwise the defaults), the bench
holds {threaded.uploads} slow uploads open (headers announcing `Content-Length: {SLOW_UPLOAD_BYTES}` of multipart,
then 1 byte a second) and {threaded.urls} slow URLs (`{{"url": "http://127.0.0.1:…/slow.jpg"}}`, whose image
server, run by the bench, answers 200 `image/jpeg` and then sends 1 byte a second), opened in turn.
A slow socket the server ends is re-opened at once (*re-opened* counts them), so that all stay held
while {threaded.normal} normal uploads of the 1 MP JPEG go one after another, each on a new connection{spread},
with a client timeout of {threaded.timeout:g} s (a timeout is a failure, its latency the timeout). The sync
server gets only {sync.normal} normal uploads, with a {sync.timeout:g} s timeout: its workers are all held by
slow clients, so every normal upload is expected to time out, and the cap keeps the bench short.
*Held*: the fewest open when a normal upload started (*being fetched*: how many of the slow URLs
the image server was then sending to, i.e. whose fetch the server had started). *Ended as*: how
every slow socket ended, re-opened ones included — the status it got, or *no answer* when the bench
gave up, {threaded.give_up:g} s after the first slow socket opened and at least 2 s after the last normal
upload (*closed*/*reset*: the server closed it without an answer).
Target for the threaded server: p99 < 1 s.

{slow_table(scenarios)}
"""


def versus_section(scenarios: list[Scenario], labels: Sequence[str]) -> str:
    """Return the report's threaded-vs-sync paragraph and table."""
    return f"""
**Threaded vs sync.** (3) and (3s) serve the same ONNX model with the same `gunicorn.conf.py`; (3s)
adds `{' '.join(SYNC_ARGS)}` on gunicorn's command line (which overrides the file): the sync
workers the server ran before the threaded one. images/s of (3) over (3s), same image, this run
(target ≥ 0.95), and the CPU per image of both (steadier on a shared machine):

{versus_table(scenarios, labels)}
"""


def report(scenarios: list[Scenario], labels: Sequence[str], args: argparse.Namespace, about: str,
           extra: str) -> str:
    """Return the whole docs/benchmarks.md text."""
    command = "snakes-web bench " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["bench"] else sys.argv[1:])
    return f"""# Benchmarks

Written by `snakes-web bench` (`make bench`) on {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}.
Command: `{command.strip()}`

**Machine:** {about}

**Method.** One run, the same model (`{args.model.name}` and its ONNX conversion) and the same
generated images ({", ".join(labels)}). (1) `learn.predict` in one process, one image after another,
in its strongest honest configuration: `torch.set_num_threads` to the cores, no progress bar, the image
decoded once per call (`PILImage.create(bytes)`) and `torch.inference_mode()`; every *×* ratio is against
it. (1w) the same call as usually written (`learn.predict(raw_bytes)`, torch's default threads), the
baseline every fastai tutorial serves with; *× as written* is against it. (2), (3)
(and (4), the int8 export; `--no-int8` leaves it out): our gunicorn (`gunicorn.conf.py`, threaded workers sized
from the cores and memory; (3s): sync workers, see below) on loopback, loaded by a separate client
process keeping {args.concurrency} requests in flight, each a multipart upload to `/api/v1/predict` on
a new connection. Every measurement: {args.warmup:g} s warm-up, then {args.duration:g} s counted.
Ratios are against (1) (and (1w)) on the same image, in this run.
*CPU ms/image* is the CPU time (user + system, every thread) the serving processes spent per image —
for the servers the gunicorn master and workers, warm-up included; *CPU ×* is (1)'s CPU per image
over this row's. On a machine shared with other work, images/s and latencies move with the
neighbours' load; CPU per image moves much less, so *CPU ×* is the steadier comparison. Analysis
and profiles: [performance.md](performance.md).
The load generator runs on the same cores; its CPU per request (its start-up included) is in the last column.
RSS is per worker after the load; start → first answer is from launching the process to the first
200 answer (for (1) and (1w): to the first `learn.predict` result).

{table(scenarios, labels)}
{versus_section(scenarios, labels) if any(s.name == SYNC for s in scenarios) else ""}{slow_section(scenarios)}{extra}"""


def targets_section(scenarios: list[Scenario], labels: Sequence[str], served: str,
                    measured: dict[str, Any] | None) -> str:
    """Render the issue's targets against this run: speed-up, big-over-small JPEG cost, int8 agreement."""
    named = {scenario.name: scenario for scenario in scenarios}
    base, row = named[BASELINES[STRONGEST]], named[served]
    small, big = labels[0], labels[1]
    speed = row.loads[small].rate / base.loads[small].rate if base.loads[small].rate else float("nan")
    rate_ratio = row.loads[small].rate / row.loads[big].rate if row.loads[big].rate else float("nan")
    cpu_ratio = row.loads[big].cpu_ms_per_image / row.loads[small].cpu_ms_per_image
    lines = ["", f"**Targets** (this run; the served model is what `make run` serves: {served}):", "",
             "| target | measured | met |", "|---|---:|---|",
             f"| served images/s ≥ 5× the strongest `learn.predict` ({small}) | {speed:.2f}× | "
             f"{'yes' if speed >= 5 else 'no'} |",
             f"| {big} costs ≤ 2.5× {small} (images/s ratio) | {rate_ratio:.2f}× | {_yes(rate_ratio <= 2.5)} |",
             f"| {big} costs ≤ 2.5× {small} (CPU per image) | {cpu_ratio:.2f}× | {_yes(cpu_ratio <= 2.5)} |"]
    if measured is not None:
        low = min((same / n for entry in measured["agreements"] for same, n in entry["per_class"].values() if n),
                  default=1.0)
        lines.append(f"| int8 top-1 agreement ≥ 99.5% on every check set and every class | lowest class {low:.1%} | "
                     f"{'yes' if meets_bar(measured) else 'no'} |")
    return "\n".join(lines) + "\n"


def _yes(met: bool) -> str:
    """Say whether a target was met."""
    return "yes" if met else "no"


def top3(probabilities: dict[str, float]) -> list[str]:
    """Return the three likeliest labels, most likely first."""
    return sorted(probabilities, key=probabilities.__getitem__, reverse=True)[:3]


#: How docs pages quote this file (pymdownx.snippets): ``--8<-- "benchmarks.md:<name>"`` takes one block.
SECTION_MARK = re.compile(r"^<!-- --8<-- \[(?:start|end):[a-z0-9-]+\] -->\n", flags=re.M)
BLOCK_START = re.compile(r"^(?:## (?P<heading>.+)|\*\*(?P<bold>[^*]+?)[.:]?\*\*)", flags=re.M)


def section_name(title: str, taken: set[str]) -> str:
    """Return a block's snippet name: its title's first six words, lower case, joined by dashes, unique."""
    words = re.findall(r"[a-z0-9]+", title.lower())[:6]
    name = "-".join(words) or "block"
    unique, n = name, 2
    while unique in taken:
        unique, n = f"{name}-{n}", n + 1
    taken.add(unique)
    return unique


def with_sections(text: str) -> str:
    """Mark every block (a ``##`` section's opening, each ``**Title.**`` paragraph on) as a named snippet.

    A block runs to the next heading or bold-titled paragraph. Old marks are dropped first, so writing
    twice gives the same file; docs pages include a block instead of copying its numbers.
    """
    text = SECTION_MARK.sub("", text)
    starts = [(match.start(), match.group("heading") or match.group("bold")) for match in BLOCK_START.finditer(text)]
    if not starts:
        return text
    taken: set[str] = set()
    pieces, ends = [text[:starts[0][0]]], [start for start, _ in starts[1:]] + [len(text)]
    for (start, title), end in zip(starts, ends, strict=True):
        name, block = section_name(title, taken), text[start:end].rstrip("\n")
        pieces.append(f"<!-- --8<-- [start:{name}] -->\n{block}\n<!-- --8<-- [end:{name}] -->\n\n")
    return "".join(pieces).rstrip("\n") + "\n"
