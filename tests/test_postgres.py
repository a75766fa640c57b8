"""Studies on a real PostgreSQL server: `postgresql://` works after installing the
`postgres` extra (psycopg 3, which SQLAlchemy 2.1 maps `postgresql://` to), end to end through
the installed command."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial

from tests import postgres
from tuner.attrs import FailureKind, StudyAttr, TrialAttr
from tuner.liveness import Owner, counts, n_counted
from tuner.results import read_study

postgres.require()

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


# --- Worker processes on one study: a shared target, kill -9, a frozen runner, a lost server.
# Each worker is its own `python -m tuner worker` process with a 1 s heartbeat (3 s grace).

#: The quick space without torch.compile, whose compiling would take seconds per trial here.
SPACE = 'extends = "quick"\n[performance]\ncompile_mode = ["off"]\n'
HEARTBEAT_S = 1
RUNNING = optuna.trial.TrialState.RUNNING


def write_shared_spec(folder: Path, name: str) -> Path:
    """A study of tiny trials (about a second each, sampling and storage included)."""
    (folder / "space.toml").write_text(SPACE)
    path = folder / f"{name}.toml"
    path.write_text(
        f'[study]\nname = "{name}"\nobjective = "{TOY}:WORKLOAD"\nspace = "space.toml"\n'
        "n_trials = 1\nn_startup_trials = 4\n"
        "[budget]\nsteps = 12\nevaluations = 2\n[run]\nthreads = 1\n"
    )
    return path


class Workers:
    """`tuner worker` processes of one test; any still running at its end are killed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, url: str, n_trials: int) -> subprocess.Popen[bytes]:
        log = self.folder / f"worker{len(self.started)}"
        command = [sys.executable, "-m", "tuner", "worker", name, "--storage", url]
        with open(f"{log}.out", "wb") as out, open(f"{log}.err", "wb") as err:
            worker = subprocess.Popen(
                [*command, "--n-trials", str(n_trials)],
                stdout=out,
                stderr=err,
                cwd=self.folder,
                env={**os.environ, "TUNER_HEARTBEAT_S": str(HEARTBEAT_S)},
            )
        self.started.append(worker)
        return worker

    def output(self, worker: subprocess.Popen[bytes], stream: str = "err") -> str:
        """What `worker` wrote to stderr (or "out", stdout)."""
        return Path(f"{self.folder}/worker{self.started.index(worker)}.{stream}").read_text()

    def finish(self, worker: subprocess.Popen[bytes], within_s: float = 300.0) -> int:
        """Wait for `worker` to exit and return its exit code."""
        try:
            return worker.wait(timeout=within_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {worker.pid} still running after {within_s:.0f} s")

    def kill_all(self) -> None:
        for worker in self.started:
            if worker.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGCONT)
                    worker.kill()
                worker.wait()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    started = Workers(tmp_path)
    try:
        yield started
    finally:
        started.kill_all()


class Stored:
    """The trials of one study, read afresh each time on a new connection (so a server that
    restarts in between leaves no dead pooled connection behind)."""

    def __init__(self, url: str, name: str) -> None:
        import sqlalchemy.pool

        self.storage = optuna.storages.RDBStorage(
            url, engine_kwargs={"poolclass": sqlalchemy.pool.NullPool}
        )
        self.study_id = self.storage.get_study_id_from_name(name)

    def trials(self) -> list[FrozenTrial]:
        return self.storage.get_all_trials(self.study_id, deepcopy=False)

    def heartbeat_age(self, trial: FrozenTrial) -> float:
        """Seconds since the trial's last heartbeat, on the server's clock."""
        import sqlalchemy

        query = sqlalchemy.text(
            "SELECT EXTRACT(EPOCH FROM LOCALTIMESTAMP - heartbeat) FROM trial_heartbeats "
            "WHERE trial_id = :id"
        )
        with self.storage.engine.connect() as connection:
            return float(connection.execute(query, {"id": trial._trial_id}).scalar_one())


def owner_pid(trial: FrozenTrial) -> int | None:
    owner = Owner.of(trial)
    return owner.pid if owner else None


