"""Every exit leaves a consistent study: signals, kill -9, crashes, shared targets, creation.

Real `tuner` processes on real SQLite and journal storages; the PostgreSQL side (many
workers, a lost server) is in test_postgres.py.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.test_runner import TOY, _training, write_spec
from tuner.attrs import FailureKind, StudyAttr, TrialAttr
from tuner.errors import UserError
from tuner.liveness import n_counted
from tuner.results import read_study
from tuner.runner import prepare, run_study
from tuner.storage import load_study

TUNER = str(Path(sys.executable).with_name("tuner"))
FAULTS = Path(__file__).with_name("fault_workload.py")

pytestmark = pytest.mark.slow


def _spec(
    tmp_path: Path, workload: str, storage: str = "sqlite:///tuner.db", **study: object
) -> Path:
    """A toy spec running one of fault_workload.py's workloads."""
    write_spec(tmp_path, storage=storage, **study)
    path = tmp_path / "spec.toml"
    path.write_text(path.read_text().replace(f"{TOY}:WORKLOAD", f"{FAULTS}:{workload}"))
    return path


def _long_spec(tmp_path: Path, storage: str = "sqlite:///tuner.db") -> Path:
    """A spec whose trials train for many seconds while started with `_start(slow=True)`."""
    return _spec(tmp_path, "SLOW_WHEN_ASKED", storage, n_trials=2)


