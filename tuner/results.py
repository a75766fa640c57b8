"""Read-only views of a study, straight from the storage: what show, export and the app read.

No torch here: reading results must be instant. The Pareto front is computed from the stored
trials themselves (feasible, complete), with the metric's direction taken from the study.
A `StudyReader` kept open (the app keeps one per study) re-reads only what changed: Optuna's
cached RDB storage and its journal storage both fetch only new and unfinished trials, and
records of finished trials are reused.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tuner.attrs import StudyAttr, TrialAttr
from tuner.errors import UserError
from tuner.storage import load_study, open_storage
from tuner.targets import SpeedObjective
from tuner.workload import Direction

if TYPE_CHECKING:  # optuna is imported by the functions that open a storage
    import optuna


#: Knob columns, in the order a reader scans them; flattened from the stored config.
KNOBS = (
    "optimizer",
    "lr",
    "weight_decay",
    "momentum",
    "nesterov",
    "beta1",
    "beta2",
    "alpha",
    "schedule",
    "step_every",
    "step_gamma",
    "pct_start",
    "warmup_fraction",
    "batch_size",
    "accumulation_steps",
    "effective_batch",
    "grad_clip_norm",
    "precision",
    "compile_mode",
    "num_workers",
    "pin_memory",
    "persistent_workers",
    "prefetch_factor",
    "channels_last",
    "optimizer_impl",
    "matmul_precision",
    "cudnn_benchmark",
    "activation_checkpointing",
)
#: The top-level performance knobs of a stored config, read as they are.
_PERFORMANCE = (
    "batch_size",
    "accumulation_steps",
    "grad_clip_norm",
    "precision",
    "compile_mode",
    "channels_last",
    "optimizer_impl",
    "matmul_precision",
    "cudnn_benchmark",
    "activation_checkpointing",
)


def knobs_of(config: dict[str, Any] | None) -> dict[str, Any]:
    """The stored config as flat knob -> value (knobs that do not apply are absent)."""
    if not isinstance(config, dict):
        return {}
    optimizer, schedule = _table(config, "optimizer"), _table(config, "schedule")
    flat: dict[str, Any] = {"optimizer": optimizer.get("name"), "schedule": schedule.get("name")}
    flat |= {k: v for k, v in optimizer.items() if k not in ("name", "betas")}
    betas = optimizer.get("betas")
    if isinstance(betas, list | tuple) and len(betas) == 2:
        flat |= {"beta1": betas[0], "beta2": betas[1]}
    flat |= {k: v for k, v in schedule.items() if k != "name"}
    flat |= {key: config[key] for key in _PERFORMANCE if key in config}
    loader = _table(config, "loader")
    flat |= {k: v for k, v in loader.items() if k != "prefetch_factor" or v is not None}
    batch, accumulation = flat.get("batch_size"), flat.get("accumulation_steps")
    if isinstance(batch, int) and isinstance(accumulation, int):
        flat["effective_batch"] = batch * accumulation
    return {k: flat[k] for k in KNOBS if k in flat}


def _table(config: dict[str, Any], key: str) -> dict[str, Any]:
    value = config.get(key)
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class TrialRecord:
    """One stored trial, flattened for display and selection."""

    number: int
    state: str  # COMPLETE, FAIL, PRUNED, RUNNING, WAITING
    metric: float | None
    throughput: float | None  # objective 1: samples/s, or runs to target per hour (StudyView.speed)
    feasible: bool
    attrs: dict[str, Any]
    completed: datetime | None = field(default=None, compare=False)
    violated: tuple[str, ...] = ()  # names of the constraints it breaks (CONSTRAINTS)

    def values(self) -> tuple[float, float]:
        """(metric, throughput) of a complete trial."""
        if self.metric is None or self.throughput is None:
            raise ValueError(f"trial {self.number} is {self.state}: it has no values")
        return self.metric, self.throughput

    @property
    def config(self) -> dict[str, Any] | None:
        config = self.attrs.get(TrialAttr.CONFIG)
        return config if isinstance(config, dict) else None

    @functools.cached_property
    def knobs(self) -> dict[str, Any]:
        """The config flattened (`knobs_of`); kept, since a `StudyReader` reuses the records
        of finished trials and the app reads every trial's knobs on each change."""
        return knobs_of(self.config)

    @property
    def is_baseline(self) -> bool:
        """The study's reference trial: plain PyTorch defaults, or the workload's own."""
        return bool(self.attrs.get(TrialAttr.BASELINE))

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

    @property
    def speed(self) -> SpeedObjective:
        """What objective 1 (`TrialRecord.throughput`) is, and how readers label it."""
        return SpeedObjective.from_attr(self.attrs.get(StudyAttr.SPEED))

    @property
    def noise(self) -> float:
        """Metric differences at or below this are seed noise (0 when the workload gave none)."""
        noise = self.attrs.get(StudyAttr.METRIC_NOISE, 0.0)
        return float(noise) if isinstance(noise, int | float) and noise >= 0 else 0.0

    def completed(self) -> list[TrialRecord]:
        """Complete, feasible trials: the only candidates for the front or an export."""
        return [t for t in self.trials if t.state == "COMPLETE" and t.feasible]

    def front(self) -> list[TrialRecord]:
        """Non-dominated trials on (metric, throughput), best metric first."""
        return pareto_front(self.completed(), self.direction)

    def state_counts(self) -> dict[str, int]:
        return dict(Counter(t.state for t in self.trials))

    def last_update(self) -> datetime | None:
        """When the latest trial finished (None before any has)."""
        return max((t.completed for t in self.trials if t.completed), default=None)

    def trial(self, number: int) -> TrialRecord | None:
        return next((t for t in self.trials if t.number == number), None)

    def failures(self) -> dict[str, list[TrialRecord]]:
        """Failed and pruned trials grouped by failure kind."""
        groups: dict[str, list[TrialRecord]] = {}
        for trial in self.trials:
            kind = trial.attrs.get(TrialAttr.FAILURE_KIND)
            # A sweep that raced its owner's tell can leave a kind on a COMPLETE trial.
            if kind and trial.state in ("FAIL", "PRUNED"):
                groups.setdefault(kind, []).append(trial)
        return groups

    def infeasible(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.state == "COMPLETE" and not t.feasible]


