"""Loader workers: digits32's training throughput at num_workers 0 vs 1 vs 2.

digits32 augments every training image in its Dataset's ``__getitem__`` (an affine and elastic
warp, random erasing: about as costly as the training step itself), so where that work runs
decides the throughput. Each setting is tuner's own loop as a trial times it (the trial's
DataLoader from `tuner.knobs.make_loader`, via `LoaderSource`, into `train_steps`), for the
workload's baseline config (Adam, batch 32, fp32, eager) with:

- ``workers=0``: the main process loads and augments, then trains;
- ``workers=1`` and ``workers=2``: persistent workers, each prefetching 2 batches;
- ``tensors``: the same model fed one pre-augmented epoch from memory (`TensorSource`), the
  upper bound no loader can beat: training alone.

All settings run in interleaved rounds in one process, the main process on one torch thread
(DataLoader workers take one each), each round timed after training through what its workers
prefetched while the others ran. Prints samples/s per setting and its ratio to num_workers=0,
and where the main process's time per sample goes: computing, ready but waiting for a core, or
waiting for batches. Workers only help as far as a core is free for them, which on a shared
host changes from minute to minute (the load average is printed); the work they take off the
training process does not.

    python -m benchmarks.loader_workers [--rounds 16] [--steps 15] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
from typing import Any

import torch
from torch.utils.data import Dataset

from benchmarks._rounds import (
    PREFETCH,
    interleaved_rates,
    loader_config,
    rate_lines,
    ratio_of_medians,
    trial_loop,
    untimed_steps,
)
from tuner.workload import Data, Datasets, load_workload

DEVICE = torch.device("cpu")
WORKERS = (0, 1, 2)


def pre_augmented(data: Datasets, seed: int) -> Data:
    """One epoch of the training set, augmented once, and the validation set, as tensors."""
    torch.manual_seed(seed)

    def stacked(dataset: Dataset[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [dataset[i] for i in range(len(dataset))]  # type: ignore[arg-type]
        return torch.stack([x for x, _ in pairs]), torch.tensor([y for _, y in pairs])

    return Data(*stacked(data.train), *stacked(data.val))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objective", default="digits32", help="a Dataset workload")
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--steps", type=int, default=15, help="optimizer steps per round")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the baseline's")
    parser.add_argument("--no-tensors", action="store_true", help="skip the in-memory bound")
    args = parser.parse_args()
    torch.set_num_threads(1)
    workload = load_workload(args.objective)
    data = workload.load_data()
    if not isinstance(data, Datasets):
        parser.error(f"{workload.name} holds in-memory tensors, not Datasets: it has no loader")
    base = workload.baseline
    if args.batch_size is not None:
        base = dataclasses.replace(base, batch_size=args.batch_size)
    configs = {f"workers={n}": dataclasses.replace(base, loader=loader_config(n)) for n in WORKERS}

    total = 10 * args.steps * (args.rounds + 1)
    sides = {
        name: trial_loop(workload, data, config, total, 0, DEVICE)
        for name, config in configs.items()
    }
    if not args.no_tensors:
        sides["tensors"] = trial_loop(workload, pre_augmented(data, 0), base, total, 0, DEVICE)
    untimed = max(untimed_steps(config) for config in configs.values())
    load_before = os.getloadavg()[0]
    measured = interleaved_rates(
        sides,
        rounds=args.rounds,
        steps=args.steps,
        samples_per_step=base.effective_batch_size,
        untimed=untimed,
    )
    rates = measured.wall

    print(
        f"workload {workload.name}, baseline config (batch {base.batch_size} x "
        f"{base.accumulation_steps}, {base.optimizer.name.value}, {base.precision.value}, "
        f"{'eager' if base.compile_mode.value == 'off' else base.compile_mode.value}); "
        f"persistent workers, prefetch {PREFETCH}; main process 1 torch thread; "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}; {args.rounds} interleaved rounds "
        f"of {args.steps} steps, each after {untimed} untimed; host load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    print("\n".join(rate_lines(rates)))
    print(
        "where the main process's wall time per sample goes (medians): computing / ready but "
        "waiting for a core (held by its workers or other processes) / waiting for batches"
    )
    for name, values in rates.items():
        wall_ms = 1e3 / statistics.median(values)
        cpu_ms = 1e3 / statistics.median(measured.cpu[name])
        queued = measured.queued[name] if measured.queued is not None else None
        queued_ms = 1e3 * statistics.median(queued) if queued else None
        waits = (
            f"{queued_ms:.2f} / {wall_ms - cpu_ms - queued_ms:.2f} ms"
            if queued_ms is not None
            else f"? / ? ms (this kernel keeps no schedstat; {wall_ms - cpu_ms:.2f} ms together)"
        )
        print(f"  {name:>9}: {wall_ms:.2f} ms = {cpu_ms:.2f} / {waits}")
    reference = rates["workers=0"]
    for name, values in rates.items():
        if name != "workers=0":
            ratio, per_round = ratio_of_medians(values, reference)
            print(
                f"  {name} / workers=0: {ratio:.2f}x (median of per-round ratios {per_round:.2f}x)"
            )


if __name__ == "__main__":
    main()
