"""Interleaved rounds: the timing machinery the throughput benchmarks share.

Several training loops (sides) run in one process, one round each in turn, the first side
rotating from round to round, so a drift in host speed hits every side alike (FACTS: the host
shifts 20-25% every few seconds). A side is a function that runs `n` optimizer steps of its own
loop, whose state (model, optimizer, batch stream, DataLoader workers) lives on between rounds,
like the windows of one long trial.

Each round first runs `untimed` steps, then times `steps` steps. With DataLoader workers the
untimed steps matter: while the other sides ran, this side's workers filled their prefetch
queue, and a round timed from a full queue gets those batches for free. Training through at
least ``prefetch_factor x num_workers`` micro-batches first (`untimed_steps`) times the steady
state instead.

`trial_loop` is tuner's side: what a trial times, its batch source into `train_steps`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from tuner.config import LoaderConfig, TrialConfig
from tuner.harness.data import batch_source
from tuner.harness.loop import train_steps
from tuner.knobs import build_training
from tuner.workload import Data, Datasets, Workload

#: Runs `n` optimizer steps of one side's training loop.
Steps = Callable[[int], None]
#: DataLoader batches prefetched per worker: torch's default.
PREFETCH = 2


def loader_config(workers: int) -> LoaderConfig:
    """`workers` DataLoader workers, persistent, each prefetching `PREFETCH` batches; with
    none, the main process loads (torch's defaults)."""
    if workers == 0:
        return LoaderConfig()
    return LoaderConfig(num_workers=workers, persistent_workers=True, prefetch_factor=PREFETCH)


def untimed_steps(config: TrialConfig) -> int:
    """Optimizer steps that train through every batch `config`'s workers can have prefetched."""
    prefetched = config.loader.num_workers * (config.loader.prefetch_factor or 0)
    return -(-prefetched // config.accumulation_steps)


def trial_loop(
    workload: Workload,
    data: Data | Datasets,
    config: TrialConfig,
    total_steps: int,
    seed: int,
    device: torch.device,
) -> Steps:
    """tuner's loop as a trial runs it: the `batch_source` stream (in-memory tensors or the
    trial's DataLoader) into `train_steps`, over a `build_training` setup whose schedule spans
    `total_steps`."""
    source = batch_source(data, config, device, eval_batch_size=512)
    torch.manual_seed(seed)
    setup = build_training(config, workload.build_model().to(device), total_steps, device)
    stream = source.batches(seed)
    loss_sum = torch.zeros((), device=device)

    def run(n: int) -> None:
        train_steps(setup, stream, workload.loss, n, loss_sum)

    return run


def rotated(names: list[str], round_: int) -> list[str]:
    """The order of round `round_`: each name goes first in turn, so none is always first
    (or always right after another)."""
    shift = round_ % len(names)
    return names[shift:] + names[:shift]


@dataclass(frozen=True)
class Rates:
    """Samples per second of each side, one figure per timed round.

    `wall` is the throughput. `cpu` divides by this process's CPU seconds instead (every
    thread of it, not DataLoader worker processes): what the loop itself costs, which other
    processes on a shared host disturb far less than the wall clock (`FACTS.md`: the host's
    speed shifts by 20-25% every few seconds). With workers it leaves out their work, so only
    `wall` is a throughput there. `queued` is the seconds per sample the main thread was
    ready to run but waited for a core (Linux's /proc/self/schedstat; None where the kernel
    does not keep it): the share of the wall time that other processes took.
    """

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]
    queued: dict[str, list[float]] | None


def interleaved_rates(
    sides: Mapping[str, Steps],
    *,
    rounds: int,
    steps: int,
    samples_per_step: int,
    untimed: int = 0,
    warm_rounds: int = 1,
) -> Rates:
    """Samples/s of each side in each of `rounds` timed rounds.

    Every side first runs `warm_rounds` whole rounds untimed (allocator, caches, workers
    warm), then the timed rounds run side after side, rotating who goes first.
    """
    names = list(sides)
    for _ in range(warm_rounds):
        for name in names:
            sides[name](untimed + steps)
    queues = _queued_s() is not None
    rates = Rates(
        {name: [] for name in names},
        {name: [] for name in names},
        {name: [] for name in names} if queues else None,
    )
    samples = steps * samples_per_step
    for round_ in range(rounds):
        for name in rotated(names, round_):
            sides[name](untimed)
            queued, wall, cpu = _queued_s(), time.perf_counter(), time.process_time()
            sides[name](steps)
            rates.cpu[name].append(samples / (time.process_time() - cpu))
            rates.wall[name].append(samples / (time.perf_counter() - wall))
            if rates.queued is not None:
                rates.queued[name].append(((_queued_s() or 0.0) - (queued or 0.0)) / samples)
    return rates


_SCHEDSTAT = Path("/proc/self/schedstat")


def _queued_s() -> float | None:
    """Seconds this process's main thread has spent runnable but not running, or None."""
    try:
        return int(_SCHEDSTAT.read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def ratio_of_medians(over: list[float], under: list[float]) -> tuple[float, float]:
    """median(over) / median(under), and the median of the paired per-round ratios."""
    per_round = [a / b for a, b in zip(over, under, strict=True)]
    return statistics.median(over) / statistics.median(under), statistics.median(per_round)


def rate_lines(rates: Mapping[str, list[float]]) -> list[str]:
    """One line per side: its median samples/s, then every round's."""
    width = max(len(name) for name in rates)
    return [
        f"  {name:>{width}}: median {statistics.median(values):9,.0f} samples/s   rounds: "
        + " ".join(f"{v:,.0f}" for v in values)
        for name, values in rates.items()
    ]
