"""The inner training loop, kept minimal so its cost is the model's cost.

benchmarks/harness_overhead.py times this function against a hand-written loop. No Python
work happens per step beyond what any correct loop needs: the loss is accumulated on the
device (no `.item()`, so no sync) and checked for divergence by the caller between windows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from tuner.knobs import TrainingSetup


def train_steps(
    setup: TrainingSetup,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    n_steps: int,
    loss_sum: torch.Tensor,
) -> None:
    """Run `n_steps` optimizer steps of `setup.accumulation_steps` micro-batches each.

    `loss_sum` (a 0-d tensor on the device) receives every micro-batch's detached loss, so a
    NaN or Inf anywhere in the window shows up in one check.
    """
    model, autocast = setup.model, setup.autocast
    for _ in range(n_steps):
        for _ in range(setup.accumulation_steps):
            inputs, targets = next(batches)
            with autocast():
                loss = loss_fn(model(inputs), targets)
            setup.backward(loss)
            loss_sum += loss.detach()
        setup.step()
