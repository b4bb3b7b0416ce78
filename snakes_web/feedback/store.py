"""What visitors' feedback becomes: rows in the database, within a quota; listed, exported, purged.

No Flask here: the feedback blueprint, the owner page and `snakes-web feedback` all use ``FeedbackStore``.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import os
import re
import secrets as random_secrets
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select, true, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from snakes_web.exceptions import AlreadySent, QuotaFull

from .database import Database, dialect_insert, feedback, secrets, usage

VERDICTS = ("confirm", "correct", "none")
ALREADY_SENT = "Feedback on this prediction was already sent; each prediction is answered once."
#: Where `export` puts "none of these" photos: a hidden folder, so `snakes-web train` passes over them.
NONE_FOLDER = ".none-of-these"
#: What `export` writes beside the photos: which entries it wrote, so `purge --from-export` removes only those.
MANIFEST = "feedback-export.json"


@dataclass(frozen=True)
class NewFeedback:
    """One visitor's answer about one prediction, ready to store."""

    receipt_nonce: str
    verdict: str
    predicted: str
    probability: float
    label: str | None
    other: str | None
    model: str
    image: bytes
    width: int
    height: int


@dataclass(frozen=True)
class Exported:
    """What one export wrote: entries up to ``through_id``, counted per folder, and the manifest's path."""

    through_id: int
    counts: Counter[str]
    manifest: Path


@dataclass(frozen=True)
class Quota:
    """How much the store may hold."""

    max_items: int
    max_bytes: int


