"""The feedback store on SQLite and PostgreSQL: migrations, exact quota under concurrent writers, export, purge."""
from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import io
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import inspect, text, update

from snakes_web.exceptions import AlreadySent, QuotaFull
from snakes_web.feedback.database import Database, feedback
from snakes_web.feedback.database import database_url as url_of
from snakes_web.feedback.store import MANIFEST, NONE_FOLDER, FeedbackStore, NewFeedback, Quota, safe_folder_name
from snakes_web.tools.cli import main

ROOMY = Quota(10_000, 10**9)


@pytest.fixture
def store(database_url: str) -> Iterator[FeedbackStore]:
    """A store on an empty database of each kind."""
    database = Database.from_settings({"DATABASE_URL": database_url, "DATA_DIR": ""})
    yield FeedbackStore(database)
    database.dispose()


def entry(label: str | None = "red", colour: tuple[int, int, int] = (200, 30, 30), verdict: str = "correct",
          other: str | None = None) -> NewFeedback:
    """Return an answer about a photo of one colour."""
    out = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(out, format="JPEG")
    return NewFeedback(receipt_nonce=uuid.uuid4().hex, verdict=verdict, predicted="blue", probability=0.6, label=label,
                       other=other, model="m", image=out.getvalue(), width=40, height=30)


def test_the_urls_say_which_database(tmp_path: Path) -> None:
    assert url_of({"DATABASE_URL": "", "DATA_DIR": str(tmp_path)}) == f"sqlite:///{tmp_path}/snakes-web.db"
    assert url_of({"DATABASE_URL": "postgresql://u:p@db/x"}) == "postgresql+psycopg://u:p@db/x"
    assert url_of({"DATABASE_URL": "postgres://u@db/x"}) == "postgresql+psycopg://u@db/x"
    assert "p@" not in Database("postgresql+psycopg://u:p@db/x").describe()


def test_sqlite_is_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path}/a/b.db")  # the folder is made
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    database.dispose()


def test_migrations_make_the_schema_once_even_when_every_worker_runs_them(database_url: str) -> None:
    url = Database.from_settings({"DATABASE_URL": database_url, "DATA_DIR": ""}).url
    databases = [Database(url) for _ in range(6)]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda d: d.engine, databases))
    engine = databases[0].engine
    assert {"feedback", "feedback_usage", "secrets", "rate_limits", "alembic_version"} <= set(
        inspect(engine).get_table_names())
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == ["0002"]
        assert connection.execute(text("SELECT count(*) FROM feedback_usage")).scalar() == 1
    for database in databases:
        database.dispose()


def test_a_database_made_before_receipts_keeps_its_answers_and_stops_reusing_ids(database_url: str) -> None:
    """Migration 0002 on a 0001 database: the digest column is renamed, rows kept, ids never reused after."""
    from alembic import command
    from alembic.config import Config

    from snakes_web.feedback.database import MIGRATIONS, make_engine

    url = Database.from_settings({"DATABASE_URL": database_url, "DATA_DIR": ""}).url
    old = make_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with old.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(text("INSERT INTO feedback (created_at, token_digest, verdict, predicted, probability, "
                                "model, image, image_bytes, width, height) VALUES (CURRENT_TIMESTAMP, 'd1', 'confirm', "
                                "'red', 0.9, 'm', :img, 3, 1, 1)"), {"img": b"jpg"})
    old.dispose()
    store = FeedbackStore(Database(url))
    [row] = list(store.entries())
    assert row.receipt_nonce == "d1" and row.predicted == "red"
    with store.database.engine.begin() as connection:
        connection.execute(text("DELETE FROM feedback"))
    assert store.add(entry(), ROOMY) > row.id
    store.database.dispose()


def test_the_secret_is_made_once_for_everyone(store: FeedbackStore) -> None:
    other = FeedbackStore(Database(store.database.url))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda s: s.secret("k"), [store, other] * 8))
    assert len(keys) == 1 and len(keys.pop()) >= 40
    other.database.dispose()


