"""The runner's side of early stopping: one trial judged against the study as stored.

The pure rules live in `tuner.pruning`; this module reads the other trials from the storage,
turns them into the rules' values, and records what the judged trial showed (its performance
key, the throughput known for it, its metric and speed at every rung) so that later trials,
in this process or any other sharing the storage, are judged against it in turn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from tuner.attrs import FailureKind, TrialAttr
from tuner.harness import Checkpoint, TrialFailure
from tuner.pruning import Pruning
from tuner.pruning.fidelity import Finished, dominated_on_speed
from tuner.pruning.keys import memory_key, performance_key
from tuner.pruning.memory import Measured, predict_peak
from tuner.pruning.rungs import Point, halving
from tuner.workload import Direction

#: Failures that belong to the performance key, not to the mathematics: the same key fails
#: the same way whatever its lr (divergence is the lr's, so it is not here).
_KEY_FAILURES = frozenset(
    {
        FailureKind.OUT_OF_MEMORY,
        FailureKind.UNSUPPORTED,
        FailureKind.TOO_SLOW,
        FailureKind.COMPILE_ERROR,
    }
)


@dataclass(frozen=True)
class Rules:
    """What a judge needs from the study's spec and workload."""

    pruning: Pruning
    evaluations: int  # the budget's learning-curve points; the last is the result
    direction: Direction
    noise: float
    memory_budget_mb: float | None
    metric_floor: float | None  # rung peers not clearly past it rank no one (see __call__)
    #: Stop a trial whose samples/s is dominated (`tuner.pruning.fidelity`). Off when speed is
    #: time to a target: a config slower per sample may need fewer samples and get there first.
    speed_dominance: bool = True


