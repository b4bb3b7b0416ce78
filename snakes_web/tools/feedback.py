"""`snakes-web feedback list|export DIR|purge`: the owner's side of the stored feedback."""
from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from snakes_web.config import load_settings
from snakes_web.feedback.database import Database
from snakes_web.feedback.store import NONE_FOLDER, FeedbackStore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare `snakes-web feedback`'s subcommands."""
    parser.add_argument("--database-url", default=None,
                        help="the database (default: SNAKES_DATABASE_URL, else SQLite in SNAKES_DATA_DIR)")
    actions = parser.add_subparsers(dest="action", required=True)
    show = actions.add_parser("list", help="list stored feedback, newest first")
    show.add_argument("-n", "--limit", type=int, default=50, help="how many (default 50; 0: all)")
    show.set_defaults(act=list_feedback)
    export = actions.add_parser("export", help="write the photos in the folder layout `snakes-web train` reads")
    export.add_argument("folder", type=Path, help="where (e.g. your photos folder: its class folders get the "
                                                  "corrections beside your photos)")
    export.set_defaults(act=export_feedback)
    purge = actions.add_parser("purge", help="delete stored feedback (all of it, or older than --older-than)")
    purge.add_argument("--older-than", type=float, default=None, metavar="DAYS", help="only entries older than this")
    purge.set_defaults(act=purge_feedback)


def run(args: argparse.Namespace) -> int:
    """Run a `snakes-web feedback` subcommand on the configured database."""
    settings = load_settings()
    if args.database_url:
        settings["DATABASE_URL"] = args.database_url
    database = Database.from_settings(settings)
    try:
        return int(args.act(FeedbackStore(database), args))
    finally:
        database.dispose()


def list_feedback(store: FeedbackStore, args: argparse.Namespace) -> int:
    """Print one line per entry: id, time, the model's label, the visitor's answer, size."""
    entries, size = store.usage()
    print(f"{entries} entries, {size / 1048576:.1f} MB of photos in {store.database.describe()}")
    rows = store.recent(args.limit) if args.limit > 0 else list(store.entries())[::-1]
    for row in rows:
        answer = {"confirm": "confirmed", "correct": f"-> {row.label}",
                  "none": f"none of these{': ' + repr(row.other) if row.other else ''}"}[row.verdict]
        print(f"{row.id:6d}  {row.created_at:%Y-%m-%d %H:%M}  {row.predicted} {row.probability:.0%}  {answer}  "
              f"{row.width}x{row.height} {row.image_bytes / 1024:.0f} KB")
    return 0


def export_feedback(store: FeedbackStore, args: argparse.Namespace) -> int:
    """Write every entry as <label>/feedback-<id>.jpg under the folder; say what went where."""
    counts = store.export(args.folder)
    total = sum(counts.values())
    print(f"Wrote {total} photo(s) into {args.folder}:")
    for folder, count in sorted(counts.items()):
        note = ("  (not a class: `train` passes over it; words.csv has the visitors' words)"
                if folder == NONE_FOLDER else "")
        print(f"  {folder:<20} {count:5d}{note}")
    print(f"Train on it:  snakes-web train {args.folder} --onnx")
    return 0


def purge_feedback(store: FeedbackStore, args: argparse.Namespace) -> int:
    """Delete entries and say how many."""
    older = datetime.timedelta(days=args.older_than) if args.older_than is not None else None
    print(f"Deleted {store.purge(older)} entries.")
    store.compact()
    return 0
