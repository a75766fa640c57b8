"""Harness overhead: tuner's training loop vs a minimal hand-written PyTorch loop.

Same model, data and config; the two loops run in interleaved rounds in one process, so host
speed drifts hit both alike. Prints per-round throughputs and the ratio of medians
(tuner / hand-written). Target: >= 0.97.

    python benchmarks/harness_overhead.py [--objective digits] [--rounds 12] [--steps 60]

Also prints where a whole trial's time goes (set-up, warm-up, training, evaluation), because
for a two-second workload per-trial overhead matters as much as per-step overhead.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator

import torch

from tuner.budget import Budget
from tuner.config import OptimizerConfig, OptimizerName, ScheduleConfig, ScheduleName, TrialConfig
from tuner.harness import run_trial
from tuner.harness.data import micro_batches
from tuner.harness.loop import train_steps
from tuner.knobs import build_training
from tuner.workload import Workload, load_workload

CONFIG = TrialConfig(
    optimizer=OptimizerConfig(OptimizerName.ADAMW, lr=2e-3, weight_decay=0.01, betas=(0.9, 0.99)),
    schedule=ScheduleConfig(ScheduleName.COSINE),
    batch_size=64,
    accumulation_steps=2,
)


def hand_written(workload: Workload, steps: int, seed: int) -> Callable[[], float]:
    """The loop a user would write: returns a function that runs `steps` steps, timed."""
    data = workload.load_data()
    x, y = data.train_inputs, data.train_targets
    torch.manual_seed(seed)
    model = workload.build_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01, betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10 * steps)
    batch, accumulation = CONFIG.batch_size, CONFIG.accumulation_steps
    generator = torch.Generator().manual_seed(seed)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            order = torch.randperm(len(x), generator=generator)
            for i in range(len(x) // batch):
                index = order[i * batch : (i + 1) * batch]
                yield x[index], y[index]

    stream = batches()

    def run() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            for _ in range(accumulation):
                inputs, targets = next(stream)
                loss = workload.loss(model(inputs), targets) / accumulation
                loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        return steps * batch * accumulation / (time.perf_counter() - start)

    return run


def tuner_loop(workload: Workload, steps: int, seed: int) -> Callable[[], float]:
    """tuner's own loop (`train_steps` over a `build_training` setup), timed the same way."""
    data = workload.load_data()
    torch.manual_seed(seed)
    setup = build_training(CONFIG, workload.build_model(), total_steps=10 * steps)
    stream = micro_batches(data.train_inputs, data.train_targets, CONFIG.batch_size, seed)
    loss_sum = torch.zeros(())

    def run() -> float:
        start = time.perf_counter()
        train_steps(setup, stream, workload.loss, steps, loss_sum)
        return steps * CONFIG.effective_batch_size / (time.perf_counter() - start)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objective", default="digits")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps per round")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    workload = load_workload(args.objective)

    loops = {
        "hand": hand_written(workload, args.steps, 0),
        "tuner": tuner_loop(workload, args.steps, 0),
    }
    for run in loops.values():  # one untimed round each: allocator and caches warm
        run()
    rates: dict[str, list[float]] = {name: [] for name in loops}
    for round_ in range(args.rounds):
        order = (
            list(loops) if round_ % 2 == 0 else list(reversed(loops))
        )  # alternate who goes first
        for name in order:
            rates[name].append(loops[name]())
    print(
        f"workload {workload.name}, config: batch {CONFIG.batch_size} x accumulation "
        f"{CONFIG.accumulation_steps}, adamw + cosine, fp32, eager; {args.threads} thread(s)"
    )
    for name, values in rates.items():
        print(
            f"  {name:>5}: median {statistics.median(values):9,.0f} samples/s   rounds: "
            + " ".join(f"{v:,.0f}" for v in values)
        )
    per_round = [t / h for t, h in zip(rates["tuner"], rates["hand"], strict=True)]
    ratio = statistics.median(rates["tuner"]) / statistics.median(rates["hand"])
    print(
        f"throughput ratio tuner / hand-written: {ratio:.3f} (median of per-round ratios "
        f"{statistics.median(per_round):.3f}; target >= 0.97)"
    )

    result = run_trial(workload, CONFIG, Budget(epochs=8), torch.device("cpu"), seed=0)
    other = result.trial_s - result.train_s - result.warmup_s
    print(
        f"one whole trial (epochs=8): {result.trial_s:.2f} s = training {result.train_s:.2f} s "
        f"+ warm-up {result.warmup_s:.2f} s + set-up and evaluation {other:.2f} s "
        f"({result.train_s / result.trial_s:.0%} of the trial is timed training)"
    )


if __name__ == "__main__":
    main()
