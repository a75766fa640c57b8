"""The study loop: the only place that talks to Optuna's ask/tell and decides trial states.

Everything a spec names is resolved and validated before the storage is touched, so a bad spec
or workload never leaves a half-written study. Each trial's outcome, success or failure, goes
to the storage with its reason; the loop goes on.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

import tuner
from tuner.attrs import FailureKind, StudyAttr, TrialAttr
from tuner.config import ConfigError
from tuner.errors import UserError
from tuner.hardware import DeviceInfo, describe_device, detect_capabilities, select_device
from tuner.harness import TrialFailure, TrialResult, run_trial
from tuner.harness.failures import classify
from tuner.results import TrialRecord, record_of
from tuner.space import (
    SearchSpace,
    config_params,
    load_space,
    restrict,
    sample_config,
    suggest_params,
)
from tuner.spec import SamplerName, StudySpec
from tuner.storage import masked, open_storage
from tuner.workload import Workload, load_workload

_SAMPLERS: dict[SamplerName, Callable[[int, int], optuna.samplers.BaseSampler]] = {
    # Multivariate, grouped TPE models the conditional optimizer/schedule branches jointly.
    SamplerName.TPE: lambda seed, startup: optuna.samplers.TPESampler(
        multivariate=True, group=True, n_startup_trials=startup, seed=seed
    ),
    # One generation per start-up batch: the default population of 50 outlasts most studies.
    SamplerName.NSGA2: lambda seed, startup: optuna.samplers.NSGAIISampler(
        population_size=max(startup, 4), seed=seed
    ),
    SamplerName.RANDOM: lambda seed, _: optuna.samplers.RandomSampler(seed=seed),
}

#: A trial ending with one of these kinds is PRUNED (the combination cannot run here); any
#: other failure is FAIL.
_PRUNED_KINDS = frozenset({FailureKind.UNSUPPORTED, FailureKind.TOO_SLOW})


@dataclass(frozen=True)
class Prepared:
    """Everything resolved from a spec, ready to run; built before touching the storage."""

    spec: StudySpec
    workload: Workload
    space: SearchSpace
    dropped: tuple[dict[str, Any], ...]
    device: torch.device
    device_info: DeviceInfo


@dataclass(frozen=True)
class RunSummary:
    study: str
    storage: str
    ran: int
    total: int
    stopped_by_timeout: bool


def prepare(spec: StudySpec) -> Prepared:
    """Resolve workload, space, device and capabilities; raises UserError on any problem."""
    workload = load_workload(spec.objective)
    space = load_space(spec.space)
    device = select_device(spec.device)
    if device.type == "cpu" and spec.threads is not None:
        torch.set_num_threads(spec.threads)
    space, dropped = restrict(space, detect_capabilities(device))
    return Prepared(
        spec=spec,
        workload=workload,
        space=space,
        dropped=tuple(d.to_dict() for d in dropped),
        device=device,
        device_info=describe_device(device),
    )


def run_study(
    prepared: Prepared,
    *,
    n_trials: int | None = None,
    timeout_s: float | None = None,
    on_start: Callable[[optuna.Study, int], None] | None = None,
    on_trial: Callable[[TrialRecord], None] | None = None,
) -> RunSummary:
    """Create or resume the spec's study and run trials until the target count or timeout.

    `n_trials` (default: the spec's) is the study's total target, so re-running an
    interrupted spec finishes it and re-running a finished one does nothing.
    """
    spec = prepared.spec
    study = _open_study(prepared)
    target = n_trials if n_trials is not None else spec.n_trials
    timeout = timeout_s if timeout_s is not None else spec.timeout_s
    remaining = max(0, target - _n_started(study))
    if on_start is not None:
        on_start(study, remaining)
    deadline = None if timeout is None else time.monotonic() + timeout
    ran = 0
    for _ in range(remaining):
        if deadline is not None and time.monotonic() >= deadline:
            break
        record = _run_one(study, prepared)
        ran += 1
        if on_trial is not None:
            on_trial(record)
    return RunSummary(
        study=spec.name,
        storage=spec.storage,
        ran=ran,
        total=_n_started(study),
        stopped_by_timeout=ran < remaining,
    )


def _n_started(study: optuna.Study) -> int:
    """Trials run or running; the queued baseline is not one until a run picks it up."""
    return len(study.get_trials(deepcopy=False, states=_STARTED))


_STARTED = tuple(state for state in TrialState if state is not TrialState.WAITING)


def _open_study(prepared: Prepared) -> optuna.Study:
    spec = prepared.spec
    storage = open_storage(spec.storage, create=True)
    try:
        existing = optuna.load_study(study_name=spec.name, storage=storage)
    except KeyError:
        existing = None
    n_before = len(existing.get_trials(deepcopy=False)) if existing is not None else 0
    # Offset the seed by the trials already run, so a resumed study samples new points
    # instead of replaying its first ones.
    sampler = _SAMPLERS[spec.sampler](spec.seed + n_before, spec.n_startup_trials)
    if existing is not None:
        _check_same_experiment(existing, prepared)
        return optuna.load_study(study_name=spec.name, storage=storage, sampler=sampler)
    metric = prepared.workload.metric
    study = optuna.create_study(
        study_name=spec.name,
        storage=storage,
        sampler=sampler,
        directions=[metric.direction.value, "maximize"],
    )
    study.set_metric_names([metric.name, "throughput"])
    attrs = {
        StudyAttr.SPEC: spec.to_dict(),
        StudyAttr.SPACE: prepared.space.to_dict(),
        StudyAttr.DROPPED: list(prepared.dropped),
        StudyAttr.OBJECTIVE: spec.objective,
        StudyAttr.METRIC_NAME: metric.name,
        StudyAttr.METRIC_DIRECTION: metric.direction.value,
        StudyAttr.METRIC_NOISE: metric.noise,
        StudyAttr.DEVICE: prepared.device_info.to_dict(),
        StudyAttr.TUNER_VERSION: tuner.__version__,
    }
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    # The baseline runs first and through the queue, so every sampler sees it as a trial.
    baseline = prepared.workload.baseline
    study.enqueue_trial(
        config_params(baseline, prepared.space), user_attrs={TrialAttr.BASELINE: True}
    )
    return study


def _check_same_experiment(study: optuna.Study, prepared: Prepared) -> None:
    """Refuse to mix trials of two different experiments under one study name."""
    stored_spec = study.user_attrs.get(StudyAttr.SPEC)
    if stored_spec is None:
        raise UserError(
            f"study.name: {prepared.spec.name!r} exists in {masked(prepared.spec.storage)} but "
            "was not created by tuner; choose another name"
        )
    current = prepared.spec.identity()
    changed = [key for key in current if current[key] != stored_spec.get(key)]
    if study.user_attrs.get(StudyAttr.SPACE) != prepared.space.to_dict():
        changed.append("space contents")
    if changed:
        raise UserError(
            f"study.name: {prepared.spec.name!r} already exists with a different "
            f"{', '.join(changed)}; rename the study to start a new one"
        )


def _run_one(study: optuna.Study, prepared: Prepared) -> TrialRecord:
    spec = prepared.spec
    trial = study.ask()
    seed = spec.seed + trial.number
    trial.set_user_attr(TrialAttr.SEED, seed)
    trial.set_user_attr(TrialAttr.DEVICE, prepared.device_info.to_dict())
    try:
        if trial.user_attrs.get(TrialAttr.BASELINE):
            config = prepared.workload.baseline
            suggest_params(trial, config, prepared.space)
        else:
            config = sample_config(trial, prepared.space)
        trial.set_user_attr(TrialAttr.CONFIG, config.to_dict())
        result = run_trial(prepared.workload, config, spec.budget, prepared.device, seed)
    except ConfigError as exc:
        _tell_failure(study, trial, TrialFailure(FailureKind.UNSUPPORTED, str(exc)))
    except TrialFailure as failure:
        _tell_failure(study, trial, failure)
    except KeyboardInterrupt:
        _tell_failure(study, trial, TrialFailure(FailureKind.INTERRUPTED, "stopped by the user"))
        raise
    except Exception as exc:  # user code in build_model/load_data, or anything unforeseen
        _tell_failure(study, trial, classify(exc, compiling=False))
    else:
        _tell_result(study, trial, result, spec.memory_budget_mb)
    finally:
        gc.collect()
        if prepared.device.type == "cuda":
            torch.cuda.empty_cache()
    return next(record_of(t) for t in study.get_trials(deepcopy=False) if t.number == trial.number)


def _tell_failure(study: optuna.Study, trial: optuna.Trial, failure: TrialFailure) -> None:
    trial.set_user_attr(TrialAttr.FAILURE_KIND, failure.kind.value)
    trial.set_user_attr(TrialAttr.FAILURE_REASON, failure.reason)
    state = TrialState.PRUNED if failure.kind in _PRUNED_KINDS else TrialState.FAIL
    study.tell(trial, state=state)


def _tell_result(
    study: optuna.Study, trial: optuna.Trial, result: TrialResult, memory_budget_mb: float | None
) -> None:
    attrs = {
        TrialAttr.METRIC: result.metric,
        TrialAttr.THROUGHPUT: result.throughput,
        TrialAttr.THROUGHPUT_WINDOWS: list(result.windows),
        TrialAttr.COMPILE_S: result.compile_s,
        TrialAttr.WARMUP_S: result.warmup_s,
        TrialAttr.PEAK_MEMORY_BYTES: result.peak_memory_bytes,
        TrialAttr.MEMORY_KIND: result.memory_kind,
        TrialAttr.TRAIN_S: result.train_s,
        TrialAttr.TRIAL_S: result.trial_s,
        TrialAttr.OPTIMIZER_STEPS: result.optimizer_steps,
        TrialAttr.SAMPLES: result.samples,
        TrialAttr.CURVE: [
            {"step": p.step, "samples": p.samples, "train_s": p.train_s, "metric": p.metric}
            for p in result.curve
        ],
    }
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    if memory_budget_mb is not None:
        if result.peak_memory_bytes is None:
            _tell_failure(
                study,
                trial,
                TrialFailure(
                    FailureKind.UNMEASURABLE,
                    "peak memory is unknown on this device, so run.memory_budget_mb cannot be "
                    "checked; remove it from the spec",
                ),
            )
            return
        # Feasible when <= 0: the sampler learns the memory boundary instead of crashing on it.
        trial.set_constraint("memory_mb", result.peak_memory_bytes / 2**20 - memory_budget_mb)
    study.tell(trial, [result.metric, result.throughput])
