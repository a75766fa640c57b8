"""Where a trial's batches come from: device-resident tensors, or a DataLoader over Datasets.

Both sources give the loop the same thing, an endless stream of (input, target) micro-batches
in a seeded order (same seed, same order), epoch after epoch, with the last partial batch
dropped so every micro-batch has one shape and a compiled model never recompiles for a
ragged tail. Accumulation groups may straddle epochs exactly as they would in a long run.

Tensors are indexed on the device, so per-step input cost is near zero. A DataLoader is the
user's real input pipeline, worker processes, pinning and per-sample augmentation included;
the trial's training windows time it end to end, so its throughput is what the user will see.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from tuner.config import TrialConfig
from tuner.knobs import make_loader, to_device
from tuner.workload import Data, Datasets

Batch = tuple[Any, Any]


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


class TensorSource:
    """In-memory `Data`, moved to the device once (in the config's memory layout)."""

    loader_startup_s: float | None = None  # there is no loader to start
    prefetched = 0  # nothing loads ahead

    def __init__(
        self, data: Data, config: TrialConfig, device: torch.device, eval_batch_size: int
    ) -> None:
        self._config = config
        self._eval_batch_size = eval_batch_size
        self._train = (
            to_device(data.train_inputs, device, config),
            to_device(data.train_targets, device, config),
        )
        self._val = (
            to_device(data.val_inputs, device, config),
            to_device(data.val_targets, device, config),
        )
        self.n_train = len(self._train[0])

    def batches(self, seed: int) -> Iterator[Batch]:
        return micro_batches(*self._train, self._config.batch_size, seed)

    def val_batches(self) -> Iterable[Batch]:
        inputs, targets = self._val
        size = self._eval_batch_size
        for start in range(0, len(inputs), size):
            yield inputs[start : start + size], targets[start : start + size]


class LoaderSource:
    """`Datasets` behind DataLoaders built from the config's loader knobs.

    One training loader serves warm-up and training: re-seeding its generator before each
    stream restarts the order, and persistent workers carry over as they would in a real
    run. Starting an iterator starts its worker processes, so `batches` starts one eagerly,
    before the caller's timer; the seconds from there to the first batch of the trial are
    `loader_startup_s`, kept out of the steady state. Workers that a non-persistent loader
    restarts every epoch are part of the steady state: that cost is what persistent_workers
    buys back.
    """

    def __init__(
        self, data: Datasets, config: TrialConfig, device: torch.device, eval_batch_size: int
    ) -> None:
        self._config = config
        self._device = device
        self._generator = torch.Generator()
        self._train = make_loader(
            config, data.train, generator=self._generator, collate_fn=data.collate_fn
        )
        # one loader serves every evaluation, so persistent workers start once
        self._val = make_loader(
            config, data.val, batch_size=eval_batch_size, collate_fn=data.collate_fn
        )
        self.n_train = len(data.train)
        self.loader_startup_s: float | None = None
        #: Micro-batches the workers may have ready after a pause in consumption.
        self.prefetched = config.loader.num_workers * (config.loader.prefetch_factor or 0)

    def batches(self, seed: int) -> Iterator[Batch]:
        self._generator.manual_seed(seed)
        started = time.perf_counter()
        return self._stream(iter(self._train), started)

    def _stream(self, epoch: Iterator[Any], started: float) -> Iterator[Batch]:
        while True:
            for batch in epoch:
                if self.loader_startup_s is None:
                    self.loader_startup_s = time.perf_counter() - started
                yield _pair(to_device(batch, self._device, self._config))
            epoch = iter(self._train)

    def val_batches(self) -> Iterable[Batch]:
        """Every validation example, in order, in batches of the evaluation batch size."""
        for batch in self._val:
            yield _pair(to_device(batch, self._device, self._config))


def _pair(batch: Any) -> Batch:
    inputs, targets = batch  # the probe checked the shape before the study began
    return inputs, targets


def batch_source(
    data: Data | Datasets, config: TrialConfig, device: torch.device, eval_batch_size: int
) -> TensorSource | LoaderSource:
    """The source for what the workload's load_data returned; validation batches hold
    `eval_batch_size` examples."""
    if isinstance(data, Datasets):
        return LoaderSource(data, config, device, eval_batch_size)
    return TensorSource(data, config, device, eval_batch_size)
