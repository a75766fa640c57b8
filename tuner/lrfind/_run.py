"""The range test itself: torch-lr-finder's `LRFinder` on a workload's model and batches.

The test trains what the study's baseline trial trains, changed only where the test says:
the same seeded initial weights (`tuner.harness.start.start_trial` with the study's seed), the
same batches in the same order (device tensors, or the DataLoader a Dataset workload gets),
the optimizer built by `tuner.knobs.build_optimizer`, and AMP as `tuner.knobs` applies it
(bf16 autocast; fp16 autocast with an enabled GradScaler). It runs eager: compile mode, the
optimizer implementation and activation checkpointing change speed or memory, not the loss.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.config import CompileMode, OptimizerImpl, Precision
from tuner.lrfind._plot import quiet, save_plot, suggest
from tuner.lrfind._records import (
    MIN_ITERATIONS,
    LrFindError,
    RangeTest,
    RangeTestFailed,
    RangeTestResult,
)
from tuner.workload import Workload

if TYPE_CHECKING:
    import torch

#: torch-lr-finder stops the test once the smoothed loss passes this multiple of its best.
DIVERGE_THRESHOLD = 5.0
#: Its exponential smoothing of the loss (its default): one batch's noise must not decide.
SMOOTHING = 0.05


class _NonFinite(Exception):
    """The loss stopped being finite: the test is over (torch-lr-finder would go on)."""


def run_range_test(
    workload: Workload,
    test: RangeTest,
    device: torch.device,
    seed: int,
    plot: Path | None = None,
) -> RangeTestResult:
    """Run `test` on `workload` from the initial weights of a trial with `seed`.

    Writes the loss-vs-lr plot to `plot` (a PNG) when given.

    Raises:
        LrFindError: the batch is larger than the training set.
        RangeTestFailed: training failed (out of memory, a precision the device lacks), or
            the loss diverged before there was anything to suggest.
    """
    import torch

    _headless_matplotlib()
    from torch_lr_finder import LRFinder, TrainDataLoaderIter

    from tuner.harness.failures import TrialFailure, classify
    from tuner.harness.start import start_trial
    from tuner.knobs import build_optimizer, set_backend_flags

    # --- the baseline's config with the test's optimizer, batch and precision -------------
    config = dataclasses.replace(
        workload.baseline,
        optimizer=test.optimizer,
        batch_size=test.batch_size,
        accumulation_steps=test.accumulation_steps,
        precision=test.precision,
        compile_mode=CompileMode.OFF,
        optimizer_impl=OptimizerImpl.DEFAULT,
        activation_checkpointing=False,
        batch_scaling=None,
    )
    try:
        start = start_trial(workload, config, device, seed)
    except TrialFailure as exc:
        raise LrFindError(f"--batch-size: {exc.reason}; lower it") from None
    model = start.model
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    set_backend_flags(config)

    # --- the finder: AMP as tuner.knobs applies it ----------------------------------------
    def criterion(outputs: Any, targets: Any) -> torch.Tensor:
        loss = workload.loss(outputs, targets)
        if not bool(torch.isfinite(loss.detach()).all()):
            raise _NonFinite
        return loss

    amp = test.precision is not Precision.FP32
    dtypes = {Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}
    finder = LRFinder(
        model,
        build_optimizer(test.optimizer, model.parameters(), config.optimizer_impl),
        criterion,
        device=device,
        amp_backend="torch" if amp else None,
        amp_config={"device_type": device.type, "dtype": dtypes.get(test.precision)},
        grad_scaler=torch.amp.GradScaler(device.type, enabled=test.precision is Precision.FP16),
    )
    # LRFinder copies the initial weights for its reset(), and a trial's start for its restart
    # after warm-up; neither happens here, and on a GPU each copy holds the model's memory
    # again for the whole test.
    finder.state_cacher.cached.clear()
    start.initial_state.clear()

    # --- the test: the lr grows exponentially, one optimizer step per lr -------------------
    non_finite = False
    try:
        with quiet():
            finder.range_test(
                TrainDataLoaderIter(start.source.batches(seed)),
                start_lr=test.start_lr,
                end_lr=test.end_lr,
                num_iter=test.iterations,
                step_mode="exp",
                smooth_f=SMOOTHING,
                diverge_th=DIVERGE_THRESHOLD,
                accumulation_steps=test.accumulation_steps,
            )
    except _NonFinite:
        non_finite = True
    except Exception as exc:
        failure = classify(exc, compiling=False)
        raise RangeTestFailed(
            f"lr-find: the range test failed ({failure.kind.value}: {failure.reason}); "
            "try a smaller --batch-size or another --precision"
        ) from None

    # --- what it found ---------------------------------------------------------------------
    lrs = [float(lr) for lr in finder.history["lr"]]
    losses = [float(loss) for loss in finder.history["loss"]]
    steps = len(lrs)
    diverged_at = None
    if non_finite:  # the step after the last recorded one produced the non-finite loss
        diverged_at = test.start_lr * (test.end_lr / test.start_lr) ** (
            steps / (test.iterations - 1)
        )
    elif steps < test.iterations:
        diverged_at = lrs[-1]
    if steps < MIN_ITERATIONS:
        where = f"lr {diverged_at:.3g}" if diverged_at is not None else "once"
        raise RangeTestFailed(
            f"lr-find: the loss diverged at {where} after {steps} steps, too few to suggest an "
            f"lr (at least {MIN_ITERATIONS} are needed); lower --start-lr or --end-lr, or raise "
            "--iterations"
        )
    figure, suggested = suggest(finder)
    min_loss_lr = lrs[min(range(steps), key=losses.__getitem__)]
    result = RangeTestResult(
        test=test,
        suggested_lr=suggested,
        min_loss_lr=min_loss_lr,
        steps=steps,
        diverged_at=diverged_at,
        device=str(device),
        plot=None if plot is None else str(plot.resolve()),
        history=tuple(zip(lrs, losses, strict=True)),
    )
    if plot is not None:
        save_plot(figure, result, workload.name, plot)
    return result


def _headless_matplotlib() -> None:
    """torch-lr-finder imports pyplot when it is imported; with no display that must not try
    a GUI backend. Agg is chosen only if nothing has imported pyplot yet (a notebook keeps
    its own); tuner's plot draws on its own Agg canvas either way."""
    if "matplotlib.pyplot" not in sys.modules:
        import matplotlib

        matplotlib.use("Agg")
