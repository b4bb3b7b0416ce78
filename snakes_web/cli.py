"""The `snakes-web` command."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def build_default_model(args: argparse.Namespace) -> int:
    """Build the default snake classifier and export it (skipped when it exists, unless --force)."""
    from .snakenet import export_default_model

    output = Path(args.output)
    if output.exists() and not args.force:
        print(f"{output} exists; use --force to rebuild it.")
        return 0
    print(f"Building the default model into {output} ...")
    print(f"Wrote {export_default_model(output)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run a `snakes-web` subcommand."""
    parser = argparse.ArgumentParser(prog="snakes-web", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build-default-model", help=build_default_model.__doc__)
    build.add_argument("-o", "--output", default="models/export.pkl", help="where to write export.pkl")
    build.add_argument("--force", action="store_true", help="rebuild even if the file exists")
    build.set_defaults(run=build_default_model)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