def metric_key(direction: Direction) -> Any:
    """Sort key that puts the best metric first."""
    sign = -1.0 if direction is Direction.MAXIMIZE else 1.0
    return lambda trial: sign * trial.metric


def pareto_front(trials: list[TrialRecord], direction: Direction) -> list[TrialRecord]:
    """Trials no other trial beats on both metric and throughput (ties kept), best metric first.

    One sort and one sweep, O(n log n), so a 5,000-trial study's front is instant: walking
    from the best metric down, a trial is on the front when it is the fastest of its metric
    value and faster than every trial with a strictly better metric.
    """
    better = 1.0 if direction is Direction.MAXIMIZE else -1.0
    points = sorted(
        ((better * t.values()[0], t.values()[1], t) for t in trials), key=lambda p: (-p[0], -p[1])
    )
    front: list[TrialRecord] = []
    fastest_better = -math.inf  # fastest throughput among strictly better metrics
    i = 0
    while i < len(points):
        j = i
        while j < len(points) and points[j][0] == points[i][0]:
            j += 1
        group_fastest = points[i][1]
        if group_fastest > fastest_better:
            front += [p[2] for p in points[i:j] if p[1] == group_fastest]
        fastest_better = max(fastest_better, group_fastest)
        i = j
    return front


def read_study(name: str, storage: str) -> StudyView:
    """Load a study written by `tuner run` (a UserError if it does not exist)."""
    return StudyReader(name, storage).read()


