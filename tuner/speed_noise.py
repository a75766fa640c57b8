"""Which front points are faster than their neighbours by more than the noise.

Reads what `tuner.remeasure` stored: each re-timed trial's throughput ratios to the baseline
in the same interleaved rounds. Two front points whose ratio ranges overlap are one speed as
far as this host can tell, so readers mark them instead of ranking them. Torch-free.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from tuner.attrs import StudyAttr
from tuner.results import StudyView, TrialRecord


@dataclass(frozen=True)
class Retimed:
    """One trial's re-timed speed: min, median and max ratio to the baseline."""

    low: float
    median: float
    high: float

    def overlaps(self, other: Retimed) -> bool:
        return self.low <= other.high and other.low <= self.high


def retimed(view: StudyView) -> dict[int, Retimed]:
    """The re-timed trials of a study (empty when it was never re-timed)."""
    stored = view.attrs.get(StudyAttr.FRONT_REMEASURE)
    if not isinstance(stored, dict):
        return {}
    found: dict[int, Retimed] = {}
    for number, ratios in (stored.get("ratios") or {}).items():
        if isinstance(ratios, list) and ratios:
            ordered = sorted(float(r) for r in ratios)
            found[int(number)] = Retimed(ordered[0], ordered[len(ordered) // 2], ordered[-1])
    return found


def within_noise(view: StudyView, front: list[TrialRecord]) -> dict[int, int]:
    """Front points whose re-timed speed overlaps the next slower front point's: {trial:
    that neighbour}. Points not re-timed (the front moved since) are never marked."""
    times = retimed(view)
    ordered = sorted((r for r in front if r.number in times), key=lambda r: times[r.number].median)
    return {
        faster.number: slower.number
        for slower, faster in itertools.pairwise(ordered)
        if times[faster.number].overlaps(times[slower.number])
    }
