"""The study loop: the only place that talks to Optuna's ask/tell and decides trial states.

Everything a spec names is resolved and validated before the storage is touched, so a bad spec
or workload never leaves a half-written study. Each trial runs in a supervised worker process
(`tuner.supervisor`); its outcome, success or failure, goes to the storage with its reason,
and the loop goes on. Several workers (threads here, each with its own worker process, or
other processes and machines on the same storage) share one study: before every ask each
sweeps dead trials and counts the trials with a result, so all stop together at the target.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import optuna
import torch

from tuner import liveness
from tuner.attrs import FailureKind, StudyAttr, TrialAttr
from tuner.config import ConfigError, TrialConfig
from tuner.errors import StorageLost
from tuner.hardware import DeviceInfo, describe_device, detect_capabilities, select_device
from tuner.harness import TrialFailure
from tuner.harness.probe import probe
from tuner.interrupts import Interrupted, StopFlag, stop_requests
from tuner.judging import Rules, TrialJudge
from tuner.liveness import Heartbeat, Owner
from tuner.lrfind import RangeTestResult, load_auto_space, resolve_space
from tuner.remeasure import remeasure_front
from tuner.results import TrialRecord, record_of
from tuner.space import (
    SearchSpace,
    config_params,
    restrict,
    sample_config,
    suggest_params,
)
from tuner.space.auto_lr import AutoSpace
from tuner.spec import StudySpec
from tuner.storage import masked, open_storage
from tuner.study_open import open_study, stored_spec
from tuner.supervisor import Abandoned, Job, TrialProcess
from tuner.telling import Feasibility, tell_failure, tell_outcome
from tuner.workload import Workload, load_workload


@dataclass(frozen=True)
class Prepared:
    """Everything resolved from a spec, ready to run; built before touching the storage.

    `joining` marks a worker that joins a study made elsewhere (`tuner worker`): it runs the
    study's stored spec and space and never creates the study.
    """

    spec: StudySpec
    workload: Workload
    space: SearchSpace
    dropped: tuple[dict[str, Any], ...]
    device: torch.device
    device_info: DeviceInfo
    joining: bool = False
    #: How ``lr = "auto"`` was resolved (`tuner.lrfind`): stored when the study is created.
    lr_attrs: Mapping[StudyAttr, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSummary:
    study: str
    storage: str
    ran: int  # trials this run finished
    total: int  # trials of the study that count toward n_trials
    stopped_by_timeout: bool


def prepare(spec: StudySpec, found: Sequence[RangeTestResult] = ()) -> Prepared:
    """Resolve workload, space, device and capabilities; raises UserError on any problem.

    An ``lr = "auto"`` in the space is resolved here (`tuner.lrfind.resolve_space`), from the
    study's stored range, a matching test in `found` or the storage, or a new range test.
    """
    return _prepared(spec, load_auto_space(spec.space), joining=False, found=found)


def prepare_worker(name: str, url: str) -> Prepared:
    """A worker for an existing study, from nothing but its name and storage URL: the spec
    and space travel inside the study. The space is restricted again to this machine."""
    from tuner.storage import load_study

    spec, space = stored_spec(load_study(name, url), url)
    return _prepared(spec, space, joining=True)


def _prepared(
    spec: StudySpec,
    space: SearchSpace | AutoSpace,
    *,
    joining: bool,
    found: Sequence[RangeTestResult] = (),
) -> Prepared:
    workload = load_workload(spec.objective, spec.size)
    device = select_device(spec.device)
    if device.type == "cpu" and spec.threads is not None:
        torch.set_num_threads(spec.threads)
    traits = probe(workload)
    lr_attrs: Mapping[StudyAttr, Any] = {}
    if isinstance(space, AutoSpace):  # the spec's file: an "auto" lr needs workload and device
        resolved = resolve_space(spec, space, workload, device, found)
        space, lr_attrs = resolved.space, resolved.attrs
    space, dropped = restrict(space, detect_capabilities(device), traits)
    return Prepared(
        spec=spec,
        workload=workload,
        space=space,
        dropped=tuple(d.to_dict() for d in dropped),
        device=device,
        device_info=describe_device(device),
        joining=joining,
        lr_attrs=lr_attrs,
    )


def run_study(
    prepared: Prepared,
    *,
    n_trials: int | None = None,
    timeout_s: float | None = None,
    workers: int = 1,
    on_start: Callable[[optuna.Study, int], None] | None = None,
    on_trial: Callable[[TrialRecord], None] | None = None,
    on_remeasure: Callable[[], None] | None = None,
) -> RunSummary:
    """Create, resume or join the spec's study and run trials until it has `n_trials` (the
    spec's by default) that count, or until the timeout.

    `n_trials` is the study's total target, shared by every process working on it: re-running
    an interrupted spec finishes it, re-running a finished one does nothing.

    Raises:
        Interrupted: SIGINT, SIGTERM or SIGHUP; the running trials were stored as FAIL
            (interrupted) first.
        StorageLost: the storage stopped answering; the running trials stay RUNNING until a
            later run's sweep fails them.
    """
    spec = prepared.spec
    with stop_requests() as stop:
        heartbeat = (liveness.heartbeat_s(), liveness.grace_s())
        storage = open_storage(spec.storage, create=True, heartbeat=heartbeat)
        loop = _Loop(prepared, storage, stop, on_trial, target=n_trials or spec.n_trials)
        with loop.storage_calls():
            study = open_prepared(prepared, storage)
            liveness.sweep(study, storage)
            remaining = max(0, loop.target - liveness.n_counted(study.get_trials(deepcopy=False)))
            if on_start is not None:
                on_start(study, remaining)
        timeout = timeout_s if timeout_s is not None else spec.timeout_s
        loop.start(study, None if timeout is None else time.monotonic() + timeout)
        loop.run(workers)
        with loop.storage_calls():
            total = liveness.n_counted(study.get_trials(deepcopy=False))
            # A time to target comes from the learning curve, which a short re-timing does
            # not reproduce: only throughput studies re-time their front.
            remeasure = spec.remeasure_rounds > 0 and not spec.speed_objective.to_target
            if total >= loop.target and remeasure:
                _remeasure(prepared, study, on_remeasure)
    return RunSummary(spec.name, spec.storage, loop.ran, total, loop.timed_out)


def open_prepared(prepared: Prepared, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Create, resume or join the prepared study (`open_study`): `run_study`'s own path, for
    commands that store in a study before any trial runs (`tuner lr-find`)."""
    return open_study(
        prepared.spec,
        storage,
        _study_attrs(prepared),
        config_params(prepared.workload.baseline, prepared.space),
        joining=prepared.joining,
    )


