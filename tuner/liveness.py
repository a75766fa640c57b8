"""Which running trials still have a live runner, and failing those that do not.

A runner killed by SIGKILL, a power cut or a lost machine cannot store its own trial's end.
Every other runner sweeps before each ask, so a dead trial ends as FAIL `lost` and never
counts toward n_trials:
- RDB storages (SQLite, PostgreSQL, MySQL) carry Optuna's heartbeat: the runner records one
  every `heartbeat_s()` while its trial runs (Optuna's `optimize()` does this; ask/tell
  callers must do it themselves), and a trial silent for the grace period is stale.
- Every trial also names its owner (host, pid, process start time). On the same host an
  owner that is gone is known at once, on any storage: this is the journal storage's only
  check, since it has no heartbeat.
"""

from __future__ import annotations

import datetime
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from tuner.attrs import DEAD_KINDS, FailureKind, TrialAttr

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


def heartbeat_s() -> int:
    """Seconds between heartbeats; TUNER_HEARTBEAT_S sets it (Optuna takes whole seconds).

    A dead trial is failed `grace_s()` after its last heartbeat: lower it for faster
    detection on a busy cluster, raise it where the database is slow to answer.
    """
    value = os.environ.get("TUNER_HEARTBEAT_S", "")
    return int(value) if value.isdigit() and int(value) > 0 else 5


def grace_s() -> int:
    """Silence after which a trial's runner is presumed dead."""
    return 3 * heartbeat_s()


@dataclass(frozen=True)
class Owner:
    """The process that asked for a trial. `start` tells a live pid from a reused one;
    `pids` names the pid numbering it lives in (boot and pid namespace), since containers and
    cloned machines share host names but not pids."""

    host: str
    pid: int
    start: str
    pids: str = ""

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, _start_time(pid), _pid_space())

    @classmethod
    def of(cls, trial: FrozenTrial) -> Owner | None:
        data: Any = trial.user_attrs.get(TrialAttr.OWNER)
        try:
            return cls(
                str(data["host"]), int(data["pid"]), str(data["start"]), str(data.get("pids"))
            )
        except (TypeError, KeyError, ValueError, AttributeError):
            return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def is_gone(self) -> bool:
        """True only when this process can tell: its pids are numbered the same way, and the
        pid is not running or is another process."""
        if (self.host, self.pids) != (socket.gethostname(), _pid_space()) or not self.pids:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # alive, someone else's
        return _start_time(self.pid) != self.start


def _pid_space() -> str:
    """This boot's id and this pid namespace's inode (Linux), or "" where unknown."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            return f"{boot.read().strip()}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), or "" where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


class Heartbeat:
    """Records the trial's heartbeat in a thread while the block runs (RDB storages only).

    A storage error is handed to `on_error` rather than raised in the thread, so the runner
    can stop its trial and exit with one clear line.
    """

    def __init__(
        self, storage: Any, trial_id: int, on_error: Callable[[BaseException], None]
    ) -> None:
        self._storage = storage
        self._trial_id = trial_id
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self) -> Heartbeat:
        if _has_heartbeat(self._storage):
            self._storage.record_heartbeat(self._trial_id)  # at once: a trial is never silent
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _beat(self) -> None:
        interval = self._storage.get_heartbeat_interval()
        while not self._stop.wait(interval):
            try:
                self._storage.record_heartbeat(self._trial_id)
            except Exception as exc:  # the storage is gone: the runner decides what to do
                self._on_error(exc)
                return


def _has_heartbeat(storage: Any) -> bool:
    from optuna.storages._heartbeat import BaseHeartbeat

    return isinstance(storage, BaseHeartbeat) and storage.get_heartbeat_interval() is not None


def sweep(study: optuna.Study, storage: Any) -> list[int]:
    """Fail every running trial of `study` whose runner is dead; returns their numbers."""
    from optuna.trial import TrialState

    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return []
    stale = set(storage._get_stale_trial_ids(study._study_id)) if _has_heartbeat(storage) else set()
    failed = []
    for trial in running:
        reason = _why_dead(trial, stale)
        if reason is not None and _fail(storage, trial._trial_id, reason):
            failed.append(trial.number)
    return failed


def _why_dead(trial: FrozenTrial, stale: set[int]) -> str | None:
    owner = Owner.of(trial)
    who = f"its runner (pid {owner.pid} on {owner.host})" if owner else "its runner"
    if trial._trial_id in stale:
        return f"{who} sent no heartbeat for {grace_s()} s: it was killed or lost its machine"
    if owner is not None and owner.is_gone():
        return f"{who} is gone: it was killed before it could store the trial"
    if owner is None and trial.datetime_start is not None:
        age = datetime.datetime.now() - trial.datetime_start
        if age.total_seconds() > grace_s():
            return f"{who} died before recording itself on the trial"
    return None


def _fail(storage: Any, trial_id: int, reason: str) -> bool:
    """FAIL the trial as lost; False when another runner got there first."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        storage.set_trial_user_attr(trial_id, TrialAttr.FAILURE_KIND, FailureKind.LOST.value)
        storage.set_trial_user_attr(trial_id, TrialAttr.FAILURE_REASON, reason)
        return bool(storage.set_trial_state_values(trial_id, TrialState.FAIL))
    except UpdateFinishedTrialError:
        return False


def counts(trial: FrozenTrial) -> bool:
    """Whether a trial counts toward n_trials: it is running or it ended with a result
    (a failure of the configuration is a result; a dead runner's trial is not)."""
    from optuna.trial import TrialState

    if trial.state is TrialState.RUNNING:
        return True
    if trial.state is TrialState.WAITING:
        return False
    if trial.state is TrialState.FAIL:
        kind = trial.user_attrs.get(TrialAttr.FAILURE_KIND)
        return kind is not None and kind not in DEAD_KINDS
    return True


def n_counted(trials: Sequence[FrozenTrial]) -> int:
    return sum(counts(trial) for trial in trials)
