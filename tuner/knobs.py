"""Apply a TrialConfig: the real torch optimizer, LR schedule, AMP and compile objects.

The trial harness and users call the same `build_training`, so what tuner measured is what a
user runs. The returned `TrainingSetup` carries the whole per-step protocol in two calls,
`backward` and `step`, with no branches on the config in the loop: autocast is a no-op for
fp32 and the GradScaler is enabled only for fp16. `make_loader` and `to_device` apply the
input-pipeline knobs the same way for both.

Example::

    setup = build_training(config, model.to(device), total_steps=1000, device=device)
    for step in range(1000):
        for inputs, targets in micro_batches(config.accumulation_steps):
            with setup.autocast():
                loss = loss_fn(setup.model(inputs), targets)
            setup.backward(loss)
        setup.step()
    torch.save(setup.eager_model.state_dict(), "model.pt")
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn
from torch.optim import lr_scheduler
from torch.utils.checkpoint import checkpoint
from torch.utils.data import DataLoader, Dataset

from tuner.config import (
    WARMUP_START_FACTOR,
    CompileMode,
    OptimizerConfig,
    OptimizerImpl,
    OptimizerName,
    Precision,
    ScheduleConfig,
    ScheduleName,
    TrialConfig,
    implementation_kwargs,
    optimizer_kwargs,
)

_OPTIMIZERS: dict[OptimizerName, type[torch.optim.Optimizer]] = {
    OptimizerName.SGD: torch.optim.SGD,
    OptimizerName.ADAM: torch.optim.Adam,
    OptimizerName.ADAMW: torch.optim.AdamW,
    OptimizerName.RMSPROP: torch.optim.RMSprop,
}
_AUTOCAST_DTYPES: dict[Precision, torch.dtype | None] = {
    Precision.FP32: None,  # autocast is disabled; the dtype is never used
    Precision.BF16: torch.bfloat16,
    Precision.FP16: torch.float16,
}


@dataclass(frozen=True)
class TrainingSetup:
    """The built training objects of one config, and its per-step protocol.

    One optimizer step is `accumulation_steps` micro-batches, each run under ``autocast()``
    and passed to `backward`, then one `step`.
    """

    model: nn.Module  # call this in training: compiled, or eager_model itself
    eager_model: nn.Module  # uncompiled: evaluation, state_dict, export
    optimizer: torch.optim.Optimizer
    scheduler: lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler  # enabled only for fp16
    autocast: Callable[[], contextlib.AbstractContextManager[Any]]  # a fresh context per call
    accumulation_steps: int
    grad_clip_norm: float | None

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate the gradients of one micro-batch's mean loss.

        The loss is divided by `accumulation_steps` so the accumulated gradient is that of
        the mean over the whole effective batch, and scaled for fp16 (a no-op otherwise).
        """
        self.scaler.scale(loss / self.accumulation_steps).backward()

    def step(self) -> None:
        """Finish one optimizer step: clip, update, advance the schedule, clear the gradients.

        Clipping sees unscaled gradients, so `grad_clip_norm` means the same in every
        precision. When fp16's scaler skips an update (inf/NaN gradients) the schedule still
        advances: the run keeps its length, and torch may then warn that the scheduler
        stepped before the optimizer.
        """
        if self.grad_clip_norm is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.eager_model.parameters(), self.grad_clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)


def build_training(
    config: TrialConfig,
    model: nn.Module,
    total_steps: int,
    device: torch.device | str = "cpu",
    checkpoint_blocks: Callable[[nn.Module], Iterable[nn.Module]] | None = None,
) -> TrainingSetup:
    """Build everything `config` sets for `model`, which the caller has already moved to `device`.

    Also sets the process-wide backend flags the config tunes (`set_backend_flags`), puts the
    model in channels_last memory layout when the config says so, and makes the blocks
    `checkpoint_blocks` returns recompute their activations when activation checkpointing is
    on.

    Args:
        config: the knobs to apply.
        model: the eager module; its parameters are what the optimizer updates.
        total_steps: optimizer steps in the run, the horizon of the LR schedule.
        device: where the model is; picks the autocast and GradScaler device type.
        checkpoint_blocks: the workload's checkpointable submodules of `model`.

    Raises:
        ValueError: `total_steps` < 1, or activation checkpointing without checkpoint_blocks.

    Raises:
        ValueError: `total_steps` < 1.

    Example:
        >>> config = TrialConfig(
        ...     OptimizerConfig(OptimizerName.ADAMW, lr=1e-3, betas=(0.9, 0.999)),
        ...     ScheduleConfig(ScheduleName.COSINE),
        ...     batch_size=32,
        ... )
        >>> setup = build_training(config, torch.nn.Linear(8, 2), total_steps=100)
        >>> setup.optimizer.param_groups[0]["lr"], setup.scaler.is_enabled()
        (0.001, False)
    """
    device_type = torch.device(device).type
    set_backend_flags(config)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if config.activation_checkpointing:
        if checkpoint_blocks is None:
            raise ValueError("activation_checkpointing: the workload declares no checkpoint_blocks")
        for block in checkpoint_blocks(model):
            _recompute_in_backward(block)
    optimizer = build_optimizer(config.optimizer, model.parameters(), config.optimizer_impl)
    scheduler = build_scheduler(config.schedule, optimizer, total_steps)
    if config.compile_mode == CompileMode.OFF:
        model_to_train = model
    else:
        model_to_train = cast(nn.Module, torch.compile(model, mode=config.compile_mode.value))
    return TrainingSetup(
        model=model_to_train,
        eager_model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=torch.amp.GradScaler(device_type, enabled=config.precision == Precision.FP16),
        autocast=functools.partial(
            torch.autocast,
            device_type,
            dtype=_AUTOCAST_DTYPES[config.precision],
            enabled=config.precision != Precision.FP32,
        ),
        accumulation_steps=config.accumulation_steps,
        grad_clip_norm=config.grad_clip_norm,
    )


