"""A profile's figures, and how they read: phases, a verdict with the knob to try, top ops.

No torch here: the profiled run (`_run`) fills a `Profile`; this module only judges and
formats it, so the advice is testable on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from tuner.config import (
    FUSED_OPTIMIZERS,
    CompileMode,
    OptimizerImpl,
    Precision,
    TrialConfig,
)
from tuner.report import format_table, knob_cells
from tuner.results import knobs_of


class Phase(StrEnum):
    """The parts of one optimizer step, in the order they run."""

    DATA = "data"  # next(batches): loading, collating, the move to the device
    FORWARD = "forward"  # model and loss, under the config's autocast
    BACKWARD = "backward"  # the (scaled) backward pass of every micro-batch
    OPTIMIZER = "optimizer"  # clip, scaler.step, update, scheduler, zero_grad

    @property
    def heading(self) -> str:
        return "data loading" if self is Phase.DATA else self.value

    @property
    def range_name(self) -> str:
        """The `torch.profiler.record_function` range around the phase, as a trace shows it."""
        return f"tuner: {self.value}"


@dataclass(frozen=True)
class OpTime:
    """One operator's self time over the profiled steps (`prof.key_averages()`)."""

    name: str
    calls: int
    self_cpu_s: float
    self_device_s: float | None  # None when the device is not CUDA


@dataclass(frozen=True)
class Profile:
    """What `run_profile` measured: phase wall times and the profiler's top operators.

    Attributes:
        label: What was profiled.
        config: Its config.
        device: One line naming the device.
        device_type: "cpu" or "cuda".
        warmup_steps: Untimed steps before profiling.
        steps: Profiled optimizer steps.
        samples: Training samples in the profiled steps (and in the timed steps).
        wall_s: Wall seconds of the timed steps: as many as were profiled, run right after
            them without the profiler, whose per-op cost would inflate op-heavy phases.
        profiled_s: Wall seconds of the profiled steps.
        phases: Wall seconds of each phase in the timed steps, synchronised at phase edges
            on CUDA.
        ops: The operators with the most self time in the profiled steps, most first.
        datasets: Batches come from a DataLoader (else from tensors already in memory).
        input_rank: Dimensions of a batch of inputs; None when the input is not one tensor.
        trace: The Chrome trace written.
        finite_loss: Every profiled micro-batch's loss was finite.
        study_throughput: The samples/s the study measured for this config, when known.
    """

    label: str
    config: TrialConfig
    device: str
    device_type: str
    warmup_steps: int
    steps: int
    samples: int
    wall_s: float
    profiled_s: float
    phases: dict[Phase, float]
    ops: tuple[OpTime, ...]
    datasets: bool
    input_rank: int | None
    trace: Path
    finite_loss: bool = True
    study_throughput: float | None = None

    @property
    def samples_per_s(self) -> float:
        """Throughput of the timed steps."""
        return self.samples / self.wall_s

    @property
    def step_s(self) -> float:
        """Seconds of the four phases together: what the shares are shares of."""
        return sum(self.phases.values())

    def share(self, phase: Phase) -> float:
        """The phase's fraction of step time, 0 to 1."""
        return self.phases[phase] / self.step_s if self.step_s > 0 else 0.0

    @property
    def biggest(self) -> Phase:
        return max(Phase, key=lambda phase: self.phases[phase])


def verdict(profile: Profile) -> str:
    """One line: the biggest phase, its share of each step, and the knobs that shrink it."""
    phase = profile.biggest
    return (
        f"{phase.heading} takes {profile.share(phase):.0%} of each step: "
        f"{'; '.join(advice(phase, profile))}"
    )


def advice(phase: Phase, profile: Profile) -> list[str]:
    """Concrete knob changes that shorten `phase` for this config, most promising first."""
    config = profile.config
    if phase is Phase.DATA:
        return _data_advice(config, profile.datasets, profile.device_type == "cuda")
    if phase is Phase.OPTIMIZER:
        return _optimizer_advice(config)
    tips = []
    if phase is Phase.BACKWARD and config.activation_checkpointing:
        tips.append(
            "set activation_checkpointing = false if memory allows (it re-runs the forward "
            "of the checkpointed blocks during backward)"
        )
    if config.precision is Precision.FP32:
        tips.append("try precision = bf16 (now fp32)")
    if config.compile_mode is CompileMode.OFF:
        tips.append("try compile_mode = default (now off)")
    if profile.input_rank == 4 and not config.channels_last:
        tips.append("try channels_last = true (4-D inputs)")
    tips.append(f"raise batch_size (now {config.batch_size}) so each kernel launch does more work")
    return tips


