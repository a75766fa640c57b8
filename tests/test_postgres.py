"""Studies on a real PostgreSQL server: `postgresql://` works after installing the
`postgres` extra (psycopg 3, which SQLAlchemy 2.1 maps `postgresql://` to), end to end through
the installed command."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from tests import postgres
from tuner.attrs import StudyAttr, TrialAttr

if not postgres.available():
    if os.environ.get("TUNER_REQUIRE_POSTGRES"):
        pytest.fail("TUNER_REQUIRE_POSTGRES is set but the PostgreSQL 15 server is missing")
    pytest.skip(
        "needs Debian's PostgreSQL 15 server (apt-get install postgresql)",
        allow_module_level=True,
    )

TOY = Path(__file__).with_name("toy_workload.py")
SPEC = f"""
[study]
name = "pg"
objective = "{TOY}:WORKLOAD"
space = "quick"
n_trials = 3
n_startup_trials = 2
[budget]
steps = 12
evaluations = 2
"""


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with postgres.throwaway_server() as url:
        yield url


def tuner(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("tuner")
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


@pytest.mark.slow
def test_a_study_runs_shows_and_exports_on_postgresql(server: str, tmp_path: Path) -> None:
    (tmp_path / "pg.toml").write_text(SPEC)
    run = tuner("run", "pg.toml", "--storage", server, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    study = optuna.load_study(study_name="pg", storage=server)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert study.trials[0].user_attrs[TrialAttr.BASELINE] is True
    assert study.user_attrs[StudyAttr.METRIC_NAME] == "accuracy"
    show = tuner("show", "pg", "--storage", server, cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    assert "baseline: trial 0" in show.stdout and "3 complete" in show.stdout
    listed = tuner("list", "--storage", server, cwd=tmp_path)
    assert "pg" in listed.stdout
    export = tuner("export", "pg", "--storage", server, "--pick", "best-metric", cwd=tmp_path)
    assert export.returncode == 0, export.stderr
    assert "tuner_export: 1" in export.stdout
    assert not list(tmp_path.rglob("*.db"))  # nothing fell back to SQLite


def test_a_password_is_never_printed(server: str, tmp_path: Path) -> None:
    port = server.split(":")[-1].split("/")[0]
    bad = f"postgresql://nobody:s3cret@127.0.0.1:{port}/no_such_db"
    result = tuner("show", "pg", "--storage", bad, cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "s3cret" not in result.stderr and "nobody:***@" in result.stderr
    # Trust authentication accepts any password: an empty storage says so, masked.
    with_password = server.replace("postgres@", "postgres:s3cret@")
    empty = tuner(
        "list", "--storage", with_password.replace("tuner_test", "postgres"), cwd=tmp_path
    )
    assert empty.returncode == 0, empty.stderr
    assert "no studies in postgresql://postgres:***@" in empty.stdout
    assert "s3cret" not in empty.stdout + empty.stderr
