"""The profiled run: a trial's own set-up and warm-up, then steady steps under torch.profiler.

Reads top to bottom like `tuner.harness.trial.run_trial`, whose steps it repeats: data and
model from the trial's seed, `build_training` with the workload's checkpoint_blocks, warm-up
steps on their own batch stream (compilation happens there; updates are discarded), the
initial weights restored with a fresh optimizer. Then K steps run under `torch.profiler`
(the operators and the Chrome trace) and K more without it (the phase seconds and
samples/s: the profiler's per-op cost would inflate op-heavy phases against data loading).
Both run this module's own copy of `tuner.harness.loop.train_steps`, with a timed, named
range around each phase; the harness's loop stays free of any of it, since its overhead is
benchmarked.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from tuner.attrs import FailureKind
from tuner.config import ConfigError
from tuner.errors import UserError
from tuner.hardware import describe_device, select_device
from tuner.harness.data import LoaderSource
from tuner.harness.failures import TrialFailure, classify
from tuner.harness.loop import train_steps
from tuner.harness.measure import synchronize
from tuner.harness.start import start_trial
from tuner.knobs import TrainingSetup, build_training
from tuner.profiling._report import OpTime, Phase, Profile
from tuner.profiling._target import ProfileTarget
from tuner.report import device_line
from tuner.workload import Workload, load_workload

#: Operators listed in the report.
TOP_OPS = 10


class ProfileFailed(UserError):
    """The config itself failed when run (out of memory, unsupported, a compile error): not a
    mistake in the command, hence exit code 1, but still one line."""

    exit_code = 1


def run_profile(target: ProfileTarget, steps: int, trace: Path) -> Profile:
    """Train `target`'s config as a trial does and profile `steps` steady optimizer steps.

    Raises:
        UserError: the workload cannot be loaded, the device is unavailable, or the trace
            cannot be written (exit code 2).
        ProfileFailed: the config fails when run (exit code 1).
    """
    workload = load_workload(target.objective, target.size)
    device = select_device(target.device)
    if device.type == "cpu":
        torch.set_num_threads(target.threads)  # as a study's worker process does
    try:
        # stdout carries the report: what user code prints goes to stderr
        with contextlib.redirect_stdout(sys.stderr):
            return _profile(workload, target, device, steps, trace)
    except ConfigError as exc:  # a knob combination torch refuses
        failure = TrialFailure(FailureKind.UNSUPPORTED, str(exc))
    except UserError:
        raise
    except Exception as exc:
        failure = classify(exc, compiling=False)
    raise ProfileFailed(
        f"{target.label}: the config failed when run ({failure.kind.value}: {failure.reason}); "
        "profile a config that runs on this device"
    )


def _profile(
    workload: Workload, target: ProfileTarget, device: torch.device, steps: int, trace: Path
) -> Profile:
    config, seed = target.config, target.seed

    # --- data, model and warm-up, exactly as run_trial does them ---------------------------
    start = start_trial(workload, config, device, seed)
    setup = build_training(
        config, start.model, target.warmup_steps, device, workload.checkpoint_blocks
    )
    warm_batches = start.warmup_batches()
    scratch = torch.zeros((), device=device)
    for step in range(target.warmup_steps):  # compilation happens here; updates discarded
        try:
            train_steps(setup, warm_batches, workload.loss, 1, scratch)
        except Exception as exc:
            raise classify(exc, compiling=start.compiled and step == 0) from exc
    del warm_batches  # a non-persistent loader's workers stop here, as in a trial
    setup = start.restart(setup, config, 2 * steps, device)  # profiled, then timed
    source = start.source

    # --- profiled steps: the operators and the trace ---------------------------------------
    batches = source.batches(seed)  # one stream on through both passes, as in a trial
    loss_sum = torch.zeros((), device=device)
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    prof = profile(activities=activities)
    synchronize(device)
    with _quiet_stderr():  # kineto prints a line at each start and stop
        prof.start()
    try:
        started = time.perf_counter()
        _profiled_steps(setup, batches, workload.loss, steps, loss_sum, _PhaseClock(device))
        profiled_s = time.perf_counter() - started  # the last phase ended synchronised
    finally:
        with _quiet_stderr():
            prof.stop()
    try:
        prof.export_chrome_trace(str(trace))
    except OSError as exc:
        raise UserError(
            f"--trace: cannot write {trace}: {exc.strerror}; choose a file in a folder you "
            "can write"
        ) from None

    # --- timed steps: phase seconds and samples/s, free of the profiler's per-op cost -------
    clock = _PhaseClock(device, ranges=False)
    started = time.perf_counter()
    inputs = _profiled_steps(setup, batches, workload.loss, steps, loss_sum, clock)
    wall_s = time.perf_counter() - started

    return Profile(
        label=target.label,
        config=config,
        device=device_line(describe_device(device).to_dict()),
        device_type=device.type,
        warmup_steps=target.warmup_steps,
        steps=steps,
        samples=steps * config.effective_batch_size,
        wall_s=wall_s,
        profiled_s=profiled_s,
        phases=dict(clock.seconds),
        ops=_top_ops(prof, cuda=device.type == "cuda"),
        datasets=isinstance(source, LoaderSource),
        input_rank=inputs.dim() if isinstance(inputs, torch.Tensor) else None,
        trace=trace,
        finite_loss=bool(torch.isfinite(loss_sum)),
        study_throughput=target.throughput,
    )


class _PhaseClock:
    """Wall seconds per phase, and (`ranges`) a profiler range around each for the trace.

    On CUDA each phase ends with a device synchronisation, so its seconds cover the kernels
    it launched rather than only their launch (on a CPU that is a no-op). That also stops the
    host from queueing the next phase while the device works, so on CUDA the timed steps run
    somewhat slower than a trial's unsynchronised ones.
    """

    def __init__(self, device: torch.device, *, ranges: bool = True) -> None:
        self._device = device
        self._ranges = ranges
        self.seconds = dict.fromkeys(Phase, 0.0)

    @contextlib.contextmanager
    def __call__(self, phase: Phase) -> Iterator[None]:
        started = time.perf_counter()
        with record_function(phase.range_name) if self._ranges else contextlib.nullcontext():
            yield
            synchronize(self._device)
        self.seconds[phase] += time.perf_counter() - started


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 to /dev/null for the block: native code's stray lines stay off the
    terminal, where tuner promises one line per error."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _profiled_steps(
    setup: TrainingSetup,
    batches: Iterator[tuple[Any, Any]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    n_steps: int,
    loss_sum: torch.Tensor,
    clock: _PhaseClock,
) -> Any:
    """`tuner.harness.loop.train_steps`, phase by phase; returns the last micro-batch's input."""
    model, autocast = setup.model, setup.autocast
    inputs = None
    for _ in range(n_steps):
        for _ in range(setup.accumulation_steps):
            with clock(Phase.DATA):
                inputs, targets = next(batches)
            with clock(Phase.FORWARD), autocast():
                loss = loss_fn(model(inputs), targets)
            with clock(Phase.BACKWARD):
                setup.backward(loss)
                loss_sum += loss.detach()
        with clock(Phase.OPTIMIZER):
            setup.step()
    return inputs


def _top_ops(prof: profile, *, cuda: bool) -> tuple[OpTime, ...]:
    """The operators with the most self time (device time on CUDA), the phase ranges left out."""
    ranges = {phase.range_name for phase in Phase}
    ops = []
    for event in prof.key_averages():
        if event.key in ranges:
            continue
        device_us = _self_device_us(event) if cuda else None
        ops.append(
            OpTime(
                name=event.key,
                calls=int(event.count),
                self_cpu_s=event.self_cpu_time_total / 1e6,
                self_device_s=None if device_us is None else device_us / 1e6,
            )
        )
    ops.sort(key=lambda op: op.self_cpu_s if op.self_device_s is None else op.self_device_s)
    return tuple(reversed(ops[-TOP_OPS:]))


def _self_device_us(event: Any) -> float:
    """Self CUDA microseconds (`self_device_time_total`; `self_cuda_time_total` before 2.4)."""
    for name in ("self_device_time_total", "self_cuda_time_total"):
        value = getattr(event, name, None)
        if isinstance(value, int | float):
            return float(value)
    return 0.0