def _data_advice(config: TrialConfig, datasets: bool, cuda: bool) -> list[str]:
    loader = config.loader
    if not datasets:
        return [
            "the batches are tensors in memory, so this is indexing them: raise batch_size "
            f"(now {config.batch_size}) to index fewer, larger batches"
        ]
    tips = []
    if loader.num_workers == 0:
        tips.append(
            "raise data.num_workers (now 0) to load batches in worker processes, beside training"
        )
    else:
        if not loader.persistent_workers:
            tips.append(
                "set data.persistent_workers = true so workers are not restarted each epoch"
            )
        tips.append(
            f"raise data.num_workers (now {loader.num_workers}) or data.prefetch_factor "
            f"(now {loader.prefetch_factor})"
        )
    if cuda and not loader.pin_memory:
        tips.append("set data.pin_memory = true for asynchronous copies to the GPU")
    tips.append("or make the Dataset's __getitem__ cheaper")
    return tips


def _optimizer_advice(config: TrialConfig) -> list[str]:
    tips = []
    impl = config.optimizer_impl
    if impl is not OptimizerImpl.FUSED and config.optimizer.name in FUSED_OPTIMIZERS:
        tips.append(f"try optimizer_impl = fused (now {impl.value})")
    elif impl is OptimizerImpl.DEFAULT:
        tips.append("try optimizer_impl = foreach (now default)")
    if config.grad_clip_norm is not None:
        tips.append("clipping computes a norm over every gradient each step: try clipping off")
    tips.append(
        f"raise accumulation_steps (now {config.accumulation_steps}) or batch_size (now "
        f"{config.batch_size}) to step the optimizer once per more samples"
    )
    return tips


def format_profile(profile: Profile) -> str:
    """The report `tuner profile` prints."""
    knobs = knob_cells(knobs_of(profile.config.to_dict()))
    summary = ", ".join(
        knobs[k] for k in ("optimizer", "schedule", "batch", "precision", "compile")
    )
    measured = (
        ""
        if profile.study_throughput is None
        else f"; the study measured {profile.study_throughput:,.0f}"
    )
    lines = [
        f"profile: {profile.label} on {profile.device}",
        f"config: {summary}, clip {knobs['clip']}",
        f"steps: {profile.warmup_steps} warm-up (compilation included), {profile.steps} "
        f"profiled, then {profile.steps} timed without the profiler",
        f"samples/s: {profile.samples_per_s:,.0f} in the timed steps "
        f"({profile.samples / profile.profiled_s:,.0f} under the profiler{measured})",
        "",
        format_table(
            ["phase", "seconds", "% of step"],
            [
                [phase.heading, f"{profile.phases[phase]:.4f}", f"{profile.share(phase):.1%}"]
                for phase in Phase
            ]
            + [["step time", f"{profile.step_s:.4f}", "100.0%"]],
        ),
        "",
        f"verdict: {verdict(profile)}",
    ]
    if not profile.finite_loss:
        lines.append(
            "note: the loss was not finite in the profiled steps; a study records this config "
            "as diverged"
        )
    lines += ["", *_ops_table(profile), "", f"trace: {profile.trace} (open it in ui.perfetto.dev)"]
    return "\n".join(lines)


def _ops_table(profile: Profile) -> list[str]:
    cuda = any(op.self_device_s is not None for op in profile.ops)
    clock = "CUDA" if cuda else "CPU"
    headers = ["op", f"self {clock} ms", "% of time", "calls"]
    if cuda:
        headers.insert(3, "self CPU ms")
    rows = []
    for op in profile.ops:
        own = op.self_device_s if op.self_device_s is not None else op.self_cpu_s
        row = [op.name, f"{own * 1e3:.2f}", f"{own / profile.profiled_s:.1%}", str(op.calls)]
        if cuda:
            row.insert(3, f"{op.self_cpu_s * 1e3:.2f}")
        rows.append(row)
    if not rows:
        return [f"top ops by self {clock} time: none recorded"]
    return [f"top {len(rows)} ops by self {clock} time:", format_table(headers, rows)]
