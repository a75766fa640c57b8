"""How closely a seconds budget holds: timed training seconds over the budget, per config.

A seconds budget sets the step horizon before training from the speed of calibration steps
(steady warm-up steps adding up to a tenth of the budget). This runs trials of several
configs on a workload and prints each one's train_s / budget; the goal is within ±10%.

    python benchmarks/seconds_budget.py [--objective digits] [--seconds 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

import torch

from tuner.budget import Budget
from tuner.config import DEFAULT_BASELINE, Precision
from tuner.harness import run_trial
from tuner.workload import load_workload

CONFIGS = {
    "baseline (batch 32, fp32)": DEFAULT_BASELINE,
    "batch 128": dataclasses.replace(DEFAULT_BASELINE, batch_size=128),
    "batch 64 x 4": dataclasses.replace(DEFAULT_BASELINE, batch_size=64, accumulation_steps=4),
    "batch 256, bf16": dataclasses.replace(
        DEFAULT_BASELINE, batch_size=256, precision=Precision.BF16
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objective", default="digits")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    workload = load_workload(args.objective)
    budget = Budget(seconds=args.seconds, evaluations=1)
    ratios = []
    for name, config in CONFIGS.items():
        for seed in range(args.repeats):
            result = run_trial(workload, config, budget, torch.device("cpu"), seed)
            ratio = result.train_s / args.seconds
            ratios.append(ratio)
            print(
                f"{name:28s} seed {seed}: {result.optimizer_steps:5d} steps, "
                f"train_s/budget {ratio:.3f}"
            )
    worst = max(abs(r - 1) for r in ratios)
    print(
        f"train_s / budget: median {statistics.median(ratios):.3f}, "
        f"range {min(ratios):.3f}-{max(ratios):.3f}, worst miss {worst:.1%} (goal <= 10%)"
    )


if __name__ == "__main__":
    main()
