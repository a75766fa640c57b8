"""Harness overhead: tuner's training loop vs a minimal hand-written PyTorch loop.

Same model, data and config; the two loops run in interleaved rounds in one process, so host
speed drifts hit both alike (`benchmarks._rounds`). Prints per-round throughputs and the ratio
of medians (tuner / hand-written). Target: >= 0.97.

In-memory tensors (``Data``, e.g. digits): tuner's side is what a trial times, its
`batch_source` stream into `train_steps`; the hand-written side indexes the tensors with its
own seeded permutation. Datasets (``Datasets``, e.g. digits32, whose ``__getitem__`` augments
each sample): tuner's side is the trial's `LoaderSource` (a DataLoader from `make_loader`) into
`train_steps`; the hand-written side is the DataLoader a user writes for the same config
(shuffle, drop_last, `--workers` workers, persistent with prefetch 2 when there are any,
a seeded generator) and a move to the device. Either hand-written loop is the minimal one for
this fp32, eager config: no autocast context, which tuner's loop enters (disabled) on every
micro-batch, so that cost is part of what is measured.

Each round is also timed in this process's CPU seconds, which other processes on a shared host
disturb far less than the wall clock; ``--control`` adds a second hand-written loop, identical
to the first, whose ratio to it shows how far noise alone moves these ratios in this run.

    python -m benchmarks.harness_overhead [--objective digits] [--rounds 12] [--steps 60]
    python -m benchmarks.harness_overhead --objective digits32 [--workers 2] [--rounds 24]
        [--steps 3] [--control]

Also prints where a whole trial's time goes (set-up, warm-up, training, evaluation), because
for a two-second workload per-trial overhead matters as much as per-step overhead.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

# Also runs as a file, `python benchmarks/harness_overhead.py`, as the README shows it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._rounds import (
    PREFETCH,
    Steps,
    interleaved_rates,
    loader_config,
    rate_lines,
    ratio_of_medians,
    trial_loop,
    untimed_steps,
)
from tuner.budget import Budget
from tuner.config import (
    OptimizerConfig,
    OptimizerName,
    ScheduleConfig,
    ScheduleName,
    TrialConfig,
)
from tuner.harness import run_trial
from tuner.workload import Data, Datasets, Workload, load_workload

CONFIG = TrialConfig(
    optimizer=OptimizerConfig(OptimizerName.ADAMW, lr=2e-3, weight_decay=0.01, betas=(0.9, 0.99)),
    schedule=ScheduleConfig(ScheduleName.COSINE),
    batch_size=64,
    accumulation_steps=2,
)
DEVICE = torch.device("cpu")
Batches = Iterator[tuple[Any, Any]]


def tensor_batches(data: Data, batch: int, seed: int) -> Batches:
    """The hand-written tensor stream: index a seeded permutation, epoch after epoch."""
    x, y = data.train_inputs, data.train_targets
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(x), generator=generator)
        for i in range(len(x) // batch):
            index = order[i * batch : (i + 1) * batch]
            yield x[index], y[index]


def loader_batches(data: Datasets, config: TrialConfig, seed: int) -> Batches:
    """The hand-written Dataset stream: the DataLoader a user writes, epoch after epoch."""
    workers = config.loader.num_workers
    loader = DataLoader(
        data.train,
        batch_size=config.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        prefetch_factor=PREFETCH if workers else None,
        generator=torch.Generator().manual_seed(seed),
        collate_fn=data.collate_fn,
    )
    while True:
        for inputs, targets in loader:
            yield inputs.to(DEVICE), targets.to(DEVICE)


def hand_written(workload: Workload, batches: Batches, steps: int, seed: int) -> Steps:
    """The loop a user would write: returns a function that runs n optimizer steps."""
    torch.manual_seed(seed)
    model = workload.build_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01, betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10 * steps)
    accumulation = CONFIG.accumulation_steps

    def run(n: int) -> None:
        for _ in range(n):
            for _ in range(accumulation):
                inputs, targets = next(batches)
                loss = workload.loss(model(inputs), targets) / accumulation
                loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objective", default="digits")
    parser.add_argument(
        "--rounds", type=int, default=None, help="default 12 for tensors, 24 for Datasets"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="optimizer steps per round (default 60 for tensors, 3 for Datasets)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--control",
        action="store_true",
        help="add a second, identical hand-written loop: its ratio to the first is the noise",
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="DataLoader workers (Dataset workloads)"
    )
    parser.add_argument(
        "--trial-epochs",
        type=int,
        default=None,
        help="budget of the whole trial timed at the end (default 8 for tensors, 1 for Datasets)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    workload = load_workload(args.objective)
    data = workload.load_data()
    datasets = isinstance(data, Datasets)
    steps = args.steps or (3 if datasets else 60)
    rounds = args.rounds or (24 if datasets else 12)
    config = dataclasses.replace(CONFIG, loader=loader_config(args.workers if datasets else 0))

    # Each round first trains through what the workers (if any) prefetched while the other
    # side ran: the rounds time the steady state (`benchmarks._rounds`).
    untimed = untimed_steps(config)
    if isinstance(data, Datasets):
        feed = f"DataLoader, {args.workers} worker(s)" + (
            f", persistent, prefetch {PREFETCH}" if args.workers else ""
        )
    else:
        feed = "in-memory tensors"

    def hand() -> Steps:
        if isinstance(data, Datasets):
            return hand_written(workload, loader_batches(data, config, 0), steps, 0)
        return hand_written(workload, tensor_batches(data, config.batch_size, 0), steps, 0)

    sides = {"hand": hand(), "tuner": trial_loop(workload, data, config, 10 * steps, 0, DEVICE)}
    if args.control:
        sides["control"] = hand()
    rates = interleaved_rates(
        sides,
        rounds=rounds,
        steps=steps,
        samples_per_step=config.effective_batch_size,
        untimed=untimed,
    )
    print(
        f"workload {workload.name} ({feed}), config: batch {config.batch_size} x accumulation "
        f"{config.accumulation_steps}, adamw + cosine, fp32, eager; {args.threads} thread(s); "
        f"{rounds} rounds of {steps} steps" + (f" after {untimed} untimed" if untimed else "")
    )
    print("\n".join(rate_lines(rates.wall)))
    ratio, per_round = ratio_of_medians(rates.wall["tuner"], rates.wall["hand"])
    print(
        f"throughput ratio tuner / hand-written: {ratio:.3f} (median of per-round ratios "
        f"{per_round:.3f}; target >= 0.97)"
    )
    cpu_ratio, cpu_per_round = ratio_of_medians(rates.cpu["tuner"], rates.cpu["hand"])
    print(
        f"samples per CPU-second of this process, tuner / hand-written: {cpu_ratio:.3f} "
        f"(per-round {cpu_per_round:.3f}): the loops' own cost, little moved by other processes"
        + ("; DataLoader workers' work not included" if args.workers and datasets else "")
    )
    if args.control:
        noise, noise_per_round = ratio_of_medians(rates.wall["control"], rates.wall["hand"])
        cpu_noise, cpu_noise_per_round = ratio_of_medians(rates.cpu["control"], rates.cpu["hand"])
        print(
            f"noise floor, control / hand-written (the same loop twice): {noise:.3f} "
            f"(per-round {noise_per_round:.3f}); per CPU-second {cpu_noise:.3f} "
            f"(per-round {cpu_noise_per_round:.3f})"
        )
    del sides  # stop every side's workers before the whole trial

    epochs = args.trial_epochs or (1 if datasets else 8)
    result = run_trial(workload, config, Budget(epochs=epochs), DEVICE, seed=0)
    other = result.trial_s - result.train_s - result.warmup_s
    startup = (
        f" (of which loader start-up {result.loader_startup_s:.2f} s)"
        if result.loader_startup_s is not None
        else ""
    )
    print(
        f"one whole trial (epochs={epochs}): {result.trial_s:.2f} s = training "
        f"{result.train_s:.2f} s + warm-up {result.warmup_s:.2f} s{startup} + set-up and "
        f"evaluation {other:.2f} s ({result.train_s / result.trial_s:.0%} of the trial is "
        "timed training)"
    )


if __name__ == "__main__":
    main()
