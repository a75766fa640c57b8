"""The start of a trial, shared by `run_trial` and `tuner profile` so a profile runs exactly
what a trial ran: the data source and the seeded model, the warm-up's own batch stream, and
the clean restart after warm-up (initial weights, the trial's seed, a fresh optimizer)."""

from __future__ import annotations

import dataclasses
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tuner.attrs import FailureKind
from tuner.config import CompileMode, TrialConfig
from tuner.harness.data import LoaderSource, TensorSource, batch_source, micro_batches_per_epoch
from tuner.harness.failures import TrialFailure
from tuner.knobs import TrainingSetup, build_optimizer, build_scheduler
from tuner.workload import Workload

#: Warm-up batches come from a different stream than training, so training order is the
#: trial seed's alone.
WARMUP_SEED_OFFSET = 1_000_003


@dataclass(frozen=True)
class Start:
    """A trial's data and freshly initialised model, before any knob is applied."""

    source: TensorSource | LoaderSource
    model: nn.Module
    initial_state: dict[str, Any]  # the model's initial weights, restored after warm-up
    per_epoch: int  # micro-batches per epoch
    compiled: bool
    seed: int

    def warmup_batches(self) -> Iterator[tuple[Any, Any]]:
        """The warm-up's own stream, so training order stays the trial seed's alone."""
        return self.source.batches(self.seed + WARMUP_SEED_OFFSET)

    def restart(
        self, setup: TrainingSetup, config: TrialConfig, total_steps: int, device: torch.device
    ) -> TrainingSetup:
        """Back to the initial weights and the trial's seed, with a new optimizer, schedule
        and scaler over `total_steps`; the compiled model is kept."""
        self.model.load_state_dict(self.initial_state)
        _seed_everything(self.seed)
        optimizer = build_optimizer(
            config.optimizer, setup.eager_model.parameters(), config.optimizer_impl
        )
        return dataclasses.replace(
            setup,
            optimizer=optimizer,
            scheduler=build_scheduler(config.schedule, optimizer, total_steps),
            scaler=torch.amp.GradScaler(device.type, enabled=setup.scaler.is_enabled()),
        )


def start_trial(workload: Workload, config: TrialConfig, device: torch.device, seed: int) -> Start:
    """Load the data behind the config's batches, and build the model from the trial's seed.

    Raises:
        TrialFailure: the micro-batch is larger than the training set (unsupported).
    """
    source = batch_source(workload.load_data(), config, device, workload.eval_batch_size)
    per_epoch = micro_batches_per_epoch(source.n_train, config.batch_size)
    if per_epoch == 0:
        raise TrialFailure(
            FailureKind.UNSUPPORTED,
            f"batch_size {config.batch_size} exceeds the {source.n_train} training examples",
        )
    _seed_everything(seed)
    model = workload.build_model().to(device)
    compiled = config.compile_mode is not CompileMode.OFF
    if compiled:
        torch._dynamo.reset()  # compiled state from earlier trials must not leak into this one
    return Start(
        source=source,
        model=model,
        initial_state={name: value.clone() for name, value in model.state_dict().items()},
        per_epoch=per_epoch,
        compiled=compiled,
        seed=seed,
    )


def _seed_everything(seed: int) -> None:
    """torch's, Python's and (if loaded) NumPy's generators: augmentation in a Dataset's
    __getitem__ may draw from any of them, and with num_workers = 0 it runs right here."""
    torch.manual_seed(seed)
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed)
