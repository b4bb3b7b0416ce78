"""What the bench measures: the names of its scenarios, and the records each measurement fills in."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

THREADED = "(3) ONNX backend, HTTP"


#: The two learn.predict baselines: the strongest honest one (ratios are against it) and the usual one.
STRONGEST, WRITTEN = "strongest", "written"


BASELINES = {STRONGEST: "(1) learn.predict, strongest", WRITTEN: "(1w) learn.predict, as usually written"}


SYNC = "(3s) ONNX backend, HTTP, sync workers (before)"


INT8 = "(4) ONNX int8, HTTP"


#: gunicorn's command line overrides gunicorn.conf.py: the sync workers served before issue 14.
SYNC_ARGS = ("--worker-class", "sync", "--threads", "1")


@dataclass
class Load:
    """What one scenario measured on one image."""

    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int = 0
    total: int = 0                 # requests sent, warm-up included (for CPU per image)
    cpu_ms_per_image: float = float("nan")  # CPU time of the serving processes per image
    client_cpu_ms: float = float("nan")     # CPU time of the load generator per request
    answer_bytes: int = 0                   # size of one answer's body
    idle: float = float("nan")              # share of the machine's CPU idle while measured (0-1)

    @property
    def rate(self) -> float:
        """Images per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Return the q-th percentile latency in milliseconds."""
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


@dataclass
class Scenario:
    """One way of serving: its loads per image, memory and start-up time."""

    name: str
    loads: dict[str, Load] = field(default_factory=dict)
    rss_mb: list[float] = field(default_factory=list)
    start_to_first_answer_s: float = float("nan")
    note: str = ""
    slow: SlowResult | None = None


@dataclass(frozen=True)
class SlowPlan:
    """How the slow-clients measurement runs on one server."""

    uploads: int          # slow uploads held open (N)
    urls: int             # slow URL fetches held open (M)
    normal: int           # normal uploads sent one after another while they are held (K)
    timeout: float        # client timeout of each normal upload, in seconds
    spread: float         # seconds the normal uploads are spread over (so they straddle the server's cuts)
    fetch_timeout: float  # SNAKES_FETCH_TIMEOUT of the server
    give_up: float        # seconds after the first slow socket opened that the bench stops waiting for answers


@dataclass
class SlowResult:
    """What the slow-clients measurement saw on one server."""

    plan: SlowPlan
    normal: Load                 # the normal uploads (errors: not answered 200)
    held_uploads: int            # the fewest slow uploads open when a normal upload started
    held_urls: int               # the fewest slow URLs open when a normal upload started
    fetching: int                # the fewest slow URLs the image server was sending then
    cuts: int                    # slow uploads the server ended while they were held (each re-opened)
    url_restarts: int            # the same for slow URLs
    upload_ends: dict[str, int]  # how every slow upload ended: a status, "no answer", "closed", "reset" …
    url_ends: dict[str, int]
