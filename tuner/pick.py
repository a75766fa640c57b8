"""Choosing one trial of a study: the pick rules, one implementation for the CLI and the app.

Grammar (``RULE``), documented in ``PICK_HELP`` and the README::

    best-metric | max-metric              the best metric; ties go to the faster trial
    max-throughput                        the fastest trial; ties go to the better metric
    knee                                  the front's knee (see `knee`)
    trial=N                               trial N, which must be complete
    fastest-within=X%                     fastest trial within X% of the best metric
    fastest-within=X                      fastest trial within X metric units of the best
    fastest-with=COND[,COND...]           fastest trial meeting every condition
    best-with=COND[,COND...]              best-metric trial meeting every condition
    COND = QUANTITY (>= | <=) NUMBER      QUANTITY: metric (or its name), throughput,
                                          speedup (over the baseline), memory_mb (peak)

Every rule that is not ``trial=N`` chooses among complete, feasible trials and breaks ties so
that it never returns a dominated trial. `str(pick)` writes a rule back in this grammar, so
the app's sliders show the exact text to paste into ``tuner export --pick``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from tuner.attrs import TrialAttr
from tuner.errors import UserError
from tuner.relative import baseline_of
from tuner.results import StudyView, TrialRecord, pareto_front
from tuner.workload import Direction


class PickKind(StrEnum):
    BEST_METRIC = "best-metric"
    MAX_THROUGHPUT = "max-throughput"
    KNEE = "knee"
    TRIAL = "trial"
    FASTEST_WITHIN = "fastest-within"
    FASTEST_WITH = "fastest-with"
    BEST_WITH = "best-with"


class Quantity(StrEnum):
    """What an SLO condition may constrain."""

    METRIC = "metric"
    THROUGHPUT = "throughput"
    SPEEDUP = "speedup"
    MEMORY_MB = "memory_mb"


@dataclass(frozen=True)
class Condition:
    """``quantity >= value`` (at_least) or ``quantity <= value``."""

    quantity: Quantity
    at_least: bool
    value: float

    def __str__(self) -> str:
        return f"{self.quantity}{'>=' if self.at_least else '<='}{_number(self.value)}"


@dataclass(frozen=True)
class Pick:
    kind: PickKind
    tolerance: float = 0.0  # FASTEST_WITHIN: X as written, in % of |best| or in metric units
    relative: bool = True  # FASTEST_WITHIN: X% (True) or X in metric units (False)
    conditions: tuple[Condition, ...] = ()  # FASTEST_WITH, BEST_WITH
    trial: int = -1  # TRIAL

    def __str__(self) -> str:
        """The rule in the grammar `parse_pick` reads."""
        match self.kind:
            case PickKind.TRIAL:
                return f"trial={self.trial}"
            case PickKind.FASTEST_WITHIN if self.relative:
                return f"fastest-within={_number(self.tolerance)}%"
            case PickKind.FASTEST_WITHIN:
                return f"fastest-within={_number(self.tolerance)}"
            case PickKind.FASTEST_WITH | PickKind.BEST_WITH:
                return f"{self.kind}={','.join(str(c) for c in self.conditions)}"
        return str(self.kind)


def _number(value: float) -> str:
    """The shortest text that reads back as exactly `value` (0.97, not 0.9700000000000001)."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


PICK_HELP = (
    "best-metric (alias max-metric), max-throughput, knee, trial=N, fastest-within=X% "
    "(within X% of the best metric: for metrics with a true zero, such as accuracy or error "
    "rate), fastest-within=X (within X metric units: for metrics whose zero is arbitrary or "
    "near the best, such as log-likelihood, R2, bits per char or a loss), "
    "fastest-with=COND[,COND] or best-with=COND[,COND], where COND is "
    "metric|throughput|speedup|memory_mb followed by >= or <= and a number "
    "(e.g. fastest-with=metric>=0.97, best-with=throughput>=12000)"
)

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_WITHIN = re.compile(rf"fastest-within=({_NUMBER})(%?)")
_TRIAL = re.compile(r"trial=(\d+)")
_SLO = re.compile(r"(fastest-with|best-with)=(.+)")
_CONDITION = re.compile(rf"\s*([A-Za-z_][\w.-]*)\s*(>=|<=)\s*({_NUMBER})\s*")
_ALIASES = {"max-metric": PickKind.BEST_METRIC}


def parse_pick(text: str, metric_name: str | None = None) -> Pick:
    """Parse a rule; `metric_name` lets a condition name the metric (``accuracy>=0.97``).

    Raises:
        UserError: ``--pick: ...`` with the grammar, on anything it cannot read.
    """
    text = text.strip()
    if text in _ALIASES:
        return Pick(_ALIASES[text])
    if text in (PickKind.BEST_METRIC, PickKind.MAX_THROUGHPUT, PickKind.KNEE):
        return Pick(PickKind(text))
    if match := _TRIAL.fullmatch(text):
        return Pick(PickKind.TRIAL, trial=int(match.group(1)))
    if match := _WITHIN.fullmatch(text):
        value, percent = float(match.group(1)), bool(match.group(2))
        if value < 0:
            raise UserError(f"--pick: {text!r}: the tolerance must be >= 0")
        return Pick(PickKind.FASTEST_WITHIN, tolerance=value, relative=percent)
    if match := _SLO.fullmatch(text):
        conditions = tuple(
            _condition(part, text, metric_name) for part in match.group(2).split(",")
        )
        return Pick(PickKind(match.group(1)), conditions=conditions)
    raise UserError(f"--pick: {text!r} is not understood; use {PICK_HELP}")


