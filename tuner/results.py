"""Read-only views of a study, straight from the storage: what show, export and the app read.

No torch here: reading results must be instant. The Pareto front is computed from the stored
trials themselves (feasible, complete), with the metric's direction taken from the study.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from tuner.attrs import StudyAttr, TrialAttr
from tuner.storage import load_study, open_storage
from tuner.workload import Direction


@dataclass(frozen=True)
class TrialRecord:
    """One stored trial, flattened for display and selection."""

    number: int
    state: str  # COMPLETE, FAIL, PRUNED, RUNNING, WAITING
    metric: float | None
    throughput: float | None
    feasible: bool
    attrs: dict[str, Any]

    def values(self) -> tuple[float, float]:
        """(metric, throughput) of a complete trial."""
        if self.metric is None or self.throughput is None:
            raise ValueError(f"trial {self.number} is {self.state}: it has no values")
        return self.metric, self.throughput

    @property
    def config(self) -> dict[str, Any] | None:
        return self.attrs.get(TrialAttr.CONFIG)

    @property
    def failure(self) -> str | None:
        kind = self.attrs.get(TrialAttr.FAILURE_KIND)
        return f"{kind}: {self.attrs.get(TrialAttr.FAILURE_REASON, '')}" if kind else None


@dataclass(frozen=True)
class StudyView:
    name: str
    storage: str
    metric_name: str
    direction: Direction
    attrs: dict[str, Any]
    trials: tuple[TrialRecord, ...]

    def completed(self) -> list[TrialRecord]:
        """Complete, feasible trials: the only candidates for the front or an export."""
        return [t for t in self.trials if t.state == "COMPLETE" and t.feasible]

    def front(self) -> list[TrialRecord]:
        """Non-dominated trials on (metric, throughput), best metric first."""
        return pareto_front(self.completed(), self.direction)

    def state_counts(self) -> dict[str, int]:
        return dict(Counter(t.state for t in self.trials))

    def failures(self) -> dict[str, list[TrialRecord]]:
        """Failed and pruned trials grouped by failure kind."""
        groups: dict[str, list[TrialRecord]] = {}
        for trial in self.trials:
            kind = trial.attrs.get(TrialAttr.FAILURE_KIND)
            if kind:
                groups.setdefault(kind, []).append(trial)
        return groups

    def infeasible(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.state == "COMPLETE" and not t.feasible]


def metric_key(direction: Direction) -> Any:
    """Sort key that puts the best metric first."""
    sign = -1.0 if direction is Direction.MAXIMIZE else 1.0
    return lambda trial: sign * trial.metric


def pareto_front(trials: list[TrialRecord], direction: Direction) -> list[TrialRecord]:
    """Trials no other trial beats on both metric and throughput (ties kept)."""
    better = 1.0 if direction is Direction.MAXIMIZE else -1.0

    def dominates(a: TrialRecord, b: TrialRecord) -> bool:
        (ma, ta), (mb, tb) = a.values(), b.values()
        ma, mb = better * ma, better * mb
        return ma >= mb and ta >= tb and (ma > mb or ta > tb)

    front = [t for t in trials if not any(dominates(o, t) for o in trials)]
    return sorted(front, key=metric_key(direction))


def read_study(name: str, storage: str) -> StudyView:
    """Load a study written by `tuner run` (a UserError if it does not exist)."""
    study = load_study(name, storage)
    attrs = dict(study.user_attrs)
    return StudyView(
        name=name,
        storage=storage,
        metric_name=attrs.get(StudyAttr.METRIC_NAME, "metric"),
        direction=Direction(attrs.get(StudyAttr.METRIC_DIRECTION, Direction.MAXIMIZE.value)),
        attrs=attrs,
        trials=tuple(record_of(t) for t in study.get_trials(deepcopy=False)),
    )


def record_of(trial: optuna.trial.FrozenTrial) -> TrialRecord:
    """Flatten a stored trial; objective 0 is the metric, objective 1 the throughput."""
    values = trial.values if trial.state is TrialState.COMPLETE else None
    return TrialRecord(
        number=trial.number,
        state=trial.state.name,
        metric=values[0] if values else None,
        throughput=values[1] if values else None,
        feasible=all(v <= 0.0 for v in trial.constraints.values()),
        attrs=dict(trial.user_attrs),
    )


@dataclass(frozen=True)
class StudySummary:
    name: str
    n_trials: int
    metric_name: str
    objective: str


def list_studies(storage: str) -> list[StudySummary]:
    """Every study in a storage, with its trial count and objective."""
    summaries = optuna.get_all_study_summaries(open_storage(storage, create=False))
    return [
        StudySummary(
            name=s.study_name,
            n_trials=s.n_trials,
            metric_name=s.user_attrs.get(StudyAttr.METRIC_NAME, "?"),
            objective=s.user_attrs.get(StudyAttr.OBJECTIVE, "?"),
        )
        for s in sorted(summaries, key=lambda s: s.study_name)
    ]
