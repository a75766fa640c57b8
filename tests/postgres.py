"""A real, throwaway PostgreSQL server for tests: Debian's server binaries, a temp dir, a free
loopback port, stopped (and its files removed) afterwards.

`throwaway_server` trusts every connection and yields a URL; `running_server` yields the
`Server` itself, which can require a password and be stopped and started again on the same
data and port (a database that goes away mid-study and comes back).

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
from dataclasses import dataclass
from pathlib import Path

BIN = Path("/usr/lib/postgresql/15/bin")


def available() -> bool:
    return (BIN / "initdb").is_file() and (os.geteuid() != 0 or _user_exists("postgres"))


def require() -> None:
    """Skip the calling test module when the server is missing; with TUNER_REQUIRE_POSTGRES
    set (CI), fail instead, so the tests can never be skipped there unnoticed."""
    import pytest

    if available():
        return
    if os.environ.get("TUNER_REQUIRE_POSTGRES"):
        pytest.fail("TUNER_REQUIRE_POSTGRES is set but the PostgreSQL 15 server is missing")
    pytest.skip(
        "needs Debian's PostgreSQL 15 server (apt-get install postgresql)",
        allow_module_level=True,
    )


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


@dataclass(frozen=True)
class Server:
    """A server made by `running_server`: its folder (data and log), port and password."""

    folder: Path
    port: int
    database: str
    password: str | None

    @property
    def url(self) -> str:
        """The URL of the test database, with the password when the server requires one."""
        secret = f":{self.password}" if self.password else ""
        return f"postgresql://postgres{secret}@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> None:
        """Start the server (again: same data, same port) and wait until it accepts."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        data, log = self.folder / "data", self.folder / "log"
        _run(
            _as_server_user(
                [str(BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start"]
            )
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` disconnects every client at once, as an admin's stop does."""
        data = self.folder / "data"
        _run(_as_server_user([str(BIN / "pg_ctl"), "-D", str(data), "-m", mode, "-w", "stop"]))


@contextlib.contextmanager
def running_server(database: str = "tuner_test", password: str | None = None) -> Iterator[Server]:
    """Start a PostgreSQL server with a fresh database; with `password`, TCP connections
    must give it (SCRAM), as on a real server."""
    folder = Path(tempfile.mkdtemp(prefix="tuner-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    server = Server(folder, _free_port(), database, password)
    try:
        auth = ["-A", "trust"]
        if password is not None:
            secret = folder / "pwfile"
            secret.write_text(password + "\n")
            if os.geteuid() == 0:
                shutil.chown(secret, "postgres")
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={secret}"]
        initdb = [str(BIN / "initdb"), "-D", str(folder / "data"), *auth, "-U", "postgres"]
        _run(_as_server_user(initdb))
        server.start()
        try:
            host = ["-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres"]
            env = {**os.environ, "PGPASSWORD": password} if password is not None else None
            _run([str(BIN / "createdb"), *host, database], env=env)
            yield server
        finally:
            stop = [str(BIN / "pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "-w"]
            subprocess.run(_as_server_user([*stop, "stop"]), capture_output=True, timeout=120)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def throwaway_server(database: str = "tuner_test") -> Iterator[str]:
    """Start a PostgreSQL server that trusts every connection; yield its database's URL."""
    with running_server(database) as server:
        yield server.url


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({result.returncode}): {result.stderr[-2000:]}")
