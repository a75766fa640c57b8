"""The `[pruning]` section of a study spec, as a value. Torch-free, so a spec validates fast."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pruning:
    """How trials are stopped early.

    Attributes:
        enabled: Stop trials by rung (successive halving over the learning curve) and by
            speed (a trial whose measured throughput, even with the best metric any similar
            trial reached, is dominated by finished trials).
        reduction_factor: At each rung a trial goes on only if it ranks in the best
            1/reduction_factor of the trials that reached that rung, by non-dominated sorting
            of (metric at the rung, throughput).
        min_evaluations: The first rung is the learning curve's evaluation with this number;
            later rungs are at min_evaluations x reduction_factor**k evaluations, before the
            last (which is the trial's result).
        min_trials: Trials that must have reached a rung before anything is stopped there:
            with fewer, a rank says little.
        throughput_cache: Reuse the throughput measured for a performance key (batch,
            precision, compile mode, loader and layout knobs, optimizer and its
            implementation): a trial whose key was measured is judged before it trains.
        margin: Relative throughput difference treated as noise: a trial is only dominated
            on speed by a trial faster by more than this.
    """

    enabled: bool = True
    reduction_factor: int = 3
    min_evaluations: int = 1
    min_trials: int = 4
    throughput_cache: bool = True
    margin: float = 0.05

    def rungs(self, evaluations: int) -> tuple[int, ...]:
        """The evaluation numbers (1-based) at which trials are ranked; never the last."""
        found: list[int] = []
        rung = self.min_evaluations
        while rung < evaluations:
            found.append(rung)
            rung *= self.reduction_factor
        return tuple(found)