def kind(trial: FrozenTrial) -> str | None:
    return trial.user_attrs.get(TrialAttr.FAILURE_KIND)


def _stat(path: Path) -> list[str] | None:
    """Fields of a /proc/.../stat file after the command name (state first, start time at
    19), None when the process is gone."""
    try:
        return path.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(pid: int) -> dict[int, str]:
    """Every process below `pid` (pid -> start time, to tell it from a reused pid)."""
    found: dict[int, str] = {}
    parents = [pid]
    while parents:
        for children in Path(f"/proc/{parents.pop()}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                for child in map(int, children.read_text().split()):
                    stat = _stat(Path(f"/proc/{child}/stat"))
                    if stat is not None and child not in found:
                        found[child] = stat[19]
                        parents.append(child)
    return found


def running(pid: int, start: str) -> bool:
    """Whether that process still runs (a zombie nobody reaped does not)."""
    stat = _stat(Path(f"/proc/{pid}/stat"))
    return stat is not None and stat[0] != "Z" and stat[19] == start


def _freeze(pid: int) -> None:
    """SIGSTOP `pid` and wait until every thread of it is stopped: it writes nothing more."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        states = [(_stat(task) or ["?"])[0] for task in Path(f"/proc/{pid}/task").glob("*/stat")]
        if states and all(state == "T" for state in states):
            return
        time.sleep(0.01)
    pytest.fail(f"process {pid} did not stop")


@dataclass(frozen=True)
class Caught:
    """A worker frozen (SIGSTOP) while it trains a trial of its own."""

    trial: FrozenTrial  # its trial, read while it was frozen: still RUNNING
    trials: list[FrozenTrial]  # the whole study at that moment
    children: dict[int, str]  # its processes (the supervised trial worker) and start times
    frozen_at: float  # time.monotonic() of the freeze


def results_of(worker: subprocess.Popen[bytes], trials: list[FrozenTrial]) -> int:
    """Trials of `worker` that ended with a result."""
    return sum(t.state.is_finished() and counts(t) for t in trials if owner_pid(t) == worker.pid)


def catch_training(
    worker: subprocess.Popen[bytes],
    stored: Stored,
    results: int = 0,
    ready: Callable[[list[FrozenTrial]], bool] = lambda trials: True,
    on_poll: Callable[[list[FrozenTrial]], None] = lambda trials: None,
    within_s: float = 240.0,
) -> Caught:
    """Freeze `worker` while it trains a trial of its own, once `results` of its trials got
    a result and `ready` holds.

    The worker is frozen first and read after: its trial is then known to be RUNNING with
    nothing more to come until it is continued, and it is outside any transaction (frozen
    inside one, it would hold row locks that block every other worker; see `_busy`).
    """
    deadline = time.monotonic() + within_s
    while True:
        assert worker.poll() is None, f"worker {worker.pid} exited with {worker.returncode}"
        assert time.monotonic() < deadline, f"worker {worker.pid} never trained a trial"
        trials = stored.trials()
        on_poll(trials)
        if results_of(worker, trials) >= results and ready(trials) and descendants(worker.pid):
            _freeze(worker.pid)
            frozen_at = time.monotonic()
            trials = stored.trials()
            training = [
                t
                for t in trials
                if owner_pid(t) == worker.pid
                and t.state is RUNNING
                and TrialAttr.CONFIG in t.user_attrs
            ]
            if training and not _busy(stored, worker.pid):
                return Caught(training[0], trials, descendants(worker.pid), frozen_at)
            os.kill(worker.pid, signal.SIGCONT)
        time.sleep(0.02)


def _busy(stored: Stored, pid: int) -> bool:
    """Whether process `pid` is inside a transaction (or a statement) on the server: its
    connections are found by their local ports, through its socket descriptors."""
    import sqlalchemy

    sockets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            sockets.add(os.readlink(fd))
    ports = [
        int(fields[1].rsplit(":", 1)[1], 16)
        for fields in map(str.split, Path(f"/proc/{pid}/net/tcp").read_text().splitlines())
        if len(fields) > 9 and f"socket:[{fields[9]}]" in sockets
    ]
    if not ports:
        return False
    query = sqlalchemy.text(
        "SELECT count(*) FROM pg_stat_activity WHERE client_port = ANY(:ports) AND state <> 'idle'"
    )
    with stored.storage.engine.connect() as connection:
        return bool(connection.execute(query, {"ports": ports}).scalar())


def check_consistent(trials: list[FrozenTrial], target: int) -> None:
    """What every study must be after its workers exit: numbers 0..n-1 once each, nothing
    running, exactly `target` trials that count, and surplus trials (FAIL) never run."""
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert not [t.number for t in trials if not t.state.is_finished()]
    assert n_counted(trials) == target
    surplus = [t for t in trials if kind(t) == FailureKind.SURPLUS]
    assert all(t.state is optuna.trial.TrialState.FAIL for t in surplus)
    assert not [t.number for t in surplus if TrialAttr.CONFIG in t.user_attrs]  # none ran


def show_front(text: str) -> list[int]:
    """Trial numbers of the front table `tuner show` prints, in its order."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Pareto front ("))
    rows = itertools.takewhile(lambda line: not line.startswith("Δ:"), lines[start + 2 :])
    return [int(row.split()[0]) for row in rows]


