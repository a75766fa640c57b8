"""Scaling: trials per hour with 2 local workers x 1 thread vs 1 worker x 1 thread.

`run_study(..., workers=2)` runs two worker threads in one runner, each supervising its own
trial process with max(1, min(spec threads, cores // workers)) torch threads. On a 2-core
machine two 1-thread workers should come close to twice the trials per hour of one (FACTS:
two 1-thread processes give 1.3-1.4x the throughput of one 2-thread process).

Every measured run does identical work: the same spec (digits, a search space that fixes every
knob to DEFAULT_BASELINE, so every trial is the same config; a fixed epoch budget; threads 1;
the same seed and n_trials), each into its own fresh journal storage in a temp dir. Runs
alternate 1-worker and 2-worker in an ABBA order (1, 2, 2, 1, ...), so a drift in host speed
hits both alike. The wall time of each `run_study` call (study creation and worker start-up
included, as a user sees it) gives trials/hour; the best and the median of each side are
compared. Also printed: the median in-worker trial seconds, to show how much of the gap is
two trials sharing the machine rather than fixed costs. Goal: ratio >= 1.6.

    python -m benchmarks.scaling [--trials 12] [--epochs 6] [--repeats 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import optuna

from tuner.attrs import TrialAttr
from tuner.results import TrialRecord
from tuner.runner import prepare, run_study
from tuner.spec import StudySpec, load_spec

RATIO_GOAL = 1.6

#: Every knob fixed: no knob is searched, so every trial trains DEFAULT_BASELINE.
FIXED_SPACE = """\
[optimizer]
choices = ["adam"]

[batch]
batch_size = 32
"""

SPEC = """\
[study]
name = "scaling"
objective = "digits"
space = "fixed.toml"
n_trials = {trials}
seed = 0
sampler = "random"

[budget]
epochs = {epochs}
time_limit_s = 120

[run]
device = "cpu"
threads = 1
"""


@dataclasses.dataclass(frozen=True)
class Run:
    workers: int
    wall_s: float
    trial_s: tuple[float, ...]

    @property
    def per_hour(self) -> float:
        return len(self.trial_s) * 3600 / self.wall_s


def measure(spec: StudySpec, folder: Path, index: int, workers: int) -> Run:
    """One run_study call into a fresh study and journal; its wall time and trial seconds."""
    name = f"scaling-{index}-w{workers}"
    spec = dataclasses.replace(spec, name=name, storage=f"journal:{folder / name}.log")
    prepared = prepare(spec)
    records: list[TrialRecord] = []
    start = time.perf_counter()
    summary = run_study(prepared, workers=workers, on_trial=records.append)
    wall = time.perf_counter() - start
    failed = [r for r in records if r.state != "COMPLETE"]
    if failed or summary.ran != spec.n_trials:
        raise RuntimeError(
            f"{name}: {summary.ran} of {spec.n_trials} trials ran, {len(failed)} not complete"
        )
    return Run(workers, wall, tuple(float(r.attrs[TrialAttr.TRIAL_S]) for r in records))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12, help="trials per measured run")
    parser.add_argument("--epochs", type=int, default=6, help="budget of each trial")
    parser.add_argument("--repeats", type=int, default=2, help="measured runs per side")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    runs: dict[int, list[Run]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "fixed.toml").write_text(FIXED_SPACE)
        (folder / "spec.toml").write_text(SPEC.format(trials=args.trials, epochs=args.epochs))
        spec = load_spec(folder / "spec.toml")
        order = [w for i in range(args.repeats) for w in ((1, 2) if i % 2 == 0 else (2, 1))]
        for index, workers in enumerate(order):
            load = os.getloadavg()[0]
            run = measure(spec, folder, index, workers)
            runs[workers].append(run)
            print(
                f"  run {index + 1}: {workers} worker(s) x 1 thread, {args.trials} trials in "
                f"{run.wall_s:5.1f} s = {run.per_hour:7,.0f} trials/h "
                f"(host load average {load:.1f} before it, {os.getloadavg()[0]:.1f} after)",
                flush=True,
            )

    print(
        f"digits, every trial DEFAULT_BASELINE, budget epochs={args.epochs}, {args.trials} trials "
        f"per run, {args.repeats} run(s) per side in ABBA order; journal storage"
    )
    print(f"{'':>22}{'best':>10}{'median':>10}   median trial_s in the worker")
    best: dict[int, float] = {}
    median: dict[int, float] = {}
    for workers, side in runs.items():
        best[workers] = max(r.per_hour for r in side)
        median[workers] = statistics.median(r.per_hour for r in side)
        trial_s = statistics.median(s for r in side for s in r.trial_s)
        print(
            f"{workers} worker(s) x 1 thread{best[workers]:10,.0f}{median[workers]:10,.0f}"
            f"   {trial_s:.2f} s"
        )
    ratio = best[2] / best[1]
    print(
        f"ratio 2 workers / 1 worker, trials/h: best {ratio:.2f}, "
        f"median {median[2] / median[1]:.2f}"
    )
    print(f"goal >= {RATIO_GOAL}x: {'met' if ratio >= RATIO_GOAL else 'MISSED'} ({ratio:.2f}x)")


if __name__ == "__main__":
    main()
