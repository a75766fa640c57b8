"""The workers of one run: each asks, supervises one trial at a time and tells.

The only place that calls Optuna's ask/tell and decides trial states. Several workers
(threads here, each with its own supervised worker process, or other processes and machines
on the same storage) share one study: before every ask each sweeps dead trials and counts the
trials with a result, so all stop together at the target.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import optuna
import torch

from tuner import liveness
from tuner.attrs import FailureKind, TrialAttr
from tuner.config import ConfigError, TrialConfig
from tuner.errors import StorageLost
from tuner.harness import TrialFailure
from tuner.interrupts import Interrupted, StopFlag
from tuner.judging import TrialJudge
from tuner.liveness import Heartbeat, Owner
from tuner.prepare import Prepared, policies
from tuner.results import TrialRecord, record_of
from tuner.space import sample_config, suggest_params
from tuner.storage import masked
from tuner.supervisor import Abandoned, Job, TrialProcess
from tuner.telling import tell_failure, tell_outcome


class Workers:
    """The workers of one run: each asks, supervises and tells until the study is done."""

    def __init__(
        self,
        prepared: Prepared,
        storage: optuna.storages.BaseStorage,
        stop: StopFlag,
        on_trial: Callable[[TrialRecord], None] | None,
        target: int,
    ) -> None:
        self.prepared = prepared
        self.storage = storage
        self.stop = stop
        self.on_trial = on_trial
        self.target = target
        self.ran = 0
        self.timed_out = False
        self.lost: BaseException | None = None
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._asking = threading.Lock()
        self._study: optuna.Study | None = None
        self._deadline: float | None = None
        self._rules, self._feasibility = policies(prepared)

    def start(self, study: optuna.Study, deadline: float | None) -> None:
        self._study, self._deadline = study, deadline

    @property
    def study(self) -> optuna.Study:
        assert self._study is not None, "start() first"
        return self._study

    def run(self, workers: int) -> None:
        """Run `workers` workers (threads, each supervising its own trial process)."""
        if workers == 1:
            self._work(0, workers)
        else:
            threads = [
                threading.Thread(target=self._work_or_record, args=(slot, workers), daemon=True)
                for slot in range(workers)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)  # returns to the main thread, where signals are handled
            if self.errors:
                raise self.errors[0]
        if self.lost is not None:
            raise self._storage_lost(self.lost)
        if self.stop.signum is not None:
            raise Interrupted(self.stop.signum)

    def _work_or_record(self, slot: int, workers: int) -> None:
        try:
            self._work(slot, workers)
        except BaseException as exc:  # handed to the main thread, which re-raises it
            self.errors.append(exc)
            self.stop.set()

    def _work(self, slot: int, workers: int) -> None:
        process = TrialProcess(**worker_resources(self.prepared, slot, workers))
        try:
            while not self.stop.is_set():
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    self.timed_out = True
                    return
                # One ask at a time in this process: on SQLite, which has no row locks, two
                # threads asking at once could both pop the queued baseline.
                with self._asking, self.storage_calls():
                    liveness.sweep(self.study, self.storage)
                    if liveness.n_counted(self.study.get_trials(deepcopy=False)) >= self.target:
                        return
                    trial = _ask(self.study)
                record = self._run_one(trial, process)
                if record is not None:
                    with self._lock:
                        self.ran += 1
                        if self.on_trial is not None:
                            self.on_trial(record)
        finally:
            process.close()

    def _run_one(self, trial: optuna.Trial, process: TrialProcess) -> TrialRecord | None:
        """Run one asked trial to its stored end; None when it did not run (a surplus) or
        when a sweep presumed this runner dead and stored the trial as lost meanwhile."""
        with self.storage_calls(), Heartbeat(self.storage, trial._trial_id, self._lose):
            try:
                return self._store_run(trial, process)
            except optuna.exceptions.UpdateFinishedTrialError:
                return None

    def _store_run(self, trial: optuna.Trial, process: TrialProcess) -> TrialRecord | None:
        spec = self.prepared.spec
        trial.set_user_attr(TrialAttr.OWNER, Owner.current().to_dict())
        if self._surplus(trial.number):
            tell_failure(self.study, trial, _surplus(self.target))
            return None
        seed = (spec.seed + trial.number) % 2**32
        trial.set_user_attr(TrialAttr.SEED, seed)
        trial.set_user_attr(TrialAttr.DEVICE, self.prepared.device_info.to_dict())
        try:
            config = self._config(trial)
        except ConfigError as exc:
            tell_failure(self.study, trial, TrialFailure(FailureKind.UNSUPPORTED, str(exc)))
            return self._record(trial)
        trial.set_user_attr(TrialAttr.CONFIG, config.to_dict())
        judge = TrialJudge(self.study, trial, config.to_dict(), self._rules)
        baseline = bool(trial.user_attrs.get(TrialAttr.BASELINE))
        early = None if baseline else judge.before()  # the baseline is every run's yardstick
        if early is not None:
            tell_failure(self.study, trial, early, spec.memory_budget_mb)
            return self._record(trial)
        judged = spec.pruning.enabled and not baseline
        job = Job(
            spec.objective,
            config,
            spec.budget,
            str(self.prepared.device),
            seed,
            spec.size,
            judged=judged,
        )
        try:
            outcome = process.run(
                job, should_stop=self.stop.is_set, judge=judge if judged else None
            )
        except Abandoned:
            if self.lost is None:
                reason = f"stopped by {self.stop.signal_name()}; a re-run resumes the study"
                tell_failure(self.study, trial, TrialFailure(FailureKind.INTERRUPTED, reason))
            return None
        tell_outcome(self.study, trial, outcome, self._feasibility)
        return self._record(trial)

    def _config(self, trial: optuna.Trial) -> TrialConfig:
        if trial.user_attrs.get(TrialAttr.BASELINE):
            config = self.prepared.workload.baseline
            suggest_params(trial, config, self.prepared.space)
            return config
        return sample_config(trial, self.prepared.space)

    def _surplus(self, number: int) -> bool:
        """Whether trials asked before this one already reach the target: two workers that
        checked the count at the same moment must not both run."""
        earlier = [t for t in self.study.get_trials(deepcopy=False) if t.number < number]
        return liveness.n_counted(earlier) >= self.target

    def _record(self, trial: optuna.Trial) -> TrialRecord:
        frozen = self.study.get_trials(deepcopy=False)
        return next(record_of(t) for t in frozen if t.number == trial.number)

    def _lose(self, exc: BaseException) -> None:
        """The storage stopped answering (seen by a heartbeat): stop every worker."""
        if self.lost is None:
            self.lost = exc
        self.stop.set()

    @contextmanager
    def storage_calls(self) -> Iterator[None]:
        """Storage errors in the block end the run as StorageLost (one line, exit 1)."""
        import sqlalchemy.exc

        try:
            yield
        except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError) as exc:
            self._lose(exc)
            raise self._storage_lost(exc) from None
        except OSError as exc:
            if self.prepared.spec.storage.startswith("journal:"):
                self._lose(exc)
                raise self._storage_lost(exc) from None
            raise

    def _storage_lost(self, exc: BaseException) -> StorageLost:
        url = self.prepared.spec.storage
        cause = exc.__cause__ or exc
        cause = getattr(cause, "orig", None) or cause  # the driver's words, not the SQL text
        detail = masked(" ".join(f"{type(cause).__name__}: {cause}".split()))[:200]
        return StorageLost(
            f"storage: lost {masked(url)} ({detail}); every finished trial is stored: run the "
            "same command again when the storage is back to resume"
        )


def _ask(study: optuna.Study) -> optuna.Trial:
    with warnings.catch_warnings():
        # ask/tell with heartbeats is what tuner does on purpose (optimize() cannot supervise
        # a trial in another process); Optuna warns about it on every ask.
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        return study.ask()


def _surplus(target: int) -> TrialFailure:
    return TrialFailure(
        FailureKind.SURPLUS,
        f"not run: the study reached n_trials={target} while this trial was being asked for",
    )


def worker_resources(prepared: Prepared, slot: int, workers: int) -> dict[str, Any]:
    """Threads and device of one local worker: the CPU's cores are split between workers;
    with several GPUs each worker takes one."""
    if prepared.device.type == "cuda":
        count = torch.cuda.device_count()
        env = {"CUDA_VISIBLE_DEVICES": str(slot % count)} if workers > 1 and count > 1 else {}
        return {"threads": prepared.spec.threads, "env": env}
    cores = os.cpu_count() or 1
    threads = prepared.spec.threads or cores
    return {"threads": max(1, min(threads, cores // workers)), "env": {}}
