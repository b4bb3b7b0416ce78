"""The feedback rate limit: Flask-Limiter, counting in the feedback database so every worker shares it.

``limits`` (Flask-Limiter's storage layer) offers memory (one count per process: two workers would
allow twice the limit, each replica again), Redis, Memcached and MongoDB (a service to run for one
counter). None is shared with nothing to install, so ``DatabaseStorage`` adds the feedback database
as a ``limits`` storage: fixed windows, one atomic ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` per
hit on SQLite and PostgreSQL alike, shared by every worker (and, on PostgreSQL, every replica).
``SNAKES_RATE_LIMIT_STORAGE=redis://…`` uses any storage ``limits`` knows instead.
"""
from __future__ import annotations

import time
from typing import Any

from limits.storage import Storage
from sqlalchemy import case, delete, select
from sqlalchemy.exc import SQLAlchemyError

from .database import Database, dialect_insert, rate_limits

SCHEME = "snakes-db"


def storage_of(uri: str, database: Database) -> tuple[str, dict[str, Any]]:
    """Return the ``limits`` storage URI and options: ``uri`` (RATE_LIMIT_STORAGE) if set, else the feedback
    database, which every worker and replica shares."""
    return (uri, {}) if uri else (f"{SCHEME}://", {"database": database})


class DatabaseStorage(Storage):
    """A ``limits`` storage over the feedback database (fixed-window counters)."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, *,
                 database: Database | None = None, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        if database is None:
            raise ValueError("DatabaseStorage needs database=")
        self.database = database
        self._hits = 0

    @property
    def base_exceptions(self) -> type[Exception]:
        """Return the errors the database raises (Flask-Limiter may swallow them)."""
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` to ``key``'s window (a new window once the old one has expired); return the count."""
        now = time.time()
        with self.database.engine.begin() as connection:
            statement = dialect_insert(connection)(rate_limits).values(key=key, count=amount, expires_at=now + expiry)
            old = statement.excluded  # the row we tried to insert: a fresh window
            live = rate_limits.c.expires_at > now
            statement = statement.on_conflict_do_update(index_elements=["key"], set_={
                "count": _case(live, rate_limits.c.count + amount, old.count),
                "expires_at": _case(live, rate_limits.c.expires_at, old.expires_at),
            }).returning(rate_limits.c.count)
            count = int(connection.execute(statement).scalar_one())
            self._hits += 1
            if self._hits % 100 == 0:  # now and then, forget the windows of clients long gone
                connection.execute(delete(rate_limits).where(rate_limits.c.expires_at < now))
        return count

    def get(self, key: str) -> int:
        """Return ``key``'s count in its live window (0 when none)."""
        with self.database.engine.begin() as connection:
            count = connection.execute(select(rate_limits.c.count).where(
                rate_limits.c.key == key, rate_limits.c.expires_at > time.time())).scalar()
        return int(count or 0)

    def get_expiry(self, key: str) -> float:
        """Return when ``key``'s window ends (now when it has none)."""
        with self.database.engine.begin() as connection:
            expires = connection.execute(select(rate_limits.c.expires_at).where(rate_limits.c.key == key)).scalar()
        return float(expires) if expires and expires > time.time() else time.time()

    def check(self) -> bool:
        """Tell whether the database answers."""
        try:
            with self.database.engine.begin() as connection:
                connection.execute(select(1))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        """Forget every window; return how many there were."""
        with self.database.engine.begin() as connection:
            return int(connection.execute(delete(rate_limits)).rowcount)

    def clear(self, key: str) -> None:
        """Forget ``key``'s window."""
        with self.database.engine.begin() as connection:
            connection.execute(delete(rate_limits).where(rate_limits.c.key == key))


def _case(condition: Any, when_true: Any, otherwise: Any) -> Any:
    """Return SQL's CASE WHEN condition THEN a ELSE b END."""
    return case((condition, when_true), else_=otherwise)
