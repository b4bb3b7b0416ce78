"""The feedback database: SQLite in the data folder by default, PostgreSQL by URL; schema from Alembic.

SQLAlchemy Core (no ORM: four small tables, explicit statements) gives one engine API over both
databases; Alembic, from the same maintainers, keeps the schema's history in ``migrations/versions``,
the one place it changes. No Flask here: the web layer and the CLI both open a ``Database``.

SQLite is made safe for several gunicorn workers writing at once: WAL journal (readers never block
the writer), ``synchronous=FULL`` (a commit is on disk before the answer says "stored"), a 30 s busy
timeout, and every transaction begun ``IMMEDIATE`` so two writers queue for the lock instead of one
of them failing when it upgrades a read lock to a write lock.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url

SQLITE_FILE = "snakes-web.db"
MIGRATIONS = Path(__file__).parent / "migrations"
#: Any constant: the key of the PostgreSQL advisory lock that lets one process at a time migrate.
MIGRATION_LOCK = 0x736E616B

metadata = MetaData()

#: One row per answer a visitor gave: what the model said, what the visitor says, the re-encoded photo.
#: Ids are never reused (SQLite AUTOINCREMENT, PostgreSQL's sequence): an export's file names stay unique.
feedback = Table(
    "feedback", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("receipt_nonce", String(64), nullable=False, unique=True),  # one answer per prediction
    Column("verdict", String(8), nullable=False),       # confirm | correct | none
    Column("predicted", String(200), nullable=False),
    Column("probability", Float, nullable=False),
    Column("label", String(200), nullable=True),        # the right label; NULL for "none of these"
    Column("other", String(100), nullable=True),        # the visitor's own words for "none of these"
    Column("model", String(200), nullable=False),
    Column("image", LargeBinary, nullable=False),       # JPEG, re-encoded: no EXIF, no metadata
    Column("image_bytes", Integer, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    sqlite_autoincrement=True,
)
#: One row (id 1): what the feedback table holds, kept in step in the same transaction as each insert,
#: so the quota check is one atomic UPDATE on every database.
usage = Table(
    "feedback_usage", metadata,
    Column("id", Integer, primary_key=True),
    Column("entries", BigInteger, nullable=False),
    Column("total_bytes", BigInteger, nullable=False),
)
#: Values every worker and replica must share (the token key when SNAKES_SECRET_KEY is empty).
secrets = Table(
    "secrets", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(200), nullable=False),
)
#: Fixed-window counters of the rate limit (``ratelimit.DatabaseStorage``).
rate_limits = Table(
    "rate_limits", metadata,
    Column("key", String(255), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("expires_at", Float, nullable=False),
)


def dialect_insert(connection: Connection) -> Any:
    """Return the INSERT construct of this connection's dialect (it knows ON CONFLICT)."""
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


def database_url(settings: Mapping[str, Any]) -> str:
    """Return the SQLAlchemy URL: ``DATABASE_URL`` (postgresql:// means psycopg 3), else SQLite in ``DATA_DIR``."""
    url = str(settings.get("DATABASE_URL") or "").strip()
    if not url:
        return f"sqlite:///{(Path(settings['DATA_DIR']).expanduser() / SQLITE_FILE).resolve()}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str, timeout: float = 5.0) -> Engine:
    """Open an engine for ``url``; a SQLite file gets its folder, WAL, FULL sync and IMMEDIATE transactions.

    PostgreSQL gets ``timeout`` seconds to connect, to run a statement and to wait for a pooled
    connection: an unreachable or stuck server is an error in seconds, not a thread that waits forever.
    """
    if make_url(url).get_backend_name() != "sqlite":
        millis = max(1, int(timeout * 1000))
        return create_engine(url, pool_pre_ping=True, pool_timeout=timeout, connect_args={
            "connect_timeout": max(1, round(timeout)),
            "options": f"-c statement_timeout={millis} -c lock_timeout={millis}"})
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we say BEGIN ourselves (below), not the driver
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        _into_wal(cursor)
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _into_wal(cursor: Any, patience: float = 30.0) -> None:
    """Switch a SQLite file to WAL, waiting out the others that do the same.

    Switching needs the exclusive lock, and SQLite answers "database is locked" at once, without its
    busy handler, when another connection holds the reserved lock (it would deadlock otherwise), as
    when several workers open a new file together; so the switch is retried until ``patience`` runs out.
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration, one process at a time (safe when every worker calls it)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:  # SQLite: BEGIN IMMEDIATE is the lock; PostgreSQL: an advisory lock
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class Database:
    """One engine per process, opened and migrated on first use (after gunicorn's fork, never before)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Database:
        """Return the database the settings name (nothing is opened yet)."""
        return cls(database_url(settings), float(settings.get("DATABASE_TIMEOUT", 5.0)))

    @property
    def engine(self) -> Engine:
        """Return the engine, opening and migrating the database the first time."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    engine = make_engine(self.url, self.timeout)
                    upgrade(engine)
                    self._engine = engine
        return self._engine

    @property
    def kind(self) -> str:
        """Say which database this is: "sqlite" or "postgresql"."""
        return make_url(self.url).get_backend_name()

    def describe(self) -> str:
        """Say where the data lives, without a password."""
        return make_url(self.url).render_as_string(hide_password=True)

    def dispose(self) -> None:
        """Close every pooled connection."""
        if self._engine is not None:
            self._engine.dispose()
