"""Asymmetric fidelity: throughput is final long before the metric is.

A trial's speed is known after one timed window (or before it starts, when a trial with the
same performance key was measured); its metric needs the whole budget. So bound its final
metric optimistically, by the best final metric of the finished trials whose learning curve
was no better at the same evaluation, plus the metric's noise; it takes at least
`MIN_SIMILAR` of them, since one trial's curve is an anecdote (schedules with warm-up start
slow). If a finished trial reaches that bound and is faster beyond the throughput noise
margin, this trial cannot reach the front unless it beats every trial whose curve it matched.

Before the first evaluation there is no curve, only the speed: the trials that bound it are
the finished ones about as slow or slower (within the throughput margin), and the bound is the
best final metric they reached, without the noise (with it, equal metrics could never stop a
slower key). It also takes `MIN_SIMILAR` of them, so a study explores slower configs until two
of them have finished: a rule that bounded a trial by the best metric of all would stop every
config slower than the study's best-scoring trial before it learned anything, and the front
could never grow towards slower, better configs. What is left is a bet, that slowness which has
not bought metric twice will not buy it now; `benchmarks/search_efficiency.py` measures what it
buys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tuner.workload import Direction

#: Finished trials with as poor a curve that it takes to bound a trial's final metric.
MIN_SIMILAR = 2


@dataclass(frozen=True)
class Finished:
    """A feasible finished trial: its final metric, throughput and learning curve."""

    number: int
    metric: float
    throughput: float
    curve: Mapping[int, float]  # evaluation number (1-based) -> metric


def optimistic_final(
    finished: Sequence[Finished],
    evaluation: int,
    metric: float | None,
    throughput: float,
    *,
    direction: Direction,
    noise: float,
    margin: float,
) -> float | None:
    """The best final metric a trial at (`evaluation`, `metric`) may still reach, or None
    when fewer than `MIN_SIMILAR` finished trials had as poor a curve. With no metric yet, the
    best final metric of the finished trials no faster than `throughput` (beyond `margin`),
    noise not added (see the module docstring)."""
    better = max if direction is Direction.MAXIMIZE else min
    sign = 1.0 if direction is Direction.MAXIMIZE else -1.0
    if metric is None:
        similar = [f for f in finished if f.throughput <= throughput * (1 + margin)]
        slack = 0.0
    else:
        similar = [
            f
            for f in finished
            if evaluation in f.curve and sign * f.curve[evaluation] <= sign * metric + noise
        ]
        slack = noise
    if len(similar) < MIN_SIMILAR:
        return None
    return better(f.metric for f in similar) + sign * slack


def dominated_on_speed(
    throughput: float,
    evaluation: int,
    metric: float | None,
    finished: Sequence[Finished],
    *,
    direction: Direction,
    noise: float,
    margin: float,
) -> str | None:
    """Why a trial of this `throughput` (and curve so far) cannot reach the front, or None."""
    bound = optimistic_final(
        finished,
        evaluation,
        metric,
        throughput,
        direction=direction,
        noise=noise,
        margin=margin,
    )
    if bound is None:
        return None
    sign = 1.0 if direction is Direction.MAXIMIZE else -1.0
    faster = sorted(
        (
            f
            for f in finished
            if sign * f.metric >= sign * bound and f.throughput > throughput * (1 + margin)
        ),
        key=lambda f: f.throughput,
        reverse=True,
    )
    if not faster:
        return None
    best = faster[0]
    if metric is None:
        return (
            f"dominated on speed before its first evaluation by trial #{best.number}: "
            f"{throughput:,.0f} samples/s against {best.throughput:,.0f}, and the finished trials "
            f"as slow as it reached at best {bound:.4g}, where trial #{best.number} reached "
            f"{best.metric:.4g}"
        )
    return (
        f"dominated on speed at evaluation {evaluation} by trial #{best.number}: "
        f"{throughput:,.0f} samples/s against {best.throughput:,.0f}, and even the best final "
        f"metric a trial with a similar curve reached ({bound:.4g}, noise included) would not "
        f"beat its {best.metric:.4g}"
    )
