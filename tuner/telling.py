"""Storing a trial's end: its result's figures, or its failure's kind and reason.

Called only by the runner, which owns ask/tell. A trial's state follows from its outcome:
COMPLETE with values, PRUNED when the configuration cannot run here, in time, in memory or
in its precision, or was stopped early because it could not reach the front; FAIL otherwise.

What the sampler learns: Optuna's TPE and NSGA-II ignore FAIL trials and rank trials with a
positive constraint below every feasible one, ordered by the size of the violation. So every
outcome that says something about the configuration carries a constraint: running out of
memory (`memory_mb`), overflowing or diverging (`numerics`), being stopped early (`stopped`,
the fraction of the learning curve it did not reach: a trial stopped late ranks above one
stopped at once), finishing no better than chance (`metric_floor`), and, when a study scores
speed as time to a target metric, never reaching it (`target`, the distance from the target of
the best point of its learning curve; objective 1 is then 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import optuna

from tuner.attrs import FailureKind, TrialAttr
from tuner.failure_state import failure_state
from tuner.harness import TrialFailure, TrialResult
from tuner.supervisor import Outcome
from tuner.targets import RUNS_PER_HOUR, SpeedObjective, target_gap, time_to_target
from tuner.workload import Direction


@dataclass(frozen=True)
class Feasibility:
    """What decides whether a measured trial may sit on the front."""

    memory_budget_mb: float | None
    metric_floor: float | None  # the final metric must beat this by more than the noise
    direction: Direction
    noise: float
    evaluations: int  # learning-curve points of a whole trial
    speed: SpeedObjective = field(default_factory=SpeedObjective)  # what objective 1 is


def tell_outcome(
    study: optuna.Study, trial: optuna.Trial, outcome: Outcome, feasibility: Feasibility
) -> None:
    if outcome.rss_bytes is not None:
        trial.set_user_attr(TrialAttr.WORKER_RSS_BYTES, outcome.rss_bytes)
    if outcome.stderr_tail:
        trial.set_user_attr(TrialAttr.STDERR_TAIL, list(outcome.stderr_tail))
    if outcome.result is not None:
        tell_result(study, trial, outcome.result, feasibility)
    else:
        assert outcome.failure is not None  # an Outcome holds one or the other
        tell_failure(study, trial, outcome.failure, feasibility.memory_budget_mb)


def tell_failure(
    study: optuna.Study,
    trial: optuna.Trial,
    failure: TrialFailure,
    memory_budget_mb: float | None = None,
    violation: float = 1.0,
) -> None:
    """`violation` sizes the constraint of a stopped trial (see the module docstring)."""
    trial.set_user_attr(TrialAttr.FAILURE_KIND, failure.kind.value)
    trial.set_user_attr(TrialAttr.FAILURE_REASON, failure.reason)
    state, constraints = failure_state(failure.kind, memory_budget_mb, violation)
    for name, value in constraints.items():
        trial.set_constraint(name, value)
    study.tell(trial, state=state)


def tell_result(
    study: optuna.Study, trial: optuna.Trial, result: TrialResult, feasibility: Feasibility
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
    if result.stopped is not None:
        reached = len(result.curve) / feasibility.evaluations
        failure = TrialFailure(FailureKind.STOPPED, result.stopped)
        tell_failure(study, trial, failure, violation=max(0.01, 1.0 - reached))
        return
    assert result.metric is not None  # a trial that ran to its end evaluated
    budget_mb = feasibility.memory_budget_mb
    if budget_mb is not None:
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
        trial.set_constraint("memory_mb", result.peak_memory_bytes / 2**20 - budget_mb)
    if feasibility.metric_floor is not None:
        trial.set_constraint("metric_floor", _below_floor(result.metric, feasibility))
    study.tell(trial, [result.metric, _speed(trial, result, feasibility)])


def _speed(trial: optuna.Trial, result: TrialResult, feasibility: Feasibility) -> float:
    """Objective 1: samples/s, or runs to the target per hour (`tuner.targets`): 0 for a run
    that never reached it, made infeasible by how far it stayed from it."""
    objective = feasibility.speed
    if not objective.to_target:
        return result.throughput
    assert objective.target is not None  # the spec requires a target with time_to_target
    curve = [{"train_s": p.train_s, "metric": p.metric} for p in result.curve]
    seconds = time_to_target(curve, objective.target, feasibility.direction)
    trial.set_user_attr(TrialAttr.TIME_TO_TARGET_S, seconds)
    if seconds is None:
        trial.set_constraint("target", target_gap(curve, objective.target, feasibility.direction))
        return 0.0
    return RUNS_PER_HOUR / seconds


def _below_floor(metric: float, feasibility: Feasibility) -> float:
    """How far `metric` is from clearly beating the floor (<= 0: it does)."""
    floor, noise = feasibility.metric_floor or 0.0, feasibility.noise
    if feasibility.direction is Direction.MAXIMIZE:
        return floor + noise - metric
    return metric - (floor - noise)