def _condition(part: str, text: str, metric_name: str | None) -> Condition:
    match = _CONDITION.fullmatch(part)
    if not match:
        raise UserError(
            f"--pick: {text!r}: condition {part.strip()!r} is not QUANTITY>=NUMBER or "
            "QUANTITY<=NUMBER; e.g. fastest-with=metric>=0.97"
        )
    name, op, value = match.groups()
    if metric_name is not None and name == metric_name:
        name = Quantity.METRIC
    if name not in set(Quantity):
        allowed = ", ".join(q.value for q in Quantity)
        also = f" (or {metric_name})" if metric_name else ""
        raise UserError(f"--pick: {text!r}: unknown quantity {name!r}; use {allowed}{also}")
    return Condition(Quantity(name), op == ">=", float(value))


def select(view: StudyView, pick: Pick) -> TrialRecord:
    """The trial `pick` names: from complete, feasible trials, never a dominated one."""
    if pick.kind is PickKind.TRIAL:
        return _by_number(view, pick.trial)
    candidates = view.completed()
    if not candidates:
        raise UserError(f"--pick: study {view.name!r} has no complete trial yet")
    better = 1.0 if view.direction is Direction.MAXIMIZE else -1.0

    def best_first(t: TrialRecord) -> tuple[float, float]:
        return better * t.values()[0], t.values()[1]

    def fastest_first(t: TrialRecord) -> tuple[float, float]:
        return t.values()[1], better * t.values()[0]

    match pick.kind:
        case PickKind.BEST_METRIC:
            return max(candidates, key=best_first)
        case PickKind.MAX_THROUGHPUT:
            return max(candidates, key=fastest_first)
        case PickKind.KNEE:
            return knee(pareto_front(candidates, view.direction), view.direction)
        case PickKind.FASTEST_WITHIN:
            best = better * max(candidates, key=best_first).values()[0]
            slack = abs(best) * pick.tolerance / 100 if pick.relative else pick.tolerance
            close = [t for t in candidates if _within(best - better * t.values()[0], slack)]
            return max(close, key=fastest_first)
    meets = _meets(view, pick.conditions)
    passing = [t for t in candidates if meets(t)]
    if not passing:
        raise UserError(
            f"--pick: no complete trial of {view.name!r} meets {str(pick).split('=', 1)[1]}; "
            "relax the condition"
        )
    return max(passing, key=fastest_first if pick.kind is PickKind.FASTEST_WITH else best_first)


def _within(gap: float, slack: float) -> bool:
    """gap <= slack, where a gap exactly at the slack counts as within despite rounding
    (0.99 - 0.9801 is 0.00990000000000002, but 0.9801 is exactly 1% below 0.99)."""
    return gap <= slack or math.isclose(gap, slack, rel_tol=1e-9, abs_tol=1e-12)


def _meets(view: StudyView, conditions: tuple[Condition, ...]) -> Callable[[TrialRecord], bool]:
    baseline = baseline_of(view)
    if baseline.trial is None and any(c.quantity is Quantity.SPEEDUP for c in conditions):
        raise UserError(f"--pick: speedup needs the baseline, but {baseline.note}")

    def value(trial: TrialRecord, quantity: Quantity) -> float | None:
        match quantity:
            case Quantity.METRIC:
                return trial.metric
            case Quantity.THROUGHPUT:
                return trial.throughput
            case Quantity.SPEEDUP:
                return baseline.versus(trial).speedup
        peak = trial.attrs.get(TrialAttr.PEAK_MEMORY_BYTES)
        return peak / 2**20 if isinstance(peak, int | float) else None

    def meets(trial: TrialRecord) -> bool:
        for condition in conditions:
            got = value(trial, condition.quantity)
            if got is None:
                return False
            gap = condition.value - got if condition.at_least else got - condition.value
            if not _within(gap, 0.0):
                return False
        return True

    return meets


def knee(front: list[TrialRecord], direction: Direction) -> TrialRecord:
    """The front point farthest from the line joining the front's two extremes.

    Both objectives are first scaled to [0, 1] over the front, so neither unit dominates
    the distance (the "knee" of Das, 1999 and Branke et al., 2004: where giving up a little
    of one objective stops buying much of the other). Ties go to the better metric.

    Raises:
        UserError: the front has fewer than three points, so it has no knee.
    """
    if len(front) < 3:
        raise UserError(
            f"--pick: knee needs a front of three or more trials, this one has {len(front)}; "
            "use best-metric or max-throughput"
        )
    better = 1.0 if direction is Direction.MAXIMIZE else -1.0
    metrics = [better * t.values()[0] for t in front]
    speeds = [t.values()[1] for t in front]

    def scaled(values: list[float]) -> list[float]:
        low, high = min(values), max(values)
        return [(v - low) / (high - low) if high > low else 0.0 for v in values]

    points = list(zip(scaled(metrics), scaled(speeds), strict=True))
    (x1, y1), (x2, y2) = max(points), max(points, key=lambda p: (p[1], p[0]))
    length = math.hypot(x2 - x1, y2 - y1) or 1.0

    def distance(i: int) -> tuple[float, float]:
        x, y = points[i]
        return abs((x2 - x1) * (y1 - y) - (x1 - x) * (y2 - y1)) / length, metrics[i]

    return front[max(range(len(front)), key=distance)]


def _by_number(view: StudyView, number: int) -> TrialRecord:
    trial = view.trial(number)
    if trial is None:
        raise UserError(f"--pick: study {view.name!r} has no trial {number}")
    if trial.state != "COMPLETE":
        reason = f" ({trial.failure})" if trial.failure else ""
        raise UserError(f"--pick: trial {number} is {trial.state}{reason}; pick a complete trial")
    return trial
