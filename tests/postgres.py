"""A real, throwaway PostgreSQL server for tests: Debian's server binaries, a temp dir, a free
loopback port, trust authentication, stopped (and its files removed) afterwards.

initdb refuses to run as root, so as root the server runs as the ``postgres`` system user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

BIN = Path("/usr/lib/postgresql/15/bin")


def available() -> bool:
    return (BIN / "initdb").is_file() and (os.geteuid() != 0 or _user_exists("postgres"))


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def throwaway_server(database: str = "tuner_test") -> Iterator[str]:
    """Start a PostgreSQL server and yield the URL of a fresh database on it."""
    folder = Path(tempfile.mkdtemp(prefix="tuner-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", _free_port()
    try:
        _run(
            _as_server_user([str(BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"])
        )
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
        start = [str(BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log")]
        _run(_as_server_user([*start, "-w", "start"]))
        try:
            host = ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
            _run([str(BIN / "createdb"), *host, database])
            yield f"postgresql://postgres@127.0.0.1:{port}/{database}"
        finally:
            stop = [str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
            subprocess.run(_as_server_user(stop), capture_output=True, timeout=120)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({result.returncode}): {result.stderr[-2000:]}")