def _study_attrs(prepared: Prepared) -> dict[StudyAttr, Any]:
    metric = prepared.workload.metric
    return {
        StudyAttr.SPEC: prepared.spec.to_dict(),
        StudyAttr.SPACE: prepared.space.to_dict(),
        StudyAttr.DROPPED: list(prepared.dropped),
        StudyAttr.OBJECTIVE: prepared.spec.objective,
        StudyAttr.METRIC_NAME: metric.name,
        StudyAttr.METRIC_DIRECTION: metric.direction.value,
        StudyAttr.METRIC_NOISE: metric.noise,
        StudyAttr.METRIC_FLOOR: _policies(prepared)[1].metric_floor,
        StudyAttr.SPEED: prepared.spec.speed_objective.to_dict(),
        StudyAttr.DEVICE: prepared.device_info.to_dict(),
        **prepared.lr_attrs,
    }


class _Loop:
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
        self._rules, self._feasibility = _policies(prepared)

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
        process = TrialProcess(**_worker_resources(self.prepared, slot, workers))
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
        """Run one asked trial to its stored end; None when it did not run (a surplus)."""
        spec = self.prepared.spec
        with self.storage_calls(), Heartbeat(self.storage, trial._trial_id, self._lose):
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
            try:
                tell_outcome(self.study, trial, outcome, self._feasibility)
            except optuna.exceptions.UpdateFinishedTrialError:
                return None  # a sweep presumed this runner dead and stored the trial as lost
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


def _remeasure(
    prepared: Prepared, study: optuna.Study, on_remeasure: Callable[[], None] | None
) -> None:
    if on_remeasure is not None:
        on_remeasure()
    process = TrialProcess(**_worker_resources(prepared, 0, 1))
    try:
        remeasure_front(
            study,
            prepared.spec,
            str(prepared.device),
            process,
            prepared.workload.metric.direction,
        )
    finally:
        process.close()


def _policies(prepared: Prepared) -> tuple[Rules, Feasibility]:
    """How trials of this study are stopped early, and what makes a result feasible."""
    spec, metric = prepared.spec, prepared.workload.metric
    floor = spec.metric_floor if spec.metric_floor is not None else metric.chance
    rules = Rules(
        spec.pruning,
        spec.budget.evaluations,
        metric.direction,
        metric.noise,
        spec.memory_budget_mb,
        floor,
        speed_dominance=not spec.speed_objective.to_target,
    )
    feasibility = Feasibility(
        spec.memory_budget_mb,
        floor,
        metric.direction,
        metric.noise,
        spec.budget.evaluations,
        spec.speed_objective,
    )
    return rules, feasibility


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


def _worker_resources(prepared: Prepared, slot: int, workers: int) -> dict[str, Any]:
    """Threads and device of one local worker: the CPU's cores are split between workers;
    with several GPUs each worker takes one."""
    if prepared.device.type == "cuda":
        count = torch.cuda.device_count()
        env = {"CUDA_VISIBLE_DEVICES": str(slot % count)} if workers > 1 and count > 1 else {}
        return {"threads": prepared.spec.threads, "env": env}
    cores = os.cpu_count() or 1
    threads = prepared.spec.threads or cores
    return {"threads": max(1, min(threads, cores // workers)), "env": {}}
