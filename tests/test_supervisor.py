"""Trials in a supervised worker process: reuse, hard time limit, crashes, parent death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from tests.toy_workload import WORKLOAD
from tuner.attrs import FailureKind
from tuner.budget import Budget
from tuner.config import DEFAULT_BASELINE
from tuner.harness import run_trial
from tuner.supervisor import Abandoned, Job, TrialProcess

HERE = Path(__file__).parent
TOY = f"{HERE / 'toy_workload.py'}:WORKLOAD"
BUDGET = Budget(steps=12, evaluations=2)


def fault(name: str) -> str:
    return f"{HERE / 'fault_workload.py'}:{name}"


def job(objective: str = TOY, seed: int = 0, budget: Budget = BUDGET) -> Job:
    return Job(objective, DEFAULT_BASELINE, budget, "cpu", seed)


@pytest.fixture
def worker() -> object:
    process = TrialProcess(threads=1)
    yield process
    process.close()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has exited, just not been reaped
        return stat.read().rsplit(")", 1)[1].split()[0] == "Z"


def _wait_gone(pid: int, within_s: float = 30.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.1)
    return False


def test_one_warm_worker_runs_many_trials_with_the_in_process_result(
    worker: TrialProcess,
) -> None:
    outcomes = [worker.run(job(seed=seed)) for seed in (0, 1, 0)]
    assert worker.started == 1  # torch and the workload were imported once
    assert [o.failure for o in outcomes] == [None, None, None]
    metrics = [o.result.metric for o in outcomes if o.result is not None]
    # Same seed, same metric, whether in this process or in the worker.
    in_process = run_trial(WORKLOAD, DEFAULT_BASELINE, BUDGET, torch.device("cpu"), 0)
    assert metrics[0] == metrics[2] == in_process.metric
    assert all(o.rss_bytes and o.rss_bytes > 100 * 2**20 for o in outcomes)  # torch is in it


def test_a_hung_trial_is_killed_at_its_time_limit_and_the_next_gets_a_fresh_worker(
    worker: TrialProcess,
) -> None:
    hung_budget = Budget(steps=200, evaluations=1, time_limit_s=3)  # projects well within
    started = time.monotonic()
    outcome = worker.run(job(fault("HANG"), budget=hung_budget))
    elapsed = time.monotonic() - started
    print(f"hang to kill: {elapsed:.1f} s after the job was sent (time_limit_s=3, grace 2 s)")
    assert outcome.failure is not None and outcome.failure.kind is FailureKind.TOO_SLOW
    assert "killed" in outcome.failure.reason  # cut by the supervisor, not waited out (600 s)
    assert "budget.time_limit_s=3" in outcome.failure.reason
    assert "samples/s in" in outcome.failure.reason  # the speed it had reached
    after = worker.run(job())
    assert after.failure is None
    assert worker.started == 2


@pytest.mark.parametrize(
    ("name", "death", "stderr"),
    [
        ("EXIT", "exited with code 3", "about to leave"),
        ("SEGFAULT", "killed by SIGSEGV (a segmentation fault in native code)", "address 0"),
    ],
)
def test_a_worker_that_dies_is_a_crash_with_its_exit_and_last_stderr(
    worker: TrialProcess, name: str, death: str, stderr: str
) -> None:
    outcome = worker.run(job(fault(name)))
    assert outcome.failure is not None and outcome.failure.kind is FailureKind.CRASHED
    assert death in outcome.failure.reason
    assert stderr in outcome.failure.reason
    assert any(stderr in line for line in outcome.stderr_tail)
    assert worker.run(job()).failure is None  # the study goes on, on a new worker
    assert worker.started == 2


def test_sys_exit_in_user_code_fails_the_trial_and_replaces_the_worker(
    worker: TrialProcess,
) -> None:
    outcome = worker.run(job(fault("SYS_EXIT")))
    assert outcome.failure is not None and outcome.failure.kind is FailureKind.ERROR
    assert "sys.exit(4)" in outcome.failure.reason
    first = worker.pid
    assert first is None  # not trusted after user code tried to exit
    assert worker.run(job()).failure is None


def test_a_trial_may_start_dataloader_worker_processes(worker: TrialProcess) -> None:
    outcome = worker.run(job(fault("LOADER")))
    assert outcome.failure is None, outcome.failure


def test_a_stop_request_kills_the_worker_and_its_process_group(worker: TrialProcess) -> None:
    worker.run(job())
    pid = worker.pid
    assert pid is not None
    asked = time.monotonic()
    with pytest.raises(Abandoned):
        worker.run(job(fault("HANG")), should_stop=lambda: time.monotonic() - asked > 2)
    assert _gone(pid) and worker.pid is None


def test_the_worker_dies_with_its_parent_even_by_sigkill(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from tuner.budget import Budget
        from tuner.config import DEFAULT_BASELINE
        from tuner.supervisor import Job, TrialProcess
        worker = TrialProcess(threads=1)
        worker.run(Job({TOY!r}, DEFAULT_BASELINE, Budget(steps=12), "cpu", 0))
        print(worker.pid, flush=True)
        worker.run(Job({fault("HANG")!r}, DEFAULT_BASELINE, Budget(steps=10_000), "cpu", 0))
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=HERE.parent
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    time.sleep(1.0)  # the worker is inside the hanging trial now
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert _wait_gone(child), "the worker outlived its supervisor"
