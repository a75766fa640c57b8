"""Asynchronous successive halving whose promotion is by non-dominated rank.

At each rung, the trials that reached it are sorted into Pareto fronts of (metric at the
rung, throughput) with the metric's own direction; a trial goes on while fewer than
1/reduction_factor of them lie in fronts ahead of its own. Ties go the trial's way: every
trial on the first front goes on, however many there are. Asynchronous (a trial is judged
against whoever reached the rung before it), so no worker ever waits for a rung to fill.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tuner.workload import Direction


@dataclass(frozen=True)
class Point:
    """One trial at one rung: its metric there and its throughput (samples/s)."""

    number: int
    metric: float
    throughput: float


def dominates(a: Point, b: Point, direction: Direction) -> bool:
    """a is at least as good as b on both objectives and better on one."""
    sign = 1.0 if direction is Direction.MAXIMIZE else -1.0
    ma, mb = sign * a.metric, sign * b.metric
    return ma >= mb and a.throughput >= b.throughput and (ma > mb or a.throughput > b.throughput)


def front_ranks(points: Sequence[Point], direction: Direction) -> list[int]:
    """The non-dominated front (0 = Pareto front) of every point; O(n^2), n is a study's
    trials at one rung."""
    count = [0] * len(points)  # how many points dominate each
    beaten: list[list[int]] = [[] for _ in points]
    for i, a in enumerate(points):
        for j, b in enumerate(points):
            if i != j and dominates(a, b, direction):
                beaten[i].append(j)
                count[j] += 1
    ranks = [0] * len(points)
    current = [i for i, c in enumerate(count) if c == 0]
    rank = 0
    while current:
        following: list[int] = []
        for i in current:
            ranks[i] = rank
            for j in beaten[i]:
                count[j] -= 1
                if count[j] == 0:
                    following.append(j)
        current, rank = following, rank + 1
    return ranks


def halving(
    trial: Point,
    peers: Sequence[Point],
    *,
    rung: int,
    evaluation: int,
    reduction_factor: int,
    min_trials: int,
    direction: Direction,
) -> str | None:
    """Why `trial` stops at this rung, or None when it goes on.

    `peers` are the other trials that reached the same rung (any state: running, stopped or
    finished). Fewer than `min_trials` in all and the rung keeps everyone.
    """
    points = [*peers, trial]
    if len(points) < min_trials:
        return None
    ranks = front_ranks(points, direction)
    own = ranks[-1]
    keep = math.ceil(len(points) / reduction_factor)
    ahead = sum(rank < own for rank in ranks)
    if ahead < keep:
        return None
    dominating = sorted(
        (p for p in peers if dominates(p, trial, direction)),
        key=lambda p: p.throughput,
        reverse=True,
    )
    shown = ", ".join(f"#{p.number}" for p in dominating[:3])
    more = f" and {len(dominating) - 3} more" if len(dominating) > 3 else ""
    return (
        f"dominated at rung {rung} (evaluation {evaluation}) by trials {shown}{more}: "
        f"front {own + 1} of the {len(points)} trials there, where only the best {keep} go on"
    )