class StudyReader:
    """An open study that reads again cheaply: finished trials are fetched and flattened once.

    Example:
        >>> reader = StudyReader("quick-digits", "sqlite:///studies/tuner.db")  # doctest: +SKIP
        >>> view = reader.read()  # later calls fetch only new and unfinished trials
    """

    def __init__(self, name: str, storage: str) -> None:
        self.name = name
        self.storage = storage
        self._study = load_study(name, storage)
        self._finished: dict[int, TrialRecord] = {}
        if len(self._study.directions) != 2:
            raise UserError(
                f"STUDY: {name!r} has {len(self._study.directions)} objective(s), so it was not "
                "made by tuner (a tuner study has two: the metric and throughput); open a study "
                "that `tuner run` created"
            )

    @property
    def study(self) -> optuna.Study:
        """The Optuna study, for Optuna's own read-only analyses (importances)."""
        return self._study

    def read(self) -> StudyView:
        attrs = dict(self._study.user_attrs)
        records = []
        for trial in self._study.get_trials(deepcopy=False):
            record = self._finished.get(trial.number)
            if record is None:
                record = record_of(trial)
                if trial.state.is_finished():
                    self._finished[trial.number] = record
            records.append(record)
        direction = attrs.get(StudyAttr.METRIC_DIRECTION, Direction.MAXIMIZE.value)
        return StudyView(
            name=self.name,
            storage=self.storage,
            metric_name=str(attrs.get(StudyAttr.METRIC_NAME, "metric")),
            direction=Direction(direction) if direction in set(Direction) else Direction.MAXIMIZE,
            attrs=attrs,
            trials=tuple(records),
        )


def record_of(trial: optuna.trial.FrozenTrial) -> TrialRecord:
    """Flatten a stored trial; objective 0 is the metric, objective 1 the throughput."""
    values = trial.values if trial.state.name == "COMPLETE" else None
    return TrialRecord(
        number=trial.number,
        state=trial.state.name,
        metric=values[0] if values else None,
        throughput=values[1] if values else None,
        feasible=all(v <= 0.0 for v in trial.constraints.values()),
        attrs=dict(trial.user_attrs),
        completed=trial.datetime_complete,
        violated=tuple(sorted(name for name, v in trial.constraints.items() if v > 0.0)),
    )


#: What each constraint a complete trial can break means (tuner.telling sets them).
CONSTRAINTS = {
    "memory_mb": "over the memory budget",
    "metric_floor": "not clearly better than the metric floor (chance, or study.metric_floor)",
    "target": "never reached study.target",
}


def infeasible_groups(view: StudyView) -> list[tuple[str, list[int]]]:
    """Complete but infeasible trials, grouped by what they break, for every reader."""
    groups: dict[str, list[int]] = {}
    for trial in view.infeasible():
        for name in trial.violated or ("",):
            groups.setdefault(CONSTRAINTS.get(name, name or "infeasible"), []).append(trial.number)
    return list(groups.items())


@dataclass(frozen=True)
class StudySummary:
    name: str
    n_trials: int
    metric_name: str
    objective: str


def list_studies(storage: str) -> list[StudySummary]:
    """Every study in a storage, with its trial count and objective.

    Reads the study rows and one count of trials per study, never the trials themselves:
    `optuna.get_all_study_summaries` loads every trial of every study, seconds for one
    5,000-trial study, and the app lists the storage on every refresh.
    """
    opened = open_storage(storage, create=False)
    counts = _trial_counts(opened)
    return [
        StudySummary(
            name=s.study_name,
            n_trials=counts.get(s._study_id, 0)
            if counts is not None
            else opened.get_n_trials(s._study_id),
            metric_name=s.user_attrs.get(StudyAttr.METRIC_NAME, "?"),
            objective=s.user_attrs.get(StudyAttr.OBJECTIVE, "?"),
        )
        for s in sorted(opened.get_all_studies(), key=lambda s: s.study_name)
    ]


def _trial_counts(storage: optuna.storages.BaseStorage) -> dict[int, int] | None:
    """Trials per study id in one COUNT query for an RDB storage (None for other storages,
    whose `get_n_trials` is already in memory)."""
    import optuna
    import sqlalchemy
    from optuna.storages._rdb import models

    if not isinstance(storage, optuna.storages.RDBStorage):
        return None
    trials = models.TrialModel.__table__
    query = sqlalchemy.select(trials.c.study_id, sqlalchemy.func.count()).group_by(
        trials.c.study_id
    )
    with storage.engine.connect() as connection:
        return {study_id: count for study_id, count in connection.execute(query)}
