"""Print setup.cfg's requirements (install_requires plus the named extras), one per line, for pip -r.

The Dockerfile installs the dependencies from this list before it copies the code, so a code change
rebuilds only the layers after it. Usage: python requirements.py setup.cfg [extra ...]
"""
from __future__ import annotations

import configparser
import sys


def requirements(setup_cfg: str, extras: list[str]) -> list[str]:
    """Return install_requires and the given extras of ``setup_cfg`` (``%(extra)s`` references expanded)."""
    parser = configparser.ConfigParser()
    parser.read(setup_cfg)
    lines = [parser["options"]["install_requires"]]
    lines += [parser["options.extras_require"][extra] for extra in extras]
    return [line.strip() for text in lines for line in text.splitlines()
            if line.strip() and not line.strip().startswith("#")]


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1], sys.argv[2:])))
