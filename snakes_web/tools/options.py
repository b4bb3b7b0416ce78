"""Options several `snakes-web` commands share."""
from __future__ import annotations

import argparse

from snakes_web.model.model_code import CODE_SETTING, split_sources


def add_code_option(parser: argparse.ArgumentParser) -> None:
    """Declare ``--code``: the user's modules or .py files a fastai export's pickle names."""
    parser.add_argument("--code", action="append", default=[], metavar="MODULE_OR_FILE",
                        help="a module or .py file defining the functions the export was pickled with "
                             f"(get_y=label_func in a notebook); repeat for more; adds to {CODE_SETTING}")


def code_of(args: argparse.Namespace) -> list[str]:
    """Return the sources to import: the setting's, then ``--code``'s."""
    from snakes_web.config import load_settings

    return [*split_sources(str(load_settings()["MODEL_CODE"])), *args.code]