def test_concurrent_writers_lose_nothing_and_never_pass_the_quota(store: FeedbackStore) -> None:
    """40 threads write at once against a quota of 25: exactly 25 are stored, the rest told so."""
    def add(_: int) -> int | str:
        try:
            return store.add(entry(), Quota(25, 10**9))
        except QuotaFull:
            return "full"

    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        outcomes = list(pool.map(add, range(40)))
    ids = {o for o in outcomes if isinstance(o, int)}
    assert len(ids) == 25 and outcomes.count("full") == 15
    assert store.ids() == ids and store.count() == 25 and store.usage()[0] == 25


def test_the_byte_quota_counts_image_bytes(store: FeedbackStore) -> None:
    one = len(entry().image)
    quota = Quota(100, 2 * one + one // 2)
    store.add(entry(), quota)
    store.add(entry(), quota)
    with pytest.raises(QuotaFull):
        store.add(entry(), quota)
    assert store.usage() == (2, 2 * one)


def test_one_entry_per_receipt_nonce(store: FeedbackStore) -> None:
    first = entry()
    store.add(first, ROOMY)
    with pytest.raises(AlreadySent):
        store.add(first, ROOMY)
    assert store.count() == 1 and store.usage()[0] == 1  # the refused one left the usage row alone


def test_purge_older_than_keeps_the_new_and_puts_the_usage_right(store: FeedbackStore) -> None:
    old, new = store.add(entry(), ROOMY), store.add(entry(), ROOMY)
    with store.database.engine.begin() as connection:
        connection.execute(update(feedback).where(feedback.c.id == old).values(
            created_at=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=40)))
    assert store.purge(datetime.timedelta(days=30)) == 1
    assert store.ids() == {new} and store.usage() == (1, len(entry().image))
    assert store.purge() == 1 and store.usage() == (0, 0)


def test_compact_gives_a_purged_sqlite_file_its_space_back(tmp_path: Path) -> None:
    store = FeedbackStore(Database(f"sqlite:///{tmp_path}/f.db"))
    big = dataclasses.replace(entry(), image=os.urandom(200_000))
    for _ in range(10):
        store.add(dataclasses.replace(big, receipt_nonce=uuid.uuid4().hex), ROOMY)
    store.compact()
    full = (tmp_path / "f.db").stat().st_size
    store.purge()
    store.compact()
    assert full > 2_000_000 and (tmp_path / "f.db").stat().st_size < full // 10
    store.database.dispose()


def test_confusion_counts_predicted_against_answered(store: FeedbackStore) -> None:
    for label in ("red", "red", "green", None):
        store.add(entry(label, verdict="none" if label is None else "correct"), ROOMY)
    assert dict(store.confusion()) == {("blue", "red"): 2, ("blue", "green"): 1, ("blue", "none of these"): 1}


def exported_name(store: FeedbackStore, entry_id: int) -> str:
    """Return the file name `export` gives entry ``entry_id``."""
    [row] = [r for r in store.entries() if r.id == entry_id]
    return f"feedback-{entry_id}-{row.receipt_nonce[:8]}.jpg"


def test_export_writes_the_train_layout(store: FeedbackStore, tmp_path: Path) -> None:
    ids = [store.add(entry(label), ROOMY) for label in ("red", "green", "red", ".hidden/../x")]
    none = store.add(entry(None, verdict="none", other="a gecko, I think"), ROOMY)
    exported = store.export(tmp_path)
    assert dict(exported.counts) == {"red": 2, "green": 1, "_hidden_.._x": 1, NONE_FOLDER: 1}
    assert sorted(p.name for p in (tmp_path / "red").iterdir()) == sorted(exported_name(store, i) for i in ids[::2])
    with Image.open(tmp_path / "green" / exported_name(store, ids[1])) as image:
        assert image.size == (40, 30)
    assert (tmp_path / NONE_FOLDER / exported_name(store, none)).exists()
    assert "a gecko, I think" in (tmp_path / NONE_FOLDER / "words.csv").read_text()
    store.export(tmp_path)  # again: the same files, rewritten
    assert len(list((tmp_path / "red").iterdir())) == 2