class TrialJudge:
    """Judges one trial: before it starts (`before`) and at its checkpoints (a `Judge`)."""

    def __init__(
        self, study: optuna.Study, trial: optuna.Trial, config: dict[str, Any], rules: Rules
    ) -> None:
        self._study = study
        self._trial = trial
        self._rules = rules
        self._device = trial.user_attrs.get(TrialAttr.DEVICE)
        self._key = performance_key(config)
        self._config = config
        self._rungs: dict[str, list[float]] = {}
        self._rung_numbers = rules.pruning.rungs(rules.evaluations)
        trial.set_user_attr(TrialAttr.PERF_KEY, self._key)

    def before(self) -> TrialFailure | None:
        """Why the trial should not start at all, or None: its key failed before, its known
        speed is already dominated, or it is predicted to exceed the memory budget."""
        others = self._others()
        pruning = self._rules.pruning
        if pruning.throughput_cache:
            for trial in others:
                kind = trial.user_attrs.get(TrialAttr.FAILURE_KIND)
                if self._same_key(trial) and kind in _KEY_FAILURES:
                    reason = trial.user_attrs.get(TrialAttr.FAILURE_REASON, "")
                    return TrialFailure(
                        FailureKind(kind),
                        f"not run: its performance key failed in trial #{trial.number}: {reason}",
                    )
        too_big = self._predicted_too_big(others)
        if too_big is not None:
            return too_big
        throughput = self._known_throughput(others) if pruning.throughput_cache else None
        if throughput is None:
            return None
        self._trial.set_user_attr(TrialAttr.KEY_THROUGHPUT, throughput)
        if not pruning.enabled:
            return None
        reason = self._on_speed(others, throughput, 0, None)
        return None if reason is None else TrialFailure(FailureKind.STOPPED, f"not run: {reason}")

    def __call__(self, checkpoint: Checkpoint) -> str | None:
        """The verdict at a checkpoint: a reason to stop, or None. Records the rung first, so
        trials judged later see this one whatever the verdict."""
        evaluation, metric = checkpoint.evaluation, checkpoint.metric
        try:
            if metric is not None:
                self._rungs[str(evaluation)] = [metric, checkpoint.throughput]
                self._trial.set_user_attr(TrialAttr.RUNGS, dict(self._rungs))
            else:
                self._trial.set_user_attr(TrialAttr.KEY_THROUGHPUT, checkpoint.throughput)
        except UpdateFinishedTrialError:
            # Another runner's sweep took this one for dead (frozen past the heartbeat grace)
            # and stored the trial as lost: nothing more of it can be stored, so it stops.
            return "stored as lost by another runner while it trained"
        others = self._others()
        reason = self._on_speed(others, checkpoint.throughput, evaluation, metric)
        if reason is not None or metric is None or evaluation not in self._rung_numbers:
            return reason
        rules = self._rules
        # A trial not yet clearly better than chance at a rung is on its way to infeasible:
        # it must not push learning trials off the rung by being fast.
        peers = [
            p
            for p in (_at_rung(t, evaluation) for t in others)
            if p is not None and self._past_floor(p.metric)
        ]
        return halving(
            Point(self._trial.number, metric, checkpoint.throughput),
            peers,
            rung=self._rung_numbers.index(evaluation) + 1,
            evaluation=evaluation,
            reduction_factor=rules.pruning.reduction_factor,
            min_trials=rules.pruning.min_trials,
            direction=rules.direction,
        )

    def _past_floor(self, metric: float) -> bool:
        floor, rules = self._rules.metric_floor, self._rules
        if floor is None:
            return True
        if rules.direction is Direction.MAXIMIZE:
            return metric > floor + rules.noise
        return metric < floor - rules.noise

    def _others(self) -> list[FrozenTrial]:
        return [t for t in self._study.get_trials(deepcopy=False) if t.number != self._trial.number]

    def _same_key(self, trial: FrozenTrial) -> bool:
        attrs = trial.user_attrs
        return attrs.get(TrialAttr.PERF_KEY) == self._key and attrs.get(TrialAttr.DEVICE) == (
            self._device
        )

    def _known_throughput(self, others: Sequence[FrozenTrial]) -> float | None:
        """Samples/s measured for this key on this device: a finished trial's median over all
        its windows if there is one, else a trial's first-window figure."""
        same = [t for t in others if self._same_key(t)]
        finished = [
            t.user_attrs[TrialAttr.THROUGHPUT]
            for t in same
            if t.state is TrialState.COMPLETE and TrialAttr.THROUGHPUT in t.user_attrs
        ]
        if finished:
            return float(sorted(finished)[len(finished) // 2])
        early = [t.user_attrs[TrialAttr.KEY_THROUGHPUT] for t in same if _measured(t)]
        return float(early[-1]) if early else None

    def _on_speed(
        self,
        others: Sequence[FrozenTrial],
        throughput: float,
        evaluation: int,
        metric: float | None,
    ) -> str | None:
        if not (self._rules.pruning.enabled and self._rules.speed_dominance):
            return None
        finished = [f for f in (_finished(t) for t in others) if f is not None]
        return dominated_on_speed(
            throughput,
            evaluation,
            metric,
            finished,
            direction=self._rules.direction,
            noise=self._rules.noise,
            margin=self._rules.pruning.margin,
        )

    def _predicted_too_big(self, others: Sequence[FrozenTrial]) -> TrialFailure | None:
        budget_mb = self._rules.memory_budget_mb
        if budget_mb is None:
            return None
        key = memory_key(self._config)
        measured = [
            Measured(t.number, t.user_attrs[TrialAttr.CONFIG]["batch_size"], peak)
            for t in others
            if t.state is TrialState.COMPLETE
            and (peak := t.user_attrs.get(TrialAttr.PEAK_MEMORY_BYTES)) is not None
            and TrialAttr.CONFIG in t.user_attrs
            and memory_key(t.user_attrs[TrialAttr.CONFIG]) == key
            and t.user_attrs.get(TrialAttr.DEVICE) == self._device
        ]
        prediction = predict_peak(measured, self._config["batch_size"])
        if prediction is None:
            return None
        self._trial.set_user_attr(TrialAttr.PREDICTED_PEAK_MEMORY_BYTES, prediction.peak_bytes)
        predicted_mb = prediction.peak_bytes / 2**20
        if predicted_mb <= budget_mb:
            return None
        fitted = ", ".join(f"#{n}" for n in prediction.fitted_on[:5])
        return TrialFailure(
            FailureKind.OUT_OF_MEMORY,
            f"not run: predicted peak {predicted_mb:,.0f} MiB > run.memory_budget_mb="
            f"{budget_mb:g} (a line through the peaks of trials {fitted})",
        )


def _measured(trial: FrozenTrial) -> bool:
    value = trial.user_attrs.get(TrialAttr.KEY_THROUGHPUT)
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def _feasible(trial: FrozenTrial) -> bool:
    return all(value <= 0 for value in trial.constraints.values())


def _curve(trial: FrozenTrial) -> dict[int, float]:
    return {i + 1: p["metric"] for i, p in enumerate(trial.user_attrs.get(TrialAttr.CURVE, []))}


def _finished(trial: FrozenTrial) -> Finished | None:
    attrs = trial.user_attrs
    if trial.state is not TrialState.COMPLETE or not _feasible(trial):
        return None
    if TrialAttr.METRIC not in attrs or TrialAttr.THROUGHPUT not in attrs:
        return None
    return Finished(
        trial.number, attrs[TrialAttr.METRIC], attrs[TrialAttr.THROUGHPUT], _curve(trial)
    )


def _at_rung(trial: FrozenTrial, evaluation: int) -> Point | None:
    """The trial's metric and throughput at `evaluation`: from its curve when it finished,
    from its recorded rungs when it is running or was stopped."""
    attrs = trial.user_attrs
    if trial.state is TrialState.COMPLETE:
        curve = _curve(trial)
        if evaluation in curve and TrialAttr.THROUGHPUT in attrs:
            return Point(trial.number, curve[evaluation], attrs[TrialAttr.THROUGHPUT])
        return None
    rung = attrs.get(TrialAttr.RUNGS, {}).get(str(evaluation))
    return None if rung is None else Point(trial.number, rung[0], rung[1])
