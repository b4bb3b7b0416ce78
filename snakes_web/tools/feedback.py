"""`snakes-web feedback list|export DIR|purge`: the owner's side of the stored feedback.

`purge` deletes only what it is told to: what an export wrote (``--from-export DIR``, from its manifest),
entries up to an id, entries older than some days, or, with ``--all`` and a confirmation, everything.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from snakes_web.config import load_settings
from snakes_web.feedback.database import Database
from snakes_web.feedback.store import MANIFEST, NONE_FOLDER, FeedbackStore


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
    purge = actions.add_parser("purge", help="delete stored feedback: what an export wrote, up to an id, older "
                                             "than some days, or --all")
    purge.add_argument("--from-export", type=Path, default=None, metavar="DIR",
                       help=f"the entries the export into DIR wrote (its {MANIFEST}); later answers stay")
    purge.add_argument("--through-id", type=int, default=None, metavar="ID", help="entries with this id or lower")
    purge.add_argument("--older-than", type=float, default=None, metavar="DAYS", help="entries older than this")
    purge.add_argument("--all", action="store_true", help="every entry (asks first, unless --yes)")
    purge.add_argument("--yes", action="store_true", help="do not ask before --all")
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
    """Write every entry as <label>/feedback-<id>-<nonce>.jpg under the folder, and a manifest; say what went where."""
    exported = store.export(args.folder)
    total = sum(exported.counts.values())
    print(f"Wrote {total} photo(s) into {args.folder} (entries up to id {exported.through_id}):")
    for folder, count in sorted(exported.counts.items()):
        note = ("  (not a class: `train` passes over it; words.csv has the visitors' words)"
                if folder == NONE_FOLDER else "")
        print(f"  {folder:<20} {count:5d}{note}")
    print(f"Train on it:  snakes-web train {args.folder} --onnx")
    print(f"Then delete what this export holds (answers given since stay):  "
          f"snakes-web feedback purge --from-export {args.folder}")
    return 0


def purge_feedback(store: FeedbackStore, args: argparse.Namespace) -> int:
    """Delete the entries the options select (``--all`` only after a yes) and say how many."""
    through = args.through_id
    if args.from_export is not None:
        through = _manifest_through(store, args.from_export)
        if through is None:
            return 2
    older = datetime.timedelta(days=args.older_than) if args.older_than is not None else None
    if through is None and older is None:
        if not args.all:
            print("Say what to delete: --from-export DIR (what an export wrote), --through-id ID, "
                  "--older-than DAYS, or --all.", file=sys.stderr)
            return 2
        if not args.yes and not _confirmed(f"Delete all {store.count()} entries in {store.database.describe()}?"):
            print("Nothing deleted.", file=sys.stderr)
            return 1
    print(f"Deleted {store.purge(older, through)} entries.")
    store.compact()
    return 0


def _manifest_through(store: FeedbackStore, folder: Path) -> int | None:
    """Return the last id the export into ``folder`` wrote, or None (said why) when its manifest does not do."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        through, database = int(manifest["through_id"]), str(manifest["database"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"{path} is not an export's manifest ({type(exc).__name__}): nothing deleted.", file=sys.stderr)
        return None
    if database != store.database.describe():
        print(f"{path} was written from {database}, not {store.database.describe()}: nothing deleted.",
              file=sys.stderr)
        return None
    return through


def _confirmed(question: str) -> bool:
    """Ask a yes/no question on the terminal; no terminal means no."""
    if not sys.stdin.isatty():
        print(f"{question} Not asked (no terminal): add --yes to mean it.", file=sys.stderr)
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