@pytest.mark.slow
def test_four_worker_processes_share_a_study_and_stop_together_at_its_target(
    server: str, tmp_path: Path, workers: Workers
) -> None:
    """Four `tuner worker` processes join a study from its name and URL: together they store
    exactly the target, each trial number once, and `tuner show` reads back the same front."""
    target = 40
    spec = write_shared_spec(tmp_path, "shared")
    created = tuner("run", str(spec), "--storage", server, cwd=tmp_path)  # the baseline trial
    assert created.returncode == 0, created.stderr
    began = time.monotonic()
    started = [workers.start("shared", server, target) for _ in range(4)]
    for worker in started:
        assert workers.finish(worker) == 0, workers.output(worker)[-2000:]
    elapsed = time.monotonic() - began

    trials = Stored(server, "shared").trials()
    check_consistent(trials, target)
    assert not [t.number for t in trials if kind(t) == FailureKind.LOST]  # none presumed dead
    by_owner = Counter(owner_pid(t) for t in trials if counts(t) and t.number > 0)
    assert set(by_owner) <= {w.pid for w in started}
    assert len(by_owner) >= 2, by_owner
    surplus = sum(kind(t) == FailureKind.SURPLUS for t in trials)
    print(
        f"\n4 workers: {target} counted trials of {len(trials)} in {elapsed:.1f} s; "
        f"trials per worker {sorted(by_owner.values(), reverse=True)}; surplus {surplus}"
    )

    show = tuner("show", "shared", "--storage", server, cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    view = read_study("shared", server)
    assert show_front(show.stdout) == [t.number for t in view.front()]
    counted = ", ".join(f"{n} {s.lower()}" for s, n in sorted(view.state_counts().items()))
    assert f"trials: {counted}\n" in show.stdout


@pytest.mark.slow
def test_ten_workers_killed_by_sigkill_lose_nothing_but_their_running_trials(
    server: str, tmp_path: Path, workers: Workers
) -> None:
    """Ten times a worker is killed (SIGKILL) mid-trial, after 0, 1 or 2 results of its own:
    every result stays, every killed trial ends FAIL lost (failed by the next worker's sweep),
    no trial worker outlives its runner, and a last worker completes the study."""
    target = 24
    created = tuner(
        "run", str(write_shared_spec(tmp_path, "kills")), "--storage", server, cwd=tmp_path
    )
    assert created.returncode == 0, created.stderr
    stored = Stored(server, "kills")
    results: dict[int, FrozenTrial] = {}  # every trial with a result seen before a kill
    killed: dict[int, float] = {}  # trial number -> when its runner was killed
    failed_after: dict[int, float] = {}  # trial number -> seconds from the kill to its FAIL
    orphans: dict[int, tuple[str, float]] = {}  # child pid -> (start time, when killed)
    orphan_s: list[float] = []

    def watch(trials: list[FrozenTrial]) -> None:
        now = time.monotonic()
        for trial in trials:
            if (
                trial.number in killed
                and trial.number not in failed_after
                and (trial.state.is_finished())
            ):
                failed_after[trial.number] = now - killed[trial.number]
        for pid, (start, since) in list(orphans.items()):
            if not running(pid, start):
                orphan_s.append(now - since)
                del orphans[pid]

    for round_ in range(10):
        worker = workers.start("kills", server, target)
        caught = catch_training(worker, stored, results=round_ % 3, on_poll=watch)
        results |= {t.number: t for t in caught.trials if t.state.is_finished() and counts(t)}
        worker.kill()
        worker.wait()
        killed[caught.trial.number] = time.monotonic()
        orphans |= {
            pid: (start, killed[caught.trial.number]) for pid, start in caught.children.items()
        }

    final = workers.start("kills", server, target)
    while final.poll() is None or orphans:
        watch(stored.trials())
        assert time.monotonic() - max(killed.values()) < 300, "the final worker never ended"
        time.sleep(0.1)
    assert final.returncode == 0, workers.output(final)[-2000:]

    trials = {t.number: t for t in stored.trials()}
    check_consistent(list(trials.values()), target)
    for number, seen in results.items():  # no result lost, none rewritten
        assert (trials[number].state, trials[number].values) == (seen.state, seen.values)
    for number in killed:
        dead = trials[number]
        assert dead.state.name == "FAIL" and kind(dead) == FailureKind.LOST, dead
        assert f"pid {owner_pid(dead)}" in dead.user_attrs[TrialAttr.FAILURE_REASON]
    assert not orphans
    reasons = Counter(
        "owner gone"
        if "is gone" in trials[n].user_attrs[TrialAttr.FAILURE_REASON]
        else "stale heartbeat"
        for n in killed
    )
    detect = sorted(failed_after.values())
    print(
        f"\nkill -9 x{len(killed)}: {len(results)} results seen before the kills, all kept; "
        f"{n_counted(list(trials.values()))}/{target} counted of {len(trials)} trials; "
        f"kill -> FAIL lost (the next worker's start-up and first sweep) median "
        f"{statistics.median(detect):.1f} s, max {detect[-1]:.1f} s, found by {dict(reasons)}; "
        f"orphaned trial workers gone after median {statistics.median(orphan_s):.2f} s, "
        f"max {max(orphan_s):.2f} s ({len(orphan_s)} of them)"
    )


@pytest.mark.slow
def test_a_silent_worker_is_failed_after_the_grace_and_a_dead_one_at_the_next_sweep(
    server: str, tmp_path: Path, workers: Workers
) -> None:
    """A runner alive but silent (SIGSTOP: a hung machine, a partition) cannot be told from
    its pid: only its stale heartbeat gives it away, after the grace, and when it wakes it
    cannot overwrite the FAIL. A runner that died on this host is known at the next sweep."""
    target, grace = 30, 3 * HEARTBEAT_S
    created = tuner(
        "run", str(write_shared_spec(tmp_path, "frozen")), "--storage", server, cwd=tmp_path
    )
    assert created.returncode == 0, created.stderr
    stored = Stored(server, "frozen")
    live = workers.start("frozen", server, target)
    hung = workers.start("frozen", server, target)
    # Once the live worker has a result it sweeps before each of its asks, about every second.
    frozen = catch_training(hung, stored, ready=lambda trials: results_of(live, trials) >= 1)
    silent_s = stored.heartbeat_age(frozen.trial)  # already, when it froze
    frozen_s = _failed_after(stored, frozen, live)
    os.kill(hung.pid, signal.SIGCONT)  # it wakes, finishes its trial and tries to store it
    killed = catch_training(hung, stored)
    hung.kill()
    hung.wait()
    killed_s = _failed_after(stored, killed, live)
    assert workers.finish(live) == 0, workers.output(live)[-2000:]

    trials = stored.trials()
    check_consistent(trials, target)
    silent, dead = _trial(stored, frozen.trial.number), _trial(stored, killed.trial.number)
    assert silent.state.name == "FAIL" and kind(silent) == FailureKind.LOST  # not overwritten
    assert "no heartbeat" in silent.user_attrs[TrialAttr.FAILURE_REASON]
    assert dead.state.name == "FAIL" and kind(dead) == FailureKind.LOST
    # Never within the grace of its last heartbeat.
    assert frozen_s >= grace - silent_s - 0.05
    how = "its pid is gone" if "is gone" in dead.user_attrs[TrialAttr.FAILURE_REASON] else "stale"
    print(
        f"\nsilent (frozen) worker: its trial FAIL lost {frozen_s:.1f} s after the freeze, "
        f"{frozen_s + silent_s:.1f} s after its last heartbeat (every {HEARTBEAT_S} s, grace "
        f"{grace} s); killed worker: {killed_s:.1f} s after "
        f"the kill ({how}), a live worker sweeping; {len(trials)} trials in all"
    )


def _failed_after(stored: Stored, caught: Caught, sweeper: subprocess.Popen[bytes]) -> float:
    """Seconds from `caught`'s freeze until its trial is stored as finished (by `sweeper`)."""
    while not _trial(stored, caught.trial.number).state.is_finished():
        assert sweeper.poll() is None, f"the sweeping worker exited with {sweeper.returncode}"
        assert time.monotonic() - caught.frozen_at < 120, "the trial was never failed"
        time.sleep(0.05)
    return time.monotonic() - caught.frozen_at


def _trial(stored: Stored, number: int) -> FrozenTrial:
    return next(t for t in stored.trials() if t.number == number)


@pytest.mark.slow
def test_a_worker_whose_database_stops_exits_with_one_line_and_a_rerun_resumes(
    tmp_path: Path, workers: Workers
) -> None:
    """The server stops (an admin's fast shutdown) while a worker trains: the worker ends
    with exit 1 and one masked line; once the server is back the same command resumes."""
    target, password = 8, "pw-6f1d"
    with postgres.running_server(password=password) as pg:
        spec = write_shared_spec(tmp_path, "outage")
        created = tuner("run", str(spec), "--storage", pg.url, cwd=tmp_path)
        assert created.returncode == 0, created.stderr
        stored = Stored(pg.url, "outage")
        worker = workers.start("outage", pg.url, target)
        caught = catch_training(worker, stored, results=2)
        pg.stop()
        woke = time.monotonic()
        os.kill(worker.pid, signal.SIGCONT)  # it finds the server gone
        assert workers.finish(worker, within_s=120) == 1, workers.output(worker)[-2000:]
        exit_s = time.monotonic() - woke
        out, err = workers.output(worker, "out"), workers.output(worker)
        lines = [line.strip() for line in re.split(r"[\r\n]", err) if line.strip()]
        errors = [line for line in lines if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith("error: storage: lost "), err
        assert "postgres:***@127.0.0.1" in errors[0]
        assert password not in out + err and "Traceback" not in err
        gone = time.monotonic() + 30
        while any(running(pid, start) for pid, start in caught.children.items()):
            assert time.monotonic() < gone, "the trial worker outlived its runner"
            time.sleep(0.1)

        pg.start()
        after_restart = {t.number: t for t in stored.trials()}
        assert after_restart[caught.trial.number].state is RUNNING  # nothing was told
        rerun = workers.start("outage", pg.url, target)
        assert workers.finish(rerun) == 0, workers.output(rerun)[-2000:]
        trials = {t.number: t for t in stored.trials()}

    check_consistent(list(trials.values()), target)
    for before in caught.trials:
        if before.state.is_finished():  # every trial stored before the stop is kept as it was
            after = trials[before.number]
            assert (after.state, after.values) == (before.state, before.values)
    dead = trials[caught.trial.number]
    assert dead.state.name == "FAIL" and kind(dead) == FailureKind.LOST
    kept = sum(t.state.is_finished() for t in caught.trials)
    print(
        f"\nstorage lost: worker exited 1 {exit_s:.1f} s after it found the server stopped; "
        f"{kept} trials stored before the stop all kept; trial {dead.number} failed as lost; "
        f"{n_counted(list(trials.values()))}/{target} counted after the resume"
    )
    print(f"  {errors[0]}")
