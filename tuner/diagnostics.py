"""Is the search still improving, and which knobs matter: read-only diagnostics of a study.

The hypervolume history answers the first question (optuna-dashboard has no such plot for
several objectives): the area the front dominates, after each trial, normalised so 1.0 is the
box from the worst complete metric and zero throughput to the best of each. Parameter
importances use Optuna's own evaluators, one objective at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from tuner.attrs import TrialAttr
from tuner.results import StudyView
from tuner.workload import Direction

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class HypervolumePoint:
    trial: int  # trial number after which this is the front's hypervolume
    hypervolume: float  # in [0, 1]


def hypervolume_history(view: StudyView) -> list[HypervolumePoint]:
    """The normalised 2-D hypervolume of the front of complete, feasible trials, after each.

    Incremental: each trial is checked against the current front only, so a 5,000-trial
    study takes milliseconds. The reference point is fixed for the whole history (the worst
    complete metric, zero throughput), so the curve only ever rises.
    """
    done = sorted(view.completed(), key=lambda t: t.number)
    if not done:
        return []
    better = 1.0 if view.direction is Direction.MAXIMIZE else -1.0
    points = [(better * t.values()[0], t.values()[1]) for t in done]
    ref_metric = min(m for m, _ in points)
    scale = (max(m for m, _ in points) - ref_metric) * max(s for _, s in points)
    front: list[tuple[float, float]] = []  # non-dominated, best metric first
    history = []
    for trial, point in zip(done, points, strict=True):
        if not any(m >= point[0] and s >= point[1] for m, s in front):
            front = [p for p in front if not (point[0] >= p[0] and point[1] >= p[1])]
            front = sorted([*front, point], reverse=True)
        history.append(
            HypervolumePoint(trial.number, _area(front, ref_metric) / scale if scale else 0.0)
        )
    return history


def _area(front: list[tuple[float, float]], ref_metric: float) -> float:
    """Area dominated by a front sorted best metric first (so throughput rises along it)."""
    area, previous_speed = 0.0, 0.0
    for metric, speed in front:
        area += (metric - ref_metric) * (speed - previous_speed)
        previous_speed = speed
    return area


class Evaluator(StrEnum):
    """Optuna's importance evaluators, by the name the app shows."""

    FANOVA = "fanova"
    PED_ANOVA = "ped-anova"
    MEAN_DECREASE_IMPURITY = "mean-decrease-impurity"


def param_importances(
    study: optuna.Study, objective: int, evaluator: Evaluator = Evaluator.FANOVA
) -> dict[str, float]:
    """Importance of each top-level knob for objective `objective` (0 metric, 1 throughput).

    Only parameters every sampled trial has are assessed (per-optimizer parameters exist in
    some trials only), and the baseline is left out: its values may lie outside the space.
    Empty when fewer than two such trials are complete.
    """
    import optuna
    from optuna.importance import (
        FanovaImportanceEvaluator,
        MeanDecreaseImpurityImportanceEvaluator,
        PedAnovaImportanceEvaluator,
    )

    complete = [
        t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if not t.user_attrs.get(TrialAttr.BASELINE)
    ]
    if len(complete) < 2:
        return {}
    common = set.intersection(*(set(t.params) for t in complete))
    params = sorted(p for p in common if len({str(t.params[p]) for t in complete}) > 1)
    if not params:
        return {}
    chosen: optuna.importance.BaseImportanceEvaluator
    if evaluator is Evaluator.FANOVA:
        chosen = FanovaImportanceEvaluator(seed=0)
    elif evaluator is Evaluator.PED_ANOVA:
        chosen = PedAnovaImportanceEvaluator()
    else:
        chosen = MeanDecreaseImpurityImportanceEvaluator(seed=0)
    return optuna.importance.get_param_importances(
        study,
        evaluator=chosen,
        params=params,
        target=lambda t: t.values[objective],
    )
