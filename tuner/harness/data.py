"""Micro-batches drawn by indexing device-resident tensors.

Each epoch is a fresh permutation from a seeded generator (same seed, same order); the last
partial batch is dropped so every micro-batch has one shape and a compiled model never
recompiles for a ragged tail. The stream runs across epoch boundaries, so accumulation
groups may straddle epochs exactly as they would in a long run.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def micro_batches_per_epoch(n_examples: int, batch_size: int) -> int:
    return n_examples // batch_size


def micro_batches(
    inputs: torch.Tensor, targets: torch.Tensor, batch_size: int, seed: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (input, target) micro-batches in a seeded order, epoch after epoch."""
    generator = torch.Generator().manual_seed(seed)
    n_batches = micro_batches_per_epoch(len(inputs), batch_size)
    while True:
        order = torch.randperm(len(inputs), generator=generator).to(inputs.device)
        for i in range(n_batches):
            index = order[i * batch_size : (i + 1) * batch_size]
            yield inputs.index_select(0, index), targets.index_select(0, index)
