"""A throwaway PostgreSQL server for the tests of shared studies, from the system's binaries
(.ci/run installs them): a fresh cluster in a temporary directory, listening on a Unix socket
only, removed afterwards. Run as root, the cluster belongs to the `postgres` user, since
PostgreSQL refuses to run as root."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def find_binaries() -> Path | None:
    for candidate in [shutil.which("pg_ctl"), *sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))]:
        if candidate and Path(candidate).with_name("initdb").exists():
            return Path(candidate).resolve().parent
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yields an SQLAlchemy URL of a fresh, empty database."""
    binaries = find_binaries()
    if binaries is None:
        raise RuntimeError("no PostgreSQL binaries (pg_ctl, initdb) on PATH or in "
                           "/usr/lib/postgresql/*/bin; .ci/run installs them")
    root = Path(tempfile.mkdtemp(prefix="nas-pg-"))
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", _free_port()
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True)  # noqa: E731
    try:
        run(str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "nas")
        run(str(binaries / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "log"), "-o",
            f"-k {root} -p {port} -c listen_addresses=''", "start")
        try:
            yield f"postgresql+psycopg2://nas@/postgres?host={root}&port={port}"
        finally:
            run(str(binaries / "pg_ctl"), "-D", str(data), "-w", "-m", "immediate", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
