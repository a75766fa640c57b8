"""The supervisor's side: start a warm worker, hand it a job, watch it with a deadline.

The worker runs in its own session (process group), so a Ctrl-C in the terminal reaches
only the runner, which decides what to store, and a kill takes the worker's DataLoader
processes with it. A hung trial is killed at budget.time_limit_s plus a grace; a worker that
dies is a stored failure with its exit code or signal and the last lines of its stderr.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import IO

from tuner.attrs import FailureKind
from tuner.harness import Judge, TrialFailure, TrialResult
from tuner.supervisor.protocol import Finished, Job, Progress, Reached, Started, Verdict

#: How often the wait loop looks at the stop request and the clock.
_POLL_S = 0.05
#: Importing the workload in a fresh worker may take a while; a hang there is still a hang.
_START_LIMIT_S = 300.0
#: Lines of the worker's stderr kept for a crash report.
_TAIL_LINES = 20
#: Trials a worker runs before it is replaced. torch.compile leaves ~0.25 MB per compiled
#: trial that no reset frees (dynamo guard finalizers, inductor's code cache); a new worker
#: every 100 trials bounds that at a start-up cost of ~4 s per 100 trials.
_TRIALS_PER_WORKER = 100

_SIGNAL_CAUSES = {
    signal.SIGKILL: "the kernel's out-of-memory killer, or another process",
    signal.SIGSEGV: "a segmentation fault in native code",
    signal.SIGABRT: "an abort in native code",
    signal.SIGBUS: "a bus error in native code",
    signal.SIGFPE: "an arithmetic fault in native code",
}


class Abandoned(Exception):
    """The caller asked to stop: the worker was killed and the trial has no outcome."""


@dataclass(frozen=True)
class Outcome:
    """A trial's result, or why there is none; `stderr_tail` is kept when the worker died."""

    result: TrialResult | None
    failure: TrialFailure | None
    stderr_tail: tuple[str, ...] = ()
    rss_bytes: int | None = None


def grace_s(limit_s: float) -> float:
    """Time a trial may run past budget.time_limit_s before it is killed: the harness stops
    a slow trial itself at the limit, and its last window or evaluation needs a moment."""
    return max(2.0, 0.05 * limit_s)


class TrialProcess:
    """A warm worker process that runs trials one at a time.

    Example:
        >>> worker = TrialProcess(threads=1)
        >>> outcome = worker.run(job)        # doctest: +SKIP
        >>> worker.close()

    Args:
        threads: torch threads in the worker (CPU); None leaves torch's default.
        env: Extra environment for the worker (CUDA_VISIBLE_DEVICES for one GPU each).
    """

    def __init__(self, *, threads: int | None = None, env: Mapping[str, str] | None = None):
        self._threads = threads
        self._env = dict(env or {})
        self._child: _Child | None = None
        self.started = 0  # workers started so far, for tests and benchmarks

    @property
    def pid(self) -> int | None:
        """The warm worker's process id, None when none is running."""
        return self._child.process.pid if self._child is not None else None

    def run(
        self,
        job: Job,
        should_stop: Callable[[], bool] = lambda: False,
        judge: Judge | None = None,
    ) -> Outcome:
        """Run `job` in the worker, starting one if needed. A judged job's checkpoints go to
        `judge`, whose answer goes back to the trial.

        Raises:
            Abandoned: `should_stop` turned true; the worker was killed.
        """
        child = self._child or self._start()
        try:
            child.jobs.send(job)
        except OSError:  # it died between trials
            return self._crashed(child)
        child.busy = True
        outcome = self._wait(child, job.budget.time_limit_s, should_stop, judge)
        child.busy = False
        return outcome

    def close(self) -> None:
        """Let an idle worker exit on its own (end of its job pipe); kill a busy one (an
        exception interrupted the wait for its trial) or one that lingers."""
        child, self._child = self._child, None
        if child is None:
            return
        if not child.busy:
            child.jobs.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=5)
        child.kill()

    def _start(self) -> _Child:
        self._child = _Child.spawn(self._threads, self._env)
        self.started += 1
        return self._child

    def _wait(
        self,
        child: _Child,
        limit_s: float | None,
        should_stop: Callable[[], bool],
        judge: Judge | None,
    ) -> Outcome:
        sent = time.monotonic()
        started: float | None = None
        speed = ""
        while True:
            if should_stop():
                self._discard(child)
                raise Abandoned
            now = time.monotonic()
            if started is None and now - sent > _START_LIMIT_S:
                self._discard(child)
                return Outcome(None, _failure(FailureKind.ERROR, _start_hang()), child.tail())
            if (
                started is not None
                and limit_s is not None
                and now - started > limit_s + grace_s(limit_s)
            ):
                self._discard(child)
                return Outcome(None, _failure(FailureKind.TOO_SLOW, _hang(limit_s, speed)))
            if child.replies.poll(_POLL_S):
                try:
                    message = child.replies.recv()
                except (EOFError, OSError):
                    return self._crashed(child)
                if isinstance(message, Started):
                    started = time.monotonic()
                elif isinstance(message, Progress):
                    speed = message.speed
                elif isinstance(message, Reached):
                    stop = judge(message.checkpoint) if judge is not None else None
                    try:
                        child.jobs.send(Verdict(stop))
                    except OSError:
                        return self._crashed(child)
                elif isinstance(message, Finished):
                    return self._finished(child, message)
            elif child.process.poll() is not None and not child.replies.poll(0):
                return self._crashed(child)

    def _finished(self, child: _Child, message: Finished) -> Outcome:
        child.trials += 1
        if not message.reusable or child.trials >= _TRIALS_PER_WORKER:
            self._discard(child)
        failure = None
        if message.failure is not None:
            kind, reason = message.failure
            failure = _failure(FailureKind(kind), reason)
        return Outcome(message.result, failure, rss_bytes=message.rss_bytes)

    def _crashed(self, child: _Child) -> Outcome:
        self._discard(child)
        tail = child.tail()
        reason = _death(child.process.returncode)
        if tail:
            shown = " | ".join(tail[-3:])
            reason += f"; its last stderr: {shown if len(shown) <= 200 else '...' + shown[-197:]}"
        return Outcome(None, _failure(FailureKind.CRASHED, reason), tail)

    def _discard(self, child: _Child) -> None:
        """Kill the worker: the next trial starts a fresh one."""
        child.kill()
        if self._child is child:
            self._child = None


