"""Speed as time to a target metric (DAWNBench style), read off a trial's learning curve.

A study scores speed one of two ways (`study.speed` in a spec): ``throughput``, the median
samples/s of the timed windows, or ``time_to_target``, the timed training seconds a trial took
to first reach `study.target` on the validation metric. Samples/s says nothing about how many
samples a config needs; time to target weighs both (Coleman et al., "DAWNBench: An End-to-End
Deep Learning Benchmark and Competition", NeurIPS ML Systems Workshop 2017).

The curve has one point per evaluation, so the time is interpolated linearly between the last
point short of the target and the first that reaches it; more `budget.evaluations` give a
finer reading. A trial that reaches the target at its first evaluation is given that point's
time: nothing before it was measured, so anything earlier would be a guess (a conservative
reading, and one that favours no config). A trial that never reaches it has no time: it is
infeasible (constraint ``target``, its closest approach's distance to the target).

Every reader ranks trials by "higher is faster", so the stored objective stays a rate:
``3600 / seconds``, runs to target per hour, and 0 for a trial that never reached it. Torch-
and Optuna-free, so readers use it too.

Example:
    >>> curve = [{"train_s": 1.0, "metric": 0.80}, {"train_s": 2.0, "metric": 0.96}]
    >>> time_to_target(curve, 0.95, Direction.MAXIMIZE)
    1.9375
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tuner.workload import Direction

#: Seconds per hour: objective 1 of a time-to-target study is this over the seconds.
RUNS_PER_HOUR = 3600.0


class Speed(StrEnum):
    """What a study's second objective measures."""

    THROUGHPUT = "throughput"  # median samples/s
    TIME_TO_TARGET = "time_to_target"  # seconds to reach the target metric, as runs per hour


def reaches(metric: float, target: float, direction: Direction) -> bool:
    """Whether `metric` is at or past `target` in the metric's better direction."""
    return metric >= target if direction is Direction.MAXIMIZE else metric <= target


def time_to_target(
    curve: Sequence[Mapping[str, Any]], target: float, direction: Direction
) -> float | None:
    """Timed training seconds until the curve first reaches `target`; None if it never does.

    `curve` is a trial's stored learning curve (`TrialAttr.CURVE`): points with ``train_s``
    (timed training seconds so far, evaluations excluded) and ``metric``, in order. Between
    the last point short of the target and the first reaching it the time is interpolated
    linearly; reached at the first point, it is that point's time (see the module docstring).
    A later dip below the target does not undo it: the run got there.

    Example:
        >>> curve = [{"train_s": 2.0, "metric": 1.5}, {"train_s": 4.0, "metric": 0.5}]
        >>> time_to_target(curve, 1.0, Direction.MINIMIZE)
        3.0
        >>> time_to_target(curve, 0.1, Direction.MINIMIZE) is None
        True
    """
    before: Mapping[str, Any] | None = None
    for point in curve:
        seconds, metric = float(point["train_s"]), float(point["metric"])
        if reaches(metric, target, direction):
            if before is None:
                return seconds
            start_s, start = float(before["train_s"]), float(before["metric"])
            # start does not reach the target and metric does, so they differ.
            return start_s + (seconds - start_s) * (target - start) / (metric - start)
        before = point
    return None


def target_gap(curve: Sequence[Mapping[str, Any]], target: float, direction: Direction) -> float:
    """How far the curve's best point is from the target, in metric units: > 0 when it never
    reached it (the constraint the sampler learns from), <= 0 when it did.

    Raises:
        ValueError: the curve is empty.
    """
    if not curve:
        raise ValueError("an empty learning curve has no distance to the target")
    metrics = [float(point["metric"]) for point in curve]
    if direction is Direction.MAXIMIZE:
        return target - max(metrics)
    return min(metrics) - target


@dataclass(frozen=True)
class SpeedObjective:
    """How a study scores speed, and how every reader labels it.

    Stored on the study (`StudyAttr.SPEED`, `to_dict`); readers build it with `from_attr`,
    which reads a study made before the choice existed as ``throughput``.
    """

    speed: Speed = Speed.THROUGHPUT
    target: float | None = None  # the metric value to reach, with TIME_TO_TARGET

    @property
    def to_target(self) -> bool:
        return self.speed is Speed.TIME_TO_TARGET

    def to_dict(self) -> dict[str, Any]:
        return {"objective": self.speed.value, "target": self.target}

    @classmethod
    def from_attr(cls, value: Any) -> SpeedObjective:
        """The stored choice; anything unreadable (or absent: an older study) is throughput."""
        # A list, not a set: a stored value may be unhashable (a list from a hand-made study).
        if not isinstance(value, Mapping) or value.get("objective") not in list(Speed):
            return cls()
        return cls(Speed(value["objective"]), _figure(value.get("target")))

    @property
    def objective_name(self) -> str:
        """Optuna's name for objective 1."""
        return "runs_to_target_per_hour" if self.to_target else "throughput"

    @property
    def header(self) -> str:
        """The speed column's header: what `cell` shows."""
        return "s to target" if self.to_target else "samples/s"

    @property
    def rate_label(self) -> str:
        """The unit of the stored objective 1 itself."""
        return "runs to target per hour" if self.to_target else "samples/s"

    @property
    def axis_title(self) -> str:
        """A chart axis of the stored objective 1 (a rate: higher is faster)."""
        if self.to_target:
            return "runs to target per hour (3600 / s to target)"
        return "throughput (samples/s)"

    def seconds(self, rate: Any) -> float | None:
        """Seconds to the target from a stored rate; None for no time (never reached)."""
        value = _figure(rate)
        return None if value is None or value <= 0 else RUNS_PER_HOUR / value

    def cell(self, rate: Any) -> str:
        """Objective 1 as a table shows it: samples/s, or seconds to the target (``never``
        when the trial did not reach it); ``?`` when the stored value is not a number."""
        value = _figure(rate)
        if value is None:
            return "?"
        if not self.to_target:
            return f"{value:,.0f}"
        seconds = self.seconds(value)
        return "never" if seconds is None else seconds_text(seconds)

    def with_unit(self, rate: Any) -> str:
        """`cell` with its unit, for a sentence: ``9,120 samples/s``, ``3.41 s to target``."""
        cell = self.cell(rate)
        if not self.to_target:
            return f"{cell} samples/s"
        return "never reached the target" if cell == "never" else f"{cell} s to target"

    def describe(self, metric_name: str) -> str:
        """The objective in a report's first line."""
        if not self.to_target:
            return "throughput (maximize)"
        target = "?" if self.target is None else f"{self.target:g}"
        return f"time to {metric_name} {target} (minimize; stored as runs per hour)"

    @property
    def speedup_note(self) -> str:
        if self.to_target:
            return "speedup: the baseline's time to target over the trial's"
        return "speedup: throughput over the baseline's"


def seconds_text(seconds: float) -> str:
    """Seconds with three significant figures, whole seconds past 100: ``0.0412``, ``3.41``,
    ``1,205``."""
    return f"{seconds:.3g}" if seconds < 100 else f"{seconds:,.0f}"


def _figure(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
