"""Every trial judged against the study's baseline: × speedup and Δ metric.

A throughput means little alone (is 9,000 samples/s good?), and a fast trial that trains to
chance accuracy must never be offered as "the fastest config" without a warning. The baseline
(plain PyTorch defaults, the study's first trial) gives both a scale. Δ is signed so that
positive is better for minimized and maximized metrics alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tuner.results import StudyView, TrialRecord
from tuner.targets import SpeedObjective
from tuner.workload import Direction


@dataclass(frozen=True)
class Versus:
    """One trial against the baseline; None where there is nothing to compare with."""

    #: objective 1 over the baseline's: throughput, or (time to target) the baseline's seconds
    #: over the trial's; None where either never reached the target
    speedup: float | None
    delta: float | None  # metric gain over the baseline, in metric units; > 0 is better
    not_better: bool  # its metric does not beat the baseline's by more than the noise
    worse: bool = False  # ... and is below it by more than the noise: a faster, worse model


@dataclass(frozen=True)
class Baseline:
    """The study's reference trial, or why there is none (`note`)."""

    trial: TrialRecord | None  # complete, with values
    note: str  # empty when `trial` is usable
    direction: Direction
    noise: float
    speed: SpeedObjective = field(default_factory=SpeedObjective)  # what objective 1 is

    def versus(self, trial: TrialRecord) -> Versus:
        if self.trial is None or trial.metric is None or trial.throughput is None:
            return Versus(None, None, False)
        metric, throughput = self.trial.values()
        sign = 1.0 if self.direction is Direction.MAXIMIZE else -1.0
        delta = sign * (trial.metric - metric) + 0.0  # + 0.0: never "-0" for the baseline
        # A rate of 0 is a run that never reached the target: no time to compare.
        speedup = trial.throughput / throughput if min(throughput, trial.throughput) > 0 else None
        judged = not trial.is_baseline
        return Versus(
            speedup, delta, judged and delta <= self.noise, judged and delta < -self.noise
        )


def baseline_of(view: StudyView) -> Baseline:
    """The first complete baseline trial of `view`, or a note saying why there is none."""
    marked = [t for t in view.trials if t.is_baseline]
    complete = [t for t in marked if t.state == "COMPLETE" and t.metric is not None]
    note = ""
    if not marked:
        note = "this study has no baseline trial (it was created before tuner ran baselines)"
    elif not complete:
        first = marked[0]
        why = f" ({first.failure})" if first.failure else ""
        note = f"baseline trial {first.number} is {first.state}{why}: nothing to compare with"
    return Baseline(complete[0] if complete else None, note, view.direction, view.noise, view.speed)
