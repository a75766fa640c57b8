"""Opening Optuna storages for the runner (create) and for readers (must already exist).

Readers never create anything: SQLAlchemy would happily make an empty database for a mistyped
SQLite path, and a user would then see "no studies" instead of "wrong path".
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import UserError

if TYPE_CHECKING:  # optuna is imported when a storage is opened, so `tuner --help` stays instant
    import optuna

_SQLITE = "sqlite:///"
_JOURNAL = "journal:"


_PASSWORD = re.compile(r"(?<=://)([^:/@]*):[^@/]*@")


def masked(url: str) -> str:
    """`url` with any password replaced by ***, fit to print or show in the app."""
    return _PASSWORD.sub(r"\1:***@", url)


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL, or None for other storages."""
    return Path(url[len(_SQLITE) :]) if url.startswith(_SQLITE) else None


def _rdb_storage(
    url: str, engine_kwargs: dict[str, Any], heartbeat: tuple[int, int] | None
) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage, retried when another process creates the same database at the
    same moment: both see no tables (or no schema version), both create them, and the second
    fails (`table studies already exists`, `IntegrityError ... alembic_version`). On the retry
    they are there."""
    import optuna
    import sqlalchemy.exc

    for attempt in range(_CREATE_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat[0] if heartbeat else None,
                grace_period=heartbeat[1] if heartbeat else None,
            )
        except sqlalchemy.exc.DBAPIError as exc:
            racing = isinstance(exc, sqlalchemy.exc.IntegrityError) or "already exists" in str(exc)
            if not racing or attempt == _CREATE_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


_CREATE_ATTEMPTS = 5


def _engine_kwargs(url: str, heartbeat: tuple[int, int] | None) -> dict[str, Any]:
    """SQLAlchemy engine options for the storage's database.

    SQLite: a generous lock timeout lets a reader (show, app) poll while a run writes.
    PostgreSQL, for a runner: a session idle inside a transaction for the grace period is
    ended by the server. A runner frozen or cut off mid-write (a lost machine) would
    otherwise hold its row locks until TCP gives up, hours later, and every other worker's
    sweep would wait on them.
    """
    if url.startswith(_SQLITE):
        return {"connect_args": {"timeout": 30}}
    if url.startswith("postgresql") and heartbeat is not None:
        timeout_ms = heartbeat[1] * 1000
        return {"connect_args": {"options": f"-c idle_in_transaction_session_timeout={timeout_ms}"}}
    return {}


def _journal_path(url: str) -> Path | None:
    return Path(url[len(_JOURNAL) :]) if url.startswith(_JOURNAL) else None


def open_storage(
    url: str, *, create: bool, heartbeat: tuple[int, int] | None = None
) -> optuna.storages.BaseStorage:
    """An Optuna storage for `url`; with create=False a missing SQLite or journal file is a
    UserError (a reader must never leave an empty storage behind a mistyped path).

    `heartbeat` (interval, grace period in seconds) turns on Optuna's trial heartbeat on RDB
    storages, for the runner; readers leave it off.
    """
    import optuna
    from optuna.storages.journal import JournalFileBackend

    path = sqlite_path(url)
    file = path if path is not None else _journal_path(url)
    if file is not None:
        if not create and not file.is_file():
            kind = "database" if path is not None else "journal"
            raise UserError(
                f"--storage: no {kind} at {file}; run `tuner run SPEC` first or pass the "
                "right --storage URL"
            )
        if file.exists() and not file.is_file():  # /dev/zero as a journal reads forever
            raise UserError(
                f"--storage: {file} is not a regular file; give the path of a database or "
                "journal file"
            )
        try:  # the storage's own folder, not a whole mistyped path of them
            file.parent.mkdir(exist_ok=True)
        except OSError as exc:
            raise UserError(
                f"--storage: cannot create the folder {file.parent}: {exc.strerror}; "
                "choose a storage path in a folder you can write"
            ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        if url.startswith(("sqlite:", "postgresql", "mysql")):
            # A generous SQLite lock timeout lets a reader (show, app) poll while a run writes.
            return _rdb_storage(url, _engine_kwargs(url, heartbeat), heartbeat)
        if file is not None:
            return optuna.storages.JournalStorage(JournalFileBackend(str(file)))
    except Exception as exc:
        detail = masked(f"{type(exc).__name__}: {exc}".splitlines()[0])
        raise UserError(f"--storage: cannot open {masked(url)!r}: {detail}") from None
    raise UserError(
        f"--storage: unsupported URL {masked(url)!r}; use sqlite:///path.db, postgresql://... "
        "or journal:path.log"
    )


def load_study(name: str, url: str) -> optuna.Study:
    """An existing study, or a UserError that says how to find the right name."""
    import optuna

    storage = open_storage(url, create=False)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        known = ", ".join(sorted(names)) or "none"
        raise UserError(
            f"STUDY: no study named {name!r} in {masked(url)}; studies there: {known}"
        ) from None