def _start(*args: str, slow: bool = False) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TUNER_TEST_SLOW": "1"} if slow else None
    return subprocess.Popen([TUNER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _wait_training(storage: str, within_s: float = 120.0) -> None:
    deadline = time.monotonic() + within_s
    while not _training(storage):
        assert time.monotonic() < deadline, "no trial started training"
        time.sleep(0.3)


def _trials(storage: str, name: str = "toy") -> list[optuna.trial.FrozenTrial]:
    return load_study(name, storage).get_trials(deepcopy=False)


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_a_stop_signal_stores_the_trial_as_interrupted_and_a_rerun_resumes(
    tmp_path: Path, signum: signal.Signals, code: int
) -> None:
    spec = _long_spec(tmp_path)
    storage = f"sqlite:///{tmp_path / 'tuner.db'}"
    process = _start("run", str(spec), slow=True)
    _wait_training(storage)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == code, err.decode()[-2000:]
    last = err.decode().strip().splitlines()[-1]
    assert last.startswith(f"interrupted by {signum.name}: ") and "again to resume" in last
    (trial,) = _trials(storage)
    assert trial.state is TrialState.FAIL
    assert trial.user_attrs[TrialAttr.FAILURE_KIND] == FailureKind.INTERRUPTED
    assert signum.name in trial.user_attrs[TrialAttr.FAILURE_REASON]

    rerun = subprocess.run([TUNER, "run", str(spec)], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    trials = _trials(storage)
    assert n_counted(trials) == 2  # the interrupted trial does not count toward n_trials
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 2


@pytest.mark.parametrize("url", ["sqlite:///{dir}/tuner.db", "journal:{dir}/study.log"])
def test_a_runner_killed_by_sigkill_leaves_a_trial_the_next_run_fails_as_lost(
    tmp_path: Path, url: str
) -> None:
    storage = url.format(dir=tmp_path)
    spec = _long_spec(tmp_path, storage=storage)
    process = _start("run", str(spec), slow=True)
    _wait_training(storage)
    process.kill()
    process.wait()
    (running,) = _trials(storage)
    assert running.state is TrialState.RUNNING

    rerun = subprocess.run([TUNER, "run", str(spec)], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    dead, *rest = _trials(storage)
    assert dead.state is TrialState.FAIL
    assert dead.user_attrs[TrialAttr.FAILURE_KIND] == FailureKind.LOST
    assert (
        f"pid {running.user_attrs[TrialAttr.OWNER]['pid']}"
        in dead.user_attrs[TrialAttr.FAILURE_REASON]
    )
    assert [t.state for t in rest] == [TrialState.COMPLETE] * 2  # the target, dead one aside


def test_processes_sharing_a_study_stop_together_at_its_target(tmp_path: Path) -> None:
    storage = f"journal:{tmp_path / 'study.log'}"
    spec = write_spec(tmp_path, n_trials=12, storage=storage)
    run_study(prepare(spec), n_trials=1)  # created once, so both processes join it
    runs = [_start("run", spec.source) for _ in range(2)]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err.decode()[-2000:]
    trials = _trials(storage)
    assert n_counted(trials) == 12
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert not [t for t in trials if t.state is TrialState.RUNNING]
    extra = [t for t in trials if t.state is not TrialState.COMPLETE]
    assert all(t.user_attrs[TrialAttr.FAILURE_KIND] == FailureKind.SURPLUS for t in extra)
    owners = {t.user_attrs[TrialAttr.OWNER]["pid"] for t in trials}
    assert len(owners) == 3  # the creating run and both processes did trials


def test_local_workers_share_the_study_and_run_trials_at_once(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, n_trials=8)
    summary = run_study(prepare(spec), workers=2)
    assert (summary.ran, summary.total) == (8, 8)
    trials = [t for t in _trials(spec.storage) if t.state is TrialState.COMPLETE]
    assert len(trials) == 8
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    overlapping = any(a[1] > b[0] for a, b in itertools.pairwise(spans))
    assert overlapping, "two workers never ran a trial at the same time"


@pytest.mark.parametrize(
    ("workload", "state", "kind", "words"),
    [
        ("HANG", TrialState.PRUNED, FailureKind.TOO_SLOW, "killed"),
        ("EXIT", TrialState.FAIL, FailureKind.CRASHED, "exited with code 3"),
    ],
)
def test_a_trial_that_hangs_or_crashes_is_stored_and_the_study_goes_on(
    tmp_path: Path, workload: str, state: TrialState, kind: FailureKind, words: str
) -> None:
    spec_path = _spec(tmp_path, workload, n_trials=2)
    text = spec_path.read_text().replace("steps = 12", "steps = 100\ntime_limit_s = 10")
    spec_path.write_text(text)
    result = subprocess.run([TUNER, "run", str(spec_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    trials = _trials(f"sqlite:///{tmp_path / 'tuner.db'}")
    assert [t.state for t in trials] == [state, state]
    for trial in trials:
        assert trial.user_attrs[TrialAttr.FAILURE_KIND] == kind
        assert words in trial.user_attrs[TrialAttr.FAILURE_REASON]


def test_a_study_killed_while_being_created_is_made_again(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, n_trials=2)
    half = optuna.create_study(study_name="toy", storage=spec.storage)  # no attributes, no trials
    half.set_user_attr(StudyAttr.OBJECTIVE, "killed before the rest")
    summary = run_study(prepare(spec))
    assert summary.total == 2
    study = optuna.load_study(study_name="toy", storage=spec.storage)
    assert study.user_attrs[StudyAttr.CREATED] is True
    assert study.user_attrs[StudyAttr.OBJECTIVE] == spec.objective
    assert study.trials[0].user_attrs[TrialAttr.BASELINE] is True


def test_a_worker_joins_a_study_from_its_name_and_storage_alone(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, n_trials=2)
    run_study(prepare(spec))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()  # no spec, no space file: only the storage
    result = subprocess.run(
        [TUNER, "worker", "toy", "--storage", spec.storage, "--n-trials", "4"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
    )
    assert result.returncode == 0, result.stderr
    view = read_study("toy", spec.storage)
    assert len(view.completed()) == 4
    assert "Pareto front" in result.stdout
    missing = subprocess.run(
        [TUNER, "worker", "nosuch", "--storage", spec.storage], capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: STUDY: no study named 'nosuch'")


def test_sigterm_during_start_up_exits_143_with_one_line(tmp_path: Path) -> None:
    spec = _long_spec(tmp_path)
    process = _start("run", str(spec), slow=True)
    time.sleep(0.8)  # importing torch and resolving the workload
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err.decode()
    assert b"Traceback" not in err
    assert err.decode().strip().splitlines()[-1].startswith("interrupted by SIGTERM")


@pytest.mark.parametrize("delay_s", [3.0, 3.7, 4.4, 5.1, 5.8])
def test_ctrl_c_is_never_swallowed_between_storage_writes(tmp_path: Path, delay_s: float) -> None:
    # Trials of a few hundred milliseconds: most of the time goes to storage writes, where an
    # interrupt raised inside SQLAlchemy was once swallowed and the run went on.
    write_spec(tmp_path, n_trials=500)
    process = _start("run", str(tmp_path / "spec.toml"))
    time.sleep(delay_s)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err.decode()[-2000:]
    assert b"Exception ignored" not in err and b"Traceback" not in err
    storage = f"sqlite:///{tmp_path / 'tuner.db'}"
    with contextlib.suppress(UserError):  # stopped before the study was created
        assert not [t for t in _trials(storage) if t.state is TrialState.RUNNING]
