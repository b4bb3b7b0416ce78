"""A throw-away PostgreSQL cluster for the tests: Debian's initdb and pg_ctl, a Unix socket in a temp folder.

PostgreSQL refuses to run as root, and CI runs as root: then the cluster belongs to the `postgres` user
Debian's package makes (or `nobody`), and the commands run through `runuser`. No TCP port is opened.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEBIAN_BIN = Path("/usr/lib/postgresql")


def _tool(name: str) -> str:
    """Find a PostgreSQL program on PATH, else in Debian's versioned folder."""
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(DEBIAN_BIN.glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    raise RuntimeError(f"{name} not found: install Debian's postgresql package (.ci/run does)")


def _as_owner(user: str | None, command: list[str]) -> list[str]:
    """Run ``command`` as ``user`` when we are root (PostgreSQL will not run as root)."""
    return ["runuser", "-u", user, "--", *command] if user else command


@contextmanager
def cluster() -> Iterator[str]:
    """Start a cluster on a Unix socket; yield the socket folder; stop it and remove everything."""
    user = None
    if os.geteuid() == 0:
        user = next(name for name in ("postgres", "nobody") if _has_user(name))
    folder = Path(tempfile.mkdtemp(prefix="snakes-pg-"))
    if user:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    data = folder / "data"
    subprocess.run(_as_owner(user, [_tool("initdb"), "-D", str(data), "-U", "snakes", "-A", "trust",
                                    "--no-sync", "-E", "UTF8"]), check=True, capture_output=True)
    options = f"-k {folder} -c listen_addresses='' -c fsync=on -c max_connections=200"
    subprocess.run(_as_owner(user, [_tool("pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"),
                                    "-w", "-t", "60", "start"]), check=True, capture_output=True)
    try:
        yield str(folder)
    finally:
        subprocess.run(_as_owner(user, [_tool("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _has_user(name: str) -> bool:
    """Tell whether a system user exists."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def new_database(socket_folder: str) -> str:
    """Create an empty database in the cluster; return its postgresql:// URL (the form users set)."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(host=socket_folder, user="snakes", dbname="postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://snakes@/{name}?host={socket_folder}"