class FeedbackStore:
    """The feedback table and what goes with it, over one ``Database``."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def add(self, entry: NewFeedback, quota: Quota) -> int:
        """Store ``entry`` and return its id; ``QuotaFull`` or ``AlreadySent`` instead when it may not be.

        The usage row is updated only while it stays within the quota, in the same transaction as the
        insert: concurrent writers (threads, workers, replicas) can never take the store past it.
        """
        size = len(entry.image)
        try:
            with self.database.engine.begin() as connection:
                room = connection.execute(
                    update(usage).where(usage.c.id == 1, usage.c.entries + 1 <= quota.max_items,
                                        usage.c.total_bytes + size <= quota.max_bytes)
                    .values(entries=usage.c.entries + 1, total_bytes=usage.c.total_bytes + size))
                if room.rowcount != 1:
                    raise QuotaFull("The feedback store is full for now, so this photo was not kept. "
                                    "Thank you all the same.")
                return int(connection.execute(
                    insert(feedback).values(created_at=_now(), image_bytes=size, **dataclasses.asdict(entry))
                    .returning(feedback.c.id)).scalar_one())
        except IntegrityError:
            raise AlreadySent(ALREADY_SENT) from None

    def answered(self, nonce: str) -> bool:
        """Tell whether the prediction with this receipt nonce has been answered already."""
        with self.database.engine.begin() as connection:
            found = connection.execute(select(feedback.c.id).where(feedback.c.receipt_nonce == nonce)).first()
        return found is not None

    def last_id(self) -> int:
        """Return the highest id stored (0 when empty)."""
        with self.database.engine.begin() as connection:
            return int(connection.execute(select(func.coalesce(func.max(feedback.c.id), 0))).scalar_one())

    def usage(self) -> tuple[int, int]:
        """Return (entries, bytes of images) stored."""
        with self.database.engine.begin() as connection:
            row = connection.execute(select(usage.c.entries, usage.c.total_bytes).where(usage.c.id == 1)).one()
        return int(row.entries), int(row.total_bytes)

    def count(self) -> int:
        """Return how many entries the feedback table holds (counted, not read from the usage row)."""
        with self.database.engine.begin() as connection:
            return int(connection.execute(select(func.count()).select_from(feedback)).scalar_one())

    def recent(self, limit: int = 50, with_images: bool = False) -> list[Row[Any]]:
        """Return the newest entries first."""
        with self.database.engine.begin() as connection:
            return list(connection.execute(select(*_columns(with_images)).order_by(feedback.c.id.desc()).limit(limit)))

    def entries(self, with_images: bool = False, through_id: int | None = None) -> Iterator[Row[Any]]:
        """Yield every entry (up to ``through_id``), oldest first, a page at a time (never all in memory)."""
        last = 0
        upto = feedback.c.id <= through_id if through_id is not None else true()
        while True:
            with self.database.engine.begin() as connection:
                page = list(connection.execute(select(*_columns(with_images)).where(feedback.c.id > last, upto)
                                               .order_by(feedback.c.id).limit(200)))
            if not page:
                return
            yield from page
            last = page[-1].id

    def ids(self) -> set[int]:
        """Return the id of every stored entry."""
        with self.database.engine.begin() as connection:
            return {int(i) for i in connection.execute(select(feedback.c.id)).scalars()}

    def confusion(self) -> Counter[tuple[str, str]]:
        """Count entries by (predicted label, the visitor's label; "none of these" for none)."""
        with self.database.engine.begin() as connection:
            rows = connection.execute(select(feedback.c.predicted, feedback.c.label, func.count())
                                      .group_by(feedback.c.predicted, feedback.c.label))
            return Counter({(r[0], r[1] if r[1] is not None else "none of these"): int(r[2]) for r in rows})

    def purge(self, older_than: datetime.timedelta | None = None, through_id: int | None = None) -> int:
        """Delete the entries older than ``older_than`` and up to ``through_id`` (both None: all); return how many."""
        condition: Any = true()
        if older_than is not None:
            condition = condition & (feedback.c.created_at < _now() - older_than)
        if through_id is not None:
            condition = condition & (feedback.c.id <= through_id)
        with self.database.engine.begin() as connection:
            gone = connection.execute(delete(feedback).where(condition)).rowcount
            connection.execute(update(usage).where(usage.c.id == 1).values(
                entries=select(func.count()).select_from(feedback).scalar_subquery(),
                total_bytes=select(func.coalesce(func.sum(feedback.c.image_bytes), 0)).scalar_subquery()))
        return int(gone)

    def compact(self) -> None:
        """Give the space of deleted rows back to the file system (SQLite's VACUUM; PostgreSQL does it itself)."""
        if self.database.kind != "sqlite":
            return
        raw = self.database.engine.raw_connection()  # outside SQLAlchemy's transactions: VACUUM refuses those
        try:
            cursor = raw.cursor()
            cursor.execute("VACUUM")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.close()
        finally:
            raw.close()

    def secret(self, name: str) -> str:
        """Return the shared secret ``name``, made once (the first process to ask makes it for all)."""
        with self.database.engine.begin() as connection:
            connection.execute(dialect_insert(connection)(secrets)
                               .values(name=name, value=random_secrets.token_urlsafe(32))
                               .on_conflict_do_nothing(index_elements=["name"]))
            return str(connection.execute(select(secrets.c.value).where(secrets.c.name == name)).scalar_one())

    def export(self, folder: Path) -> Exported:
        """Write every entry stored now into ``folder`` in the layout `snakes-web train` reads, and a manifest.

        Confirmed and corrected photos go to ``<label>/feedback-<id>-<nonce>.jpg`` (into ``train/`` when the
        folder has train/ and valid/), "none of these" to the hidden ``.none-of-these/`` with the visitors'
        words in ``words.csv``. Names carry the never-reused id and a piece of the receipt's random nonce,
        so exports of other databases into the same folder cannot overwrite them; exporting again rewrites
        the same files. Answers that arrive during the export are left for the next one: the manifest
        (``feedback-export.json``) says up to which id this one went, for `purge --from-export`.
        """
        folder = Path(folder)
        root = folder / "train" if (folder / "train").is_dir() else folder
        through = self.last_id()
        counts: Counter[str] = Counter()
        files: list[str] = []
        words: list[tuple[str, str, str]] = []
        for row in self.entries(with_images=True, through_id=through):
            name = f"feedback-{row.id}-{safe_folder_name(row.receipt_nonce[:8])}.jpg"
            if row.label is None:
                target = folder / NONE_FOLDER
                words.append((name, row.predicted, row.other or ""))
            else:
                target = root / safe_folder_name(row.label)
            _write_atomically(target / name, row.image)
            counts[target.name] += 1
            files.append((target / name).relative_to(folder).as_posix())
        if words:
            with open(folder / NONE_FOLDER / "words.csv", "w", newline="", encoding="utf-8") as out:
                writer = csv.writer(out)
                writer.writerow(["file", "predicted", "visitor's words"])
                writer.writerows(words)
        manifest = folder / MANIFEST
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomically(manifest, json.dumps({
            "database": self.database.describe(), "through_id": through, "exported": len(files),
            "at": _now().isoformat(timespec="seconds"), "files": files}, indent=1).encode())
        return Exported(through, counts, manifest)


def _columns(with_images: bool) -> list[Any]:
    """Return the feedback table's columns, without the photo unless it is wanted."""
    return [column for column in feedback.c if with_images or column.name != "image"]


def safe_folder_name(label: str) -> str:
    """Turn a label into one folder name: no separators, no leading dot, never empty."""
    name = re.sub(r"[/\\\0]", "_", label).strip()
    return ("_" + name[1:] if name.startswith(".") else name) or "_"


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it, so no half file is ever left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_bytes(data)
    os.replace(scratch, path)


def _now() -> datetime.datetime:
    """Return the time now, in UTC."""
    return datetime.datetime.now(datetime.UTC)
