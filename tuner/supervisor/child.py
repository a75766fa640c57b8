"""The worker process: imports torch once, then runs the jobs its supervisor sends.

Started by `TrialProcess` as ``python -m tuner.supervisor.child JOBS REPLIES PARENT THREADS``
(two pipe descriptors, the supervisor's pid, the torch thread count or 0). It is not a
daemonic multiprocessing child, so a trial may start DataLoader workers of its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection

import torch

from tuner.attrs import FailureKind
from tuner.config import CompileMode, ConfigError
from tuner.errors import UserError
from tuner.harness import Checkpoint, Judge, TrialFailure, run_trial
from tuner.harness.failures import classify
from tuner.supervisor.protocol import Finished, Job, Progress, Reached, Started, Verdict
from tuner.workload import Workload, load_workload

_PR_SET_PDEATHSIG = 1

#: Failures raised by the harness itself, before or between steps: the process is as sound
#: as before the trial. Anything else (user code raised, out of memory, a compile error)
#: may have left state behind, so the supervisor replaces the worker.
_CLEAN_KINDS = frozenset(
    {
        FailureKind.UNSUPPORTED,
        FailureKind.TOO_SLOW,
        FailureKind.UNMEASURABLE,
        FailureKind.DIVERGED,
    }
)


def main(argv: list[str]) -> int:
    jobs_fd, replies_fd, parent, threads = (int(arg) for arg in argv[1:5])
    _die_with(parent)
    os.dup2(2, 1)  # a print in user code must not reach the terminal under the progress bar
    if threads:
        torch.set_num_threads(threads)
    jobs = Connection(jobs_fd, writable=False)
    replies = Connection(replies_fd, readable=False)
    workloads: dict[str, Workload] = {}
    while True:
        try:
            job = jobs.recv()
        except EOFError:  # the supervisor closed the pipe: no more trials
            return 0
        replies.send(_run(job, workloads, jobs, replies))


def _run(
    job: Job, workloads: dict[str, Workload], jobs: Connection, replies: Connection
) -> Finished:
    """Run one job; every way it can end becomes a Finished message."""
    key = f"{job.objective}@{job.size}"
    if key not in workloads:
        try:
            workloads[key] = load_workload(job.objective, job.size)
            # Once, off the trial's clock: the first call pays the data's imports and any
            # cache the workload keeps (sklearn's loader for digits: 2.5 s).
            workloads[key].load_data()
        except UserError as exc:
            return _failed(FailureKind.ERROR, f"the worker could not load the workload: {exc}")
        except Exception as exc:
            failure = classify(exc, compiling=False)
            return _failed(failure.kind, f"the workload's load_data() failed: {failure.reason}")
    replies.send(Started())
    try:
        result = run_trial(
            workloads[key],
            job.config,
            job.budget,
            torch.device(job.device),
            job.seed,
            progress=lambda speed: replies.send(Progress(speed)),
            judge=_asking(replies, jobs) if job.judged else None,
        )
    except ConfigError as exc:  # a knob combination torch refuses: the config, not the worker
        return _failed(FailureKind.UNSUPPORTED, str(exc), reusable=True)
    except TrialFailure as failure:
        return _failed(failure.kind, failure.reason, reusable=failure.kind in _CLEAN_KINDS)
    except Exception as exc:
        classified = classify(exc, compiling=False)
        return _failed(classified.kind, classified.reason)
    except SystemExit as exc:  # sys.exit() in user code ends the trial, not the worker
        return _failed(FailureKind.ERROR, f"user code called sys.exit({exc.code!r})")
    finally:
        _release(job)
    return Finished(result=result, failure=None, reusable=True, rss_bytes=_rss_bytes())


def _asking(replies: Connection, jobs: Connection) -> Judge:
    """A judge that asks the supervisor, which holds the study, and waits for its verdict."""

    def judge(checkpoint: Checkpoint) -> str | None:
        replies.send(Reached(checkpoint))
        verdict: Verdict = jobs.recv()
        return verdict.stop

    return judge


def _failed(kind: FailureKind, reason: str, *, reusable: bool = False) -> Finished:
    return Finished(
        result=None, failure=(kind.value, reason), reusable=reusable, rss_bytes=_rss_bytes()
    )


def _release(job: Job) -> None:
    """Give back what the trial held, so the next trial starts from the same footing.

    After the collection, the survivors (torch's and the workload's ~400k long-lived objects)
    are frozen out of later collections: a full collection over them costs 0.16-0.4 s, most
    of what isolation would otherwise add to each trial. Frozen objects are never collected,
    so a compiled trial's graphs are dropped (dynamo reset) before the collection, not after.
    """
    if job.config.compile_mode is not CompileMode.OFF:
        torch._dynamo.reset()
    gc.collect()
    gc.freeze()
    if job.device.startswith("cuda"):
        torch.cuda.empty_cache()
    # glibc keeps freed arenas; returning them keeps the worker's RSS flat over trials.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


def _die_with(parent: int) -> None:
    """Exit when the supervisor dies, even by SIGKILL: no orphan keeps training.

    Linux delivers SIGKILL to this process when its parent exits (PR_SET_PDEATHSIG);
    elsewhere a thread watches the parent pid.
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        threading.Thread(target=_watch, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
