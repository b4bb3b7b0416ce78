"""Settings: every one declared once with its default and one line of help.

Order of precedence: the defaults here, then environment variables ``SNAKES_<NAME>``,
then a mapping passed to ``create_app`` (tests).
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

ENV_PREFIX = "SNAKES_"


def parse_bool(raw: str) -> bool:
    """Read a yes/no environment value."""
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true/false, got {raw!r}")


def split_origins(raw: str) -> list[str]:
    """Split a comma-separated list of browser origins, without blanks or trailing slashes."""
    return [part.strip().rstrip("/") for part in raw.split(",") if part.strip()]


def parse_origins(raw: str) -> str:
    """Check a comma-separated list of browser origins (or ``*``); return it tidied."""
    parts = split_origins(raw)
    for part in parts:
        if part != "*" and not re.fullmatch(r"https?://[^/\s?#]+", part):
            raise ValueError(f"{part!r} is not an origin like https://example.org (or *)")
    return ",".join(parts)


def parse_rate_limits(raw: str) -> str:
    """Check a `limits` rate-limit string such as ``10/minute;100/day`` (empty: no limit)."""
    if raw.strip():
        from limits import parse_many

        parse_many(raw)  # ValueError names what it could not read
    return raw.strip()


@dataclass(frozen=True)
class Setting:
    """One configuration value: its name, default, parser and help line."""

    name: str
    default: Any
    parse: Callable[[str], Any]
    help: str

    @property
    def env(self) -> str:
        """Return the environment variable that sets this value."""
        return ENV_PREFIX + self.name


SETTINGS: tuple[Setting, ...] = (
    Setting("MODEL", "models/export.pkl", str,
            "Path of the fastai `export.pkl` to serve (relative paths start at the working directory)."),
    Setting("MODEL_CODE", "", str,
            "Comma-separated modules or `.py` files to import before loading a fastai export whose pickle names "
            "the notebook's own functions (`get_y=label_func`): `__main__` names are looked up in them."),
    Setting("MODEL_NAME", "", str,
            "Name shown for the model; empty means the name stored in the model, else the file name."),
    Setting("MAX_UPLOAD_BYTES", 20 * 1024 * 1024, int,
            "Largest request body accepted (uploads included), in bytes; larger gets 413."),
    Setting("MAX_IMAGE_PIXELS", 50_000_000, int,
            "Largest image accepted, in pixels (width × height), checked before decoding; larger gets 413."),
    Setting("MAX_DECODE_BYTES", 100 * 2**20, int,
            "Most memory decoding one image may take, in bytes (width × height × bytes a pixel of its mode, "
            "plus the codec's own buffers), checked before decoding; more gets 413. 0 turns the check off."),
    Setting("FETCH_MAX_BYTES", 20 * 1024 * 1024, int,
            "Largest image downloaded from a URL, in bytes; larger gets 413."),
    Setting("FETCH_TIMEOUT", 10.0, float,
            "Seconds allowed to connect to, and then between bytes from, a remote image URL (504 past it)."),
    Setting("ALLOW_PRIVATE_URLS", False, parse_bool,
            "Allow URLs that resolve to loopback, private or link-local addresses (tests and closed networks only)."),
    Setting("TORCH_THREADS", 0, int,
            "Inference threads per worker (torch, or ONNX Runtime intra-op); 0 means cores ÷ workers "
            "(gunicorn.conf.py fills it in)."),
    Setting("BIND", "", str,
            "Address gunicorn listens on; empty means `0.0.0.0:$PORT` when `PORT` is set, else `127.0.0.1:8000`."),
    Setting("WORKERS", 0, int,
            "Gunicorn worker processes; 0 means `WEB_CONCURRENCY` if set, else one per core, as many as fit in RAM."),
    Setting("WORKER_TIMEOUT", 60, int,
            "Seconds a gunicorn worker's main loop may go silent (a hung process) before the master restarts it."),
    Setting("LOG_LEVEL", "info", str,
            "Gunicorn log level: debug, info, warning, error."),
    Setting("UNSURE_BELOW", 0.5, float,
            "Top probability under which the page says the model is unsure (verdict `unsure`)."),
    # --- issue 27: answers a snake-finder can trust ---
    Setting("PRIORS", "", str,
            "Class frequencies the deployment expects, as `label=p,…` (e.g. `not a snake=0.5`; labels left out "
            "share the rest as the model was trained): the probabilities are corrected for them (label shift). "
            "Empty means the labels file's `deployment_prior` if it has one (the default model's: "
            "`not a snake=0.5`); `none` serves the model's own probabilities."),
    Setting("LABELS", "", str,
            "Labels file (what each label means, its warning level, a link); empty means `labels.json` beside "
            "the model, else the one the model carries (ONNX metadata, the default model's)."),
    Setting("COULD_BE_ABOVE", 0.05, float,
            "Probability of a snake species at which an answer of \"not a snake\" is given with the doubt "
            "(verdict `could-be`: \"Probably not a snake — but it could be a sea snake (8%)\")."),
    # --- issue 5 ---
    Setting("JPEG_DRAFT", True, parse_bool,
            "Decode a large JPEG at 1/2, 1/4 or 1/8 scale when that still covers the model's input (much faster)."),
    Setting("INPUT_BUDGET_MB", 0, int,
            "Memory each worker may hold for request bodies and downloaded images at once, in MB; past it a "
            "request gets 503 with `Retry-After` before its body is read. 0 means what the worker's share of "
            "the memory leaves after its own need (at least what one largest upload takes, at most 192)."),
    Setting("CORES", 0, int,
            "Cores to size workers and threads for; 0 means the CPU affinity, capped by the cgroup CPU quota."),
    Setting("MEMORY_LIMIT_MB", 0, int,
            "Memory to size workers for, in MB; 0 means the cgroup memory limit or MemAvailable, the smaller."),
    Setting("WORKER_MEMORY_MB", 0, int,
            "Memory one worker needs, in MB, when sizing; 0 means 1300 for a fastai model, 250 for ONNX."),
    # --- issue 6 ---
    Setting("CORS_ORIGINS", "*", parse_origins,
            "Origins allowed to call `/api/*` from a browser: `*` (any, without credentials) or a "
            "comma-separated list such as `https://a.example,https://b.example`; empty turns CORS off."),
    Setting("METRICS", True, parse_bool,
            "Serve Prometheus metrics at `/metrics` (multiprocess-safe under gunicorn)."),
    # --- issue 14 ---
    Setting("METRICS_PORT", 9464, int,
            "Port on which gunicorn's master serves `/metrics` (summed over the workers), on the host the app "
            "binds; the app's own port then has no `/metrics`. 0 serves `/metrics` on the app's port instead "
            "(a closed network only: anyone who reaches the app reads it)."),
    Setting("THREADS", 64, int,
            "Connections each gunicorn worker serves at once, each on its own thread: they wait on the "
            "network (uploads, URL fetches, answers) without holding the model."),
    Setting("UPLOAD_MIN_RATE", 10240, int,
            "Slowest a request (headers and body) may arrive, in bytes/s averaged from its first byte; "
            "slower gets 408. 0 turns the check off."),
    Setting("UPLOAD_GRACE", 5.0, float,
            "Seconds a request may take before `UPLOAD_MIN_RATE` applies (a phone's first packets)."),
    Setting("UPLOAD_TIMEOUT", 300.0, float,
            "Seconds a whole request (headers and body) may take to arrive; longer gets 408. "
            "300 s lets a 10 MB photo come in at 35 KB/s."),
    Setting("QUEUE_LENGTH", 0, int,
            "Requests that may wait for an inference slot, server-wide; more get 503 at once. "
            "0 means four per slot."),
    Setting("QUEUE_TIMEOUT", 5.0, float,
            "Seconds a request may wait for an inference slot before it gets 503."),
    Setting("PREDICTIONS_PER_WORKER", 1, int,
            "Predictions one worker process would rather run at once (its threads share one interpreter "
            "lock): another waits up to 0.1 s for its turn, then runs beside them, so a slot free anywhere is "
            "never left unused for long. 0: as many as the slots allow, at once."),
    # --- issue 17: many photos at once, the answers that matter ---
    Setting("MAX_FILES", 8, int,
            "Photos (`file` parts, or `url` fields) one request may carry; more gets 413. The whole "
            "request still stays under `MAX_UPLOAD_BYTES`."),
    Setting("SHOW_ABOVE", 0.01, float,
            "Probability a class needs for the page to list it with the answer (the top 3 always are; "
            "the rest are one click away)."),
    # --- issue 18: feedback (visitors correct the model; stored only when they send it) ---
    Setting("FEEDBACK", True, parse_bool,
            "Ask \"Is this right?\" under results and store the photo when the visitor answers; false turns it "
            "off (no receipts, nothing stored). Costs a prediction nothing unless it asks for a receipt."),
    Setting("DATA_DIR", "data", str,
            "Folder of the default SQLite database (`snakes-web.db`, WAL mode); made when missing."),
    Setting("DATABASE_URL", "", str,
            "Database for feedback: empty means SQLite in `DATA_DIR`; `postgresql://user@host/db` for several "
            "replicas (psycopg 3)."),
    Setting("DATABASE_TIMEOUT", 5.0, float,
            "Seconds PostgreSQL gets to connect, to run one statement and to wait for a lock; a slower or "
            "unreachable database is an error (feedback 503), never a wait."),
    Setting("SECRET_KEY", "", str,
            "Key that signs feedback receipts: at least 32 bytes, random (start-up refuses a shorter one; "
            "`python -c \"import secrets; print(secrets.token_urlsafe(32))\"` makes one). Empty: one made once "
            "and kept in the database, read when a worker starts. Several replicas or dynos over their own "
            "SQLite files must share one (otherwise, on a Heroku dyno or a Kubernetes pod, feedback turns itself off "
            "and says why in the log and on its routes)."),
    Setting("FEEDBACK_TOKEN_TTL", 3600, int,
            "Seconds a prediction's feedback receipt stays valid."),
    Setting("FEEDBACK_IMAGE_SIDE", 512, int,
            "Longest side, in pixels, of the re-encoded JPEG the database keeps of an answered photo."),
    Setting("FEEDBACK_IMAGE_BYTES", 120_000, int,
            "Largest re-encoded feedback image, in bytes (quality, then size, is lowered to fit)."),
    Setting("FEEDBACK_MAX_ITEMS", 10_000, int,
            "Most feedback entries kept; past it feedback gets 507 until the owner exports and purges."),
    Setting("FEEDBACK_MAX_BYTES", 500 * 1024 * 1024, int,
            "Most bytes of feedback images kept; past it feedback gets 507."),
    Setting("FEEDBACK_RATE_LIMIT", "10/minute;100/day", parse_rate_limits,
            "Feedback each client may send (a `limits` string; a client is an IPv4 address or an IPv6 /64); "
            "more gets 429. Empty turns the limit off."),
    Setting("PROXY_HOPS", 0, int,
            "Proxies in front of gunicorn that append to `X-Forwarded-For` (Heroku's router, an Ingress: 1). "
            "The client address is taken that many hops back; 0 trusts no header (nothing in front)."),
    Setting("RATE_LIMIT_STORAGE", "", str,
            "Where the rate limit counts: empty means the feedback database (shared by every worker and "
            "replica); or a `limits` storage URI such as `redis://host:6379`."),
    Setting("OWNER_TOKEN", "", str,
            "Password of the owner page `/owner` (recent feedback, confusion table); empty turns the page off."),
    # --- issue 29: owner access that holds ---
    Setting("OWNER_RATE_LIMIT", "10/minute;50/day", parse_rate_limits,
            "Failed sign-ins to `/owner` (a wrong or empty token) each client may make (a `limits` string; a "
            "client as for `FEEDBACK_RATE_LIMIT`); past it the page answers 429, even to the right token, until "
            "the window ends. Empty turns the limit off."),
    Setting("OWNER_GLOBAL_RATE_LIMIT", "100/hour", parse_rate_limits,
            "Failed sign-ins to `/owner` from all clients together (a `limits` string); past it the page answers "
            "429 to everyone until the window ends. Empty turns the limit off."),
    # --- issue 15: graceful shutdown ---
    Setting("DRAIN_SECONDS", 5, int,
            "Seconds after SIGTERM that gunicorn keeps accepting and answering while `/readyz` says 503, "
            "so load balancers stop sending before it stops listening. 0: stop listening at once."),
    Setting("GRACEFUL_TIMEOUT", 20, int,
            "Seconds after the drain that requests already admitted get to finish before the workers are "
            "killed; the whole stop takes at most `DRAIN_SECONDS` + this."),
    # --- issue 16: int8 ---
    Setting("INT8_MIN_AGREEMENT", 0.99, float,
            "Least top-1 agreement with fp32, on every check set, for `export-onnx --int8` (and `train --int8`) "
            "to write the int8 model."),
)

#: Keys that tests may pass in the mapping without being settings (they are objects, not strings).
TEST_ONLY_KEYS = frozenset({"PREDICTOR", "TESTING"})


def default(name: str) -> Any:
    """Return the default of the setting ``name`` (for code outside a request that needs the same bound)."""
    return next(setting.default for setting in SETTINGS if setting.name == name)


class ConfigError(ValueError):
    """A setting has a value that cannot be used."""


def load_settings(environ: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return every setting: defaults, then ``SNAKES_*`` from the environment, then overrides."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        values[setting.name] = setting.default
        raw = environ.get(setting.env)
        if raw is not None:
            try:
                values[setting.name] = setting.parse(raw)
            except ValueError as exc:
                raise ConfigError(f"{setting.env}={raw!r} is not valid: {exc}") from None
    for key, value in (overrides or {}).items():
        if key not in values and key not in TEST_ONLY_KEYS and not key.isupper():
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = value
    return values
