"""Running a study: create, resume or join it, run its workers, re-time its front.

Everything a spec names is resolved first (`tuner.prepare`), so a bad spec or workload never
leaves a half-written study. Each trial runs in a supervised worker process
(`tuner.supervisor`), asked for and told by `tuner.workers`; its outcome, success or
failure, goes to the storage with its reason, and the run goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from tuner import liveness
from tuner.attrs import StudyAttr
from tuner.interrupts import stop_requests
from tuner.prepare import Prepared, policies, prepare, prepare_worker
from tuner.remeasure import remeasure_front
from tuner.results import TrialRecord
from tuner.space import config_params
from tuner.storage import open_storage
from tuner.study_open import open_study
from tuner.supervisor import TrialProcess
from tuner.workers import Workers, worker_resources

__all__ = ["Prepared", "RunSummary", "open_prepared", "prepare", "prepare_worker", "run_study"]


@dataclass(frozen=True)
class RunSummary:
    study: str
    storage: str
    ran: int  # trials this run finished
    total: int  # trials of the study that count toward n_trials
    stopped_by_timeout: bool


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
        loop = Workers(prepared, storage, stop, on_trial, target=n_trials or spec.n_trials)
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
        StudyAttr.METRIC_FLOOR: policies(prepared)[1].metric_floor,
        StudyAttr.SPEED: prepared.spec.speed_objective.to_dict(),
        StudyAttr.DEVICE: prepared.device_info.to_dict(),
        **prepared.lr_attrs,
    }


def _remeasure(
    prepared: Prepared, study: optuna.Study, on_remeasure: Callable[[], None] | None
) -> None:
    if on_remeasure is not None:
        on_remeasure()
    process = TrialProcess(**worker_resources(prepared, 0, 1))
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