@dataclass
class _Child:
    process: subprocess.Popen[bytes]
    jobs: Connection
    replies: Connection
    lines: collections.deque[str]
    reader: threading.Thread
    busy: bool = False  # a job was sent and its Finished not yet read
    trials: int = 0  # trials finished in this worker

    @classmethod
    def spawn(cls, threads: int | None, env: Mapping[str, str]) -> _Child:
        jobs_read, jobs_write = os.pipe()
        replies_read, replies_write = os.pipe()
        environment = {
            **os.environ,
            **env,
            # The worker imports what this process can: the same tuner, the same workload.
            "PYTHONPATH": os.pathsep.join(path for path in sys.path if path),
        }
        if threads:
            environment["OMP_NUM_THREADS"] = str(threads)
        args = [str(fd) for fd in (jobs_read, replies_write, os.getpid(), threads or 0)]
        process = subprocess.Popen(
            [sys.executable, "-m", "tuner.supervisor.child", *args],
            pass_fds=(jobs_read, replies_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=environment,
        )
        os.close(jobs_read)
        os.close(replies_write)
        lines: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        assert process.stderr is not None  # stderr=PIPE
        reader = threading.Thread(target=_collect, args=(process.stderr, lines), daemon=True)
        reader.start()
        return cls(
            process,
            Connection(jobs_write, readable=False),
            Connection(replies_read, writable=False),
            lines,
            reader,
        )

    def kill(self) -> None:
        """SIGKILL the worker's whole process group (its DataLoader workers too)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.jobs.close()
        self.replies.close()

    def tail(self) -> tuple[str, ...]:
        self.reader.join(timeout=1.0)  # the last lines arrive as the pipe drains
        return tuple(self.lines)


def _collect(stream: IO[bytes], lines: collections.deque[str]) -> None:
    for raw in stream:
        line = raw.decode("utf-8", errors="replace").rstrip()
        if line:
            lines.append(line)


def _failure(kind: FailureKind, reason: str) -> TrialFailure:
    return TrialFailure(kind, reason)


def _death(returncode: int) -> str:
    if returncode >= 0:
        return f"the worker process exited with code {returncode} during the trial"
    try:
        sig = signal.Signals(-returncode)
    except ValueError:
        return f"the worker process was killed by signal {-returncode}"
    cause = _SIGNAL_CAUSES.get(sig)
    return f"the worker process was killed by {sig.name}" + (f" ({cause})" if cause else "")


def _hang(limit_s: float, speed: str) -> str:
    reached = (
        f"; it had reached {speed}"
        if speed
        else "; it had not finished two warm-up steps, so no speed was measured"
    )
    return (
        f"killed: still running {limit_s + grace_s(limit_s):.1f} s after it started, past "
        f"budget.time_limit_s={limit_s:g} plus {grace_s(limit_s):.1f} s grace{reached}"
    )


def _start_hang() -> str:
    return (
        f"the worker did not start the trial within {_START_LIMIT_S:.0f} s "
        "(importing torch and the workload); check the workload's import for a hang"
    )