def test_ids_are_never_reused_after_a_purge(store: FeedbackStore) -> None:
    """SQLite without AUTOINCREMENT gives an emptied table's next row id 1 again: feedback-1.jpg twice."""
    first = [store.add(entry(), ROOMY) for _ in range(3)]
    assert store.purge() == 3
    again = store.add(entry(), ROOMY)
    assert again > max(first)


def test_exports_of_two_databases_into_one_folder_overwrite_nothing(tmp_path: Path) -> None:
    stores = [FeedbackStore(Database(f"sqlite:///{tmp_path}/{name}.db")) for name in ("a", "b")]
    for one in stores:
        one.add(entry("red"), ROOMY)  # id 1 in both
        one.export(tmp_path / "photos")
        one.database.dispose()
    assert len(list((tmp_path / "photos" / "red").iterdir())) == 2


def test_the_export_manifest_says_what_was_written(store: FeedbackStore, tmp_path: Path) -> None:
    ids = [store.add(entry(label), ROOMY) for label in ("red", "green")]
    exported = store.export(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["through_id"] == exported.through_id == max(ids) and manifest["exported"] == 2
    assert manifest["database"] == store.database.describe()
    assert sorted(manifest["files"]) == sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jpg"))


def run_cli(url: str, *args: str) -> int:
    """Run `snakes-web feedback --database-url URL ARGS…` and return its exit status."""
    return main(["feedback", "--database-url", url, *args])


def test_purge_from_an_export_keeps_the_answers_that_arrived_after_it(store: FeedbackStore, database_url: str,
                                                                      tmp_path: Path) -> None:
    before = [store.add(entry(), ROOMY) for _ in range(2)]
    assert run_cli(database_url, "export", str(tmp_path)) == 0
    during = store.add(entry(), ROOMY)  # a visitor answers while the owner trains on the export
    assert run_cli(database_url, "purge", "--from-export", str(tmp_path)) == 0
    assert store.ids() == {during} and during not in before


def test_purge_says_what_to_delete_and_asks_before_deleting_everything(store: FeedbackStore, database_url: str,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    ids = {store.add(entry(), ROOMY) for _ in range(3)}
    assert run_cli(database_url, "purge") == 2
    assert "Say what to delete" in capsys.readouterr().err and store.ids() == ids
    assert run_cli(database_url, "purge", "--all") == 1  # no terminal to say yes on: nothing deleted
    assert "add --yes" in capsys.readouterr().err and store.ids() == ids
    assert run_cli(database_url, "purge", "--through-id", str(min(ids))) == 0 and store.ids() == ids - {min(ids)}
    assert run_cli(database_url, "purge", "--all", "--yes") == 0 and store.ids() == set()


def test_purge_from_another_databases_export_deletes_nothing(store: FeedbackStore, database_url: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    other = FeedbackStore(Database(f"sqlite:///{tmp_path}/other.db"))
    other.add(entry(), ROOMY)
    other.export(tmp_path / "photos")
    other.database.dispose()
    kept = store.add(entry(), ROOMY)
    assert run_cli(database_url, "purge", "--from-export", str(tmp_path / "photos")) == 2
    assert "nothing deleted" in capsys.readouterr().err and store.ids() == {kept}


def test_export_into_a_train_valid_folder_adds_to_train(store: FeedbackStore, tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "valid").mkdir()
    store.add(entry("red"), ROOMY)
    store.export(tmp_path)
    assert [p.parent.name for p in tmp_path.rglob("*.jpg")] == ["red"]
    assert (tmp_path / "train" / "red").is_dir() and not (tmp_path / "valid" / "red").exists()


@pytest.mark.parametrize("label, folder", [("horned viper", "horned viper"), ("a/b", "a_b"), (".x", "_x"),
                                           ("", "_"), ("..", "_.")])
def test_labels_become_safe_folder_names(label: str, folder: str) -> None:
    assert safe_folder_name(label) == folder
