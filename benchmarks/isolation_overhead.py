"""Isolation overhead: one trial in the supervised warm worker vs the same trial in-process.

Every trial of a study runs in a `tuner.supervisor.TrialProcess`; this measures what that
costs per trial once the worker is warm. The same short config (digits, DEFAULT_BASELINE, a
budget of well under a second to about a second) runs in interleaved rounds: in-process
(`run_trial` in this process), supervised (`TrialProcess.run`), alternating which goes first,
with the same seed within a round. Wall time is measured around each call. The worker is
started and warmed by one untimed trial first; that start-up (spawn, import torch and the
workload, the first trial's caches) is reported on its own, since a study pays it once per
worker, not once per trial.

Printed: the median wall seconds of each side, the median of the paired per-round
differences (supervised - in-process) and ratios, the part of the supervised wall time spent
outside the trial (pipe, pickling, gc + malloc_trim in the worker), and the added time as a
share of a 10 s trial. Goals: added <= 0.3 s per trial, and <= 5% of a 10 s trial.

    python -m benchmarks.isolation_overhead [--rounds 12] [--steps 60] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from tuner.budget import Budget
from tuner.config import DEFAULT_BASELINE
from tuner.harness import TrialResult, run_trial
from tuner.supervisor import Job, TrialProcess
from tuner.workload import load_workload

ADDED_GOAL_S = 0.3
SHARE_GOAL = 0.05
REFERENCE_TRIAL_S = 10.0


def timed(call: Callable[[int], TrialResult], seed: int) -> tuple[float, TrialResult]:
    """Wall seconds around `call(seed)`, and its result."""
    start = time.perf_counter()
    result = call(seed)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objective", default="digits")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps per trial")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on both sides")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    workload = load_workload(args.objective)
    budget = Budget(steps=args.steps)
    device = torch.device("cpu")
    worker = TrialProcess(threads=args.threads)

    def in_process(seed: int) -> TrialResult:
        return run_trial(workload, DEFAULT_BASELINE, budget, device, seed)

    def supervised(seed: int) -> TrialResult:
        outcome = worker.run(Job(args.objective, DEFAULT_BASELINE, budget, "cpu", seed))
        if outcome.result is None:
            raise RuntimeError(f"the supervised trial failed: {outcome.failure}")
        return outcome.result

    sides: dict[str, Callable[[int], TrialResult]] = {
        "in-process": in_process,
        "supervised": supervised,
    }
    try:
        first_s, first = timed(supervised, 0)  # spawn + imports + first trial
        timed(in_process, 0)  # this process's caches warm too (data, allocator)
        walls: dict[str, list[float]] = {name: [] for name in sides}
        inside: dict[str, list[float]] = {name: [] for name in sides}
        for round_ in range(args.rounds):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            for name in order:
                wall, result = timed(sides[name], round_ + 1)
                walls[name].append(wall)
                inside[name].append(result.trial_s)
        if worker.started != 1:
            raise RuntimeError(f"the worker was replaced: {worker.started} workers started")
    finally:
        worker.close()

    print(
        f"workload {workload.name}, DEFAULT_BASELINE (adam, batch {DEFAULT_BASELINE.batch_size}, "
        f"fp32, eager), budget steps={args.steps}; {args.threads} thread(s); "
        f"{args.rounds} interleaved rounds"
    )
    print(f"{'':>12}{'median wall':>13}{'in trial_s':>12}   per-round wall (s)")
    for name in sides:
        print(
            f"{name:>12}{statistics.median(walls[name]):11.3f} s"
            f"{statistics.median(inside[name]):10.3f} s   "
            + " ".join(f"{w:.3f}" for w in walls[name])
        )
    added = [s - p for s, p in zip(walls["supervised"], walls["in-process"], strict=True)]
    ratios = [s / p for s, p in zip(walls["supervised"], walls["in-process"], strict=True)]
    outside = [w - t for w, t in zip(walls["supervised"], inside["supervised"], strict=True)]
    added_s = statistics.median(added)
    share = added_s / REFERENCE_TRIAL_S
    warm_s = statistics.median(walls["supervised"])
    print(
        f"worker start-up (first supervised call {first_s:.2f} s, its trial {first.trial_s:.2f} "
        f"s): about {first_s - warm_s:.2f} s more than a warm call, paid once per worker"
    )
    print(
        f"added per trial, supervised - in-process (median of paired rounds): {added_s:+.3f} s "
        f"(rounds {min(added):+.3f} .. {max(added):+.3f}); ratio {statistics.median(ratios):.3f}"
    )
    print(
        f"  of which outside the worker's trial (pipe, pickling, gc + malloc_trim): "
        f"{statistics.median(outside):.3f} s median"
    )
    print(
        f"goal added <= {ADDED_GOAL_S} s per trial: "
        f"{'met' if added_s <= ADDED_GOAL_S else 'MISSED'} ({added_s:+.3f} s)"
    )
    print(
        f"goal <= {SHARE_GOAL:.0%} of a {REFERENCE_TRIAL_S:g} s trial: "
        f"{'met' if share <= SHARE_GOAL else 'MISSED'} ({share:+.1%})"
    )


if __name__ == "__main__":
    main()