def build_optimizer(
    config: OptimizerConfig,
    params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
    impl: OptimizerImpl = OptimizerImpl.DEFAULT,
) -> torch.optim.Optimizer:
    """The torch optimizer `config` names, with its hyperparameters and torch's defaults,
    run by implementation `impl` (``foreach``/``fused`` kernels, or torch's choice).

    Example:
        >>> opt = build_optimizer(OptimizerConfig(OptimizerName.SGD, lr=0.1, momentum=0.9,
        ...                       nesterov=True), torch.nn.Linear(2, 1).parameters())
        >>> opt.param_groups[0]["nesterov"]
        True
    """
    return _OPTIMIZERS[config.name](
        params, **optimizer_kwargs(config), **implementation_kwargs(impl)
    )


def set_backend_flags(config: TrialConfig) -> None:
    """Set the process-wide flags `config` tunes: float32 matmul precision and cuDNN's
    autotuner. Both are global in torch, so every trial sets both, whatever ran before."""
    torch.set_float32_matmul_precision(config.matmul_precision.value)
    torch.backends.cudnn.benchmark = config.cudnn_benchmark


def _recompute_in_backward(block: nn.Module) -> None:
    """Make `block` store only its inputs and recompute its activations in the backward pass.

    Non-reentrant checkpointing (``use_reentrant=False``): it works with torch.compile and
    with inputs that need no gradient. Outside autograd (evaluation) the block runs as is.
    """
    forward = block.forward

    def checkpointed(*args: Any, **kwargs: Any) -> Any:
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    block.forward = checkpointed


def make_loader(
    config: TrialConfig,
    dataset: Dataset[Any],
    *,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    collate_fn: Callable[[list[Any]], Any] | None = None,
) -> DataLoader[Any]:
    """A DataLoader over `dataset` with the config's loader knobs.

    With a `generator` it is a training loader: shuffled by that generator (same seed, same
    order; torch seeds each worker's torch, Python and NumPy generators from it too), the
    last partial batch dropped so every micro-batch has one shape. Without, it is an
    evaluation loader: in order, every example. `batch_size` defaults to the micro-batch.
    """
    loader = config.loader
    return DataLoader(
        dataset,
        batch_size=batch_size or config.batch_size,
        shuffle=generator is not None,
        drop_last=generator is not None,
        generator=generator,
        collate_fn=collate_fn,
        num_workers=loader.num_workers,
        pin_memory=loader.pin_memory,
        persistent_workers=loader.persistent_workers,
        prefetch_factor=loader.prefetch_factor,
    )


def to_device(batch: Any, device: torch.device, config: TrialConfig) -> Any:
    """`batch` (a tensor, or tuples, lists and dicts of them) on `device`, in the config's
    memory layout: 4-D tensors become channels_last when the config says so. Pinned tensors
    are copied asynchronously."""
    if isinstance(batch, torch.Tensor):
        moved = batch.to(device, non_blocking=config.loader.pin_memory)
        if config.channels_last and moved.dim() == 4:
            return moved.contiguous(memory_format=torch.channels_last)
        return moved
    if isinstance(batch, dict):
        return {key: to_device(value, device, config) for key, value in batch.items()}
    if isinstance(batch, tuple | list):
        items = [to_device(value, device, config) for value in batch]
        # a namedtuple takes its fields as arguments; a tuple or list takes one iterable
        return type(batch)(*items) if hasattr(batch, "_fields") else type(batch)(items)
    return batch


def build_scheduler(
    config: ScheduleConfig, optimizer: torch.optim.Optimizer, total_steps: int
) -> lr_scheduler.LRScheduler:
    """Torch's own scheduler for `config`, over a run of `total_steps` optimizer steps.

    Step it once per optimizer step. one_cycle peaks at each param group's current lr, and
    does not cycle momentum/betas (``cycle_momentum=False``): those were tuned as constants,
    and cycling would silently replace them. warmup_cosine warms up linearly from
    `WARMUP_START_FACTOR` x lr over at least one step, then anneals to 0 over the rest
    (at least one step).

    Raises:
        ValueError: `total_steps` < 1.

    Example:
        >>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
        >>> sched = build_scheduler(ScheduleConfig(ScheduleName.COSINE), opt, total_steps=10)
    """
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(
            f"total_steps: must be an integer >= 1 (optimizer steps in the run), "
            f"got {total_steps!r}"
        )
    match config.name:
        case ScheduleName.CONSTANT:
            return lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=total_steps)
        case ScheduleName.STEP:
            return lr_scheduler.StepLR(
                optimizer,
                step_size=_steps(config.step_every, total_steps),
                gamma=cast(float, config.step_gamma),
            )
        case ScheduleName.COSINE:
            return lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
        case ScheduleName.ONE_CYCLE:
            return lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=[group["lr"] for group in optimizer.param_groups],
                total_steps=total_steps,
                pct_start=cast(float, config.pct_start),
                cycle_momentum=False,
            )
        case ScheduleName.WARMUP_COSINE:
            warmup = _steps(config.warmup_fraction, total_steps)
            return lr_scheduler.SequentialLR(
                optimizer,
                [
                    lr_scheduler.LinearLR(
                        optimizer, start_factor=WARMUP_START_FACTOR, total_iters=warmup
                    ),
                    lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup)),
                ],
                milestones=[warmup],
            )


def _steps(fraction: float | None, total_steps: int) -> int:
    """A fraction of the run as a step count, at least 1.

    ScheduleConfig guarantees the fraction its schedule uses is set, hence the cast.
    """
    return max(1, round(cast(float, fraction) * total_steps))
