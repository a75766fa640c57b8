"""Worker memory: does a warm worker's resident memory stay flat over many trials?

A study reuses one `tuner.supervisor.TrialProcess` for all its trials, so anything a trial
leaves behind accumulates. This runs `--trials` short trials (digits, DEFAULT_BASELINE, a
budget of 20 steps) in one fresh warm worker and records `Outcome.rss_bytes` after each (the
worker reads it after its gc.collect + malloc_trim), for two configs: plain (compile off) and
``compile_mode = "default"`` (torch.compile; the harness resets dynamo before each compiled
trial). The least-squares RSS slope over trials 10..N is printed in MB/trial.

For contrast, the same trials run in this process (`run_trial` called directly, RSS read from
/proc/self/statm after each, no gc or malloc_trim in between): what a study would grow by
without the worker. Goal: worker slope < 0.5 MB/trial for both configs.

    python -m benchmarks.worker_memory [--trials 50] [--steps 20] [--no-in-process]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import torch

from tuner.budget import Budget
from tuner.config import DEFAULT_BASELINE, CompileMode, TrialConfig
from tuner.harness import TrialResult, run_trial
from tuner.supervisor import Job, TrialProcess
from tuner.workload import load_workload

SLOPE_GOAL_MB = 0.5
MB = 1e6
CONFIGS = {
    "plain": DEFAULT_BASELINE,
    "compiled": dataclasses.replace(DEFAULT_BASELINE, compile_mode=CompileMode.DEFAULT),
}


@dataclasses.dataclass
class Series:
    """RSS after each trial (bytes) and the trials' own figures."""

    rss: list[int] = dataclasses.field(default_factory=list)
    results: list[TrialResult] = dataclasses.field(default_factory=list)
    wall_s: float = 0.0

    def slope_mb(self, first: int) -> float:
        """Least-squares MB per trial over trials `first`..N (numbered from 1)."""
        trials = list(range(first, len(self.rss) + 1))
        values = [b / MB for b in self.rss[first - 1 :]]
        return statistics.linear_regression(trials, values).slope

    def span(self, first: int) -> str:
        return (
            f"{self.rss[0] / MB:5.0f} / {self.rss[first - 1] / MB:5.0f} / {self.rss[-1] / MB:5.0f}"
        )


def own_rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def in_worker(
    objective: str, config: TrialConfig, budget: Budget, trials: int, threads: int
) -> Series:
    series = Series()
    worker = TrialProcess(threads=threads)
    start = time.perf_counter()
    try:
        for seed in range(trials):
            outcome = worker.run(Job(objective, config, budget, "cpu", seed))
            if outcome.result is None or outcome.rss_bytes is None:
                raise RuntimeError(f"trial {seed + 1} in the worker failed: {outcome.failure}")
            series.rss.append(outcome.rss_bytes)
            series.results.append(outcome.result)
        if worker.started != 1:
            raise RuntimeError(f"the worker was replaced: {worker.started} workers started")
    finally:
        worker.close()
    series.wall_s = time.perf_counter() - start
    return series


def in_process(objective: str, config: TrialConfig, budget: Budget, trials: int) -> Series:
    series = Series()
    workload = load_workload(objective)
    start = time.perf_counter()
    for seed in range(trials):
        series.results.append(run_trial(workload, config, budget, torch.device("cpu"), seed))
        series.rss.append(own_rss())
    series.wall_s = time.perf_counter() - start
    return series


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objective", default="digits")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per trial")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--no-in-process", action="store_true", help="skip the in-process contrast (half time)"
    )
    args = parser.parse_args()
    if args.trials < 3:
        parser.error("--trials must be at least 3 to fit a slope")
    torch.set_num_threads(args.threads)
    budget = Budget(steps=args.steps, warmup_steps=2, windows=3, evaluations=1)
    first = 10 if args.trials >= 20 else max(1, args.trials // 2)

    worker = {
        name: in_worker(args.objective, c, budget, args.trials, args.threads)
        for name, c in CONFIGS.items()
    }
    local = (
        {}
        if args.no_in_process
        else {
            name: in_process(args.objective, c, budget, args.trials) for name, c in CONFIGS.items()
        }
    )

    print(
        f"workload {args.objective}, DEFAULT_BASELINE, budget steps={args.steps}; "
        f"{args.trials} trials per series; slope over trials {first}..{args.trials}; "
        f"{args.threads} thread(s)"
    )
    span = f"RSS MB: trial 1 / {first} / {args.trials}"
    print(f"{'':<22}{'MB/trial':>9}  {span:>26}  {'wall':>6}  median compile_s")
    rows = [(f"worker, {name}", series) for name, series in worker.items()]
    rows += [(f"in-process, {name}", series) for name, series in local.items()]
    for label, series in rows:
        compile_s = statistics.median(r.compile_s for r in series.results[1:])
        print(
            f"{label:<22}{series.slope_mb(first):+9.3f}  {series.span(first):>26}"
            f"  {series.wall_s:5.0f}s  {compile_s:.2f} s"
        )
    for name, series in worker.items():
        slope = series.slope_mb(first)
        verdict = "met" if slope < SLOPE_GOAL_MB else "MISSED"
        print(f"goal worker slope < {SLOPE_GOAL_MB} MB/trial, {name}: {verdict} ({slope:+.3f})")


if __name__ == "__main__":
    main()
