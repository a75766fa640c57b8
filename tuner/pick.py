"""Choosing one trial of a study to export.

`fastest-within=X%` is the pick most users want: metric differences below the seed noise are
not worth a slower training run, so take the fastest trial whose metric is within X% of the
best one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from tuner.errors import UserError
from tuner.results import StudyView, TrialRecord, metric_key
from tuner.workload import Direction


class PickKind(StrEnum):
    MAX_METRIC = "max-metric"
    MAX_THROUGHPUT = "max-throughput"
    FASTEST_WITHIN = "fastest-within"
    TRIAL = "trial"


@dataclass(frozen=True)
class Pick:
    kind: PickKind
    tolerance: float = 0.0  # relative, for FASTEST_WITHIN
    trial: int = -1  # for TRIAL


_WITHIN = re.compile(r"fastest-within=(\d+(?:\.\d+)?)%")
_TRIAL = re.compile(r"trial=(\d+)")
PICK_HELP = "max-metric, max-throughput, fastest-within=X% (e.g. fastest-within=0.5%) or trial=N"


def parse_pick(text: str) -> Pick:
    if text in (PickKind.MAX_METRIC, PickKind.MAX_THROUGHPUT):
        return Pick(PickKind(text))
    if match := _WITHIN.fullmatch(text):
        return Pick(PickKind.FASTEST_WITHIN, tolerance=float(match.group(1)) / 100)
    if match := _TRIAL.fullmatch(text):
        return Pick(PickKind.TRIAL, trial=int(match.group(1)))
    raise UserError(f"--pick: {text!r} is not understood; use {PICK_HELP}")


def select(view: StudyView, pick: Pick) -> TrialRecord:
    """The trial `pick` names, from complete, feasible trials only."""
    if pick.kind is PickKind.TRIAL:
        return _by_number(view, pick.trial)
    candidates = view.completed()
    if not candidates:
        raise UserError(f"--pick: study {view.name!r} has no complete trial yet")
    metric = {t.number: t.values()[0] for t in candidates}
    speed = {t.number: t.values()[1] for t in candidates}
    best = metric[sorted(candidates, key=metric_key(view.direction))[0].number]
    if pick.kind is PickKind.MAX_METRIC:
        close = [t for t in candidates if metric[t.number] == best]
    elif pick.kind is PickKind.MAX_THROUGHPUT:
        close = candidates
    else:
        slack = abs(best) * pick.tolerance
        sign = 1.0 if view.direction is Direction.MAXIMIZE else -1.0
        close = [t for t in candidates if sign * (best - metric[t.number]) <= slack]
    return max(close, key=lambda t: speed[t.number])


def _by_number(view: StudyView, number: int) -> TrialRecord:
    for trial in view.trials:
        if trial.number == number:
            if trial.state != "COMPLETE":
                reason = f" ({trial.failure})" if trial.failure else ""
                raise UserError(
                    f"--pick: trial {number} is {trial.state}{reason}; pick a complete trial"
                )
            return trial
    raise UserError(f"--pick: study {view.name!r} has no trial {number}")
