"""Storing a trial's end: its result's figures, or its failure's kind and reason.

Called only by the runner, which owns ask/tell. A trial's state follows from its outcome:
COMPLETE with values, PRUNED when the configuration cannot run here or in time, FAIL
otherwise.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from tuner.attrs import FailureKind, TrialAttr
from tuner.harness import TrialFailure, TrialResult
from tuner.supervisor import Outcome

#: A trial ending with one of these kinds is PRUNED (the combination cannot run here); any
#: other failure is FAIL.
_PRUNED_KINDS = frozenset({FailureKind.UNSUPPORTED, FailureKind.TOO_SLOW})


def tell_outcome(
    study: optuna.Study, trial: optuna.Trial, outcome: Outcome, memory_budget_mb: float | None
) -> None:
    if outcome.rss_bytes is not None:
        trial.set_user_attr(TrialAttr.WORKER_RSS_BYTES, outcome.rss_bytes)
    if outcome.stderr_tail:
        trial.set_user_attr(TrialAttr.STDERR_TAIL, list(outcome.stderr_tail))
    if outcome.result is not None:
        tell_result(study, trial, outcome.result, memory_budget_mb)
    else:
        assert outcome.failure is not None  # an Outcome holds one or the other
        tell_failure(study, trial, outcome.failure)


def tell_failure(study: optuna.Study, trial: optuna.Trial, failure: TrialFailure) -> None:
    trial.set_user_attr(TrialAttr.FAILURE_KIND, failure.kind.value)
    trial.set_user_attr(TrialAttr.FAILURE_REASON, failure.reason)
    state = TrialState.PRUNED if failure.kind in _PRUNED_KINDS else TrialState.FAIL
    study.tell(trial, state=state)


def tell_result(
    study: optuna.Study, trial: optuna.Trial, result: TrialResult, memory_budget_mb: float | None
) -> None:
    attrs = {
        TrialAttr.METRIC: result.metric,
        TrialAttr.THROUGHPUT: result.throughput,
        TrialAttr.THROUGHPUT_WINDOWS: list(result.windows),
        TrialAttr.COMPILE_S: result.compile_s,
        TrialAttr.WARMUP_S: result.warmup_s,
        TrialAttr.LOADER_STARTUP_S: result.loader_startup_s,
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
            tell_failure(
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
