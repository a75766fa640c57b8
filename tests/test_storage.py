"""Opening storages: processes racing to create one database, and readers that create nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tuner.errors import UserError
from tuner.storage import masked, open_storage

_CREATE = (
    "import sys; from tuner.storage import open_storage; open_storage(sys.argv[1], create=True)"
)


@pytest.mark.slow
def test_processes_creating_one_sqlite_storage_at_once_all_succeed(tmp_path: Path) -> None:
    # Without the retry, 2 of 24 such processes failed here with `IntegrityError ...
    # alembic_version` or `table studies already exists`.
    for round_ in range(6):
        url = f"sqlite:///{tmp_path / f'race{round_}.db'}"
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", _CREATE, url], stderr=subprocess.PIPE, text=True
            )
            for _ in range(4)
        ]
        for process in processes:
            _, err = process.communicate(timeout=120)
            assert process.returncode == 0, err[-1000:]


def test_readers_never_create_a_storage(tmp_path: Path) -> None:
    for url in (f"sqlite:///{tmp_path / 'no.db'}", f"journal:{tmp_path / 'no.log'}"):
        with pytest.raises(UserError, match=r"--storage: no (database|journal) at"):
            open_storage(url, create=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://me:s3cret@host:5432/db", "postgresql://me:***@host:5432/db"),
        ("mysql+pymysql://root:p%40ss@127.0.0.1/tuner", "mysql+pymysql://root:***@127.0.0.1/tuner"),
        ("postgresql://me@host/db", "postgresql://me@host/db"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_masked_hides_exactly_the_password(url: str, shown: str) -> None:
    assert masked(url) == shown
