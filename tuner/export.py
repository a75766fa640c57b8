"""Exported configs: a chosen trial as YAML, JSON or a runnable Python snippet, and back.

YAML and JSON exports are data (``load_config`` reads them back, and `tuner.knobs` applies
them). The Python export is code a user pastes into their own training script, so it is built
only from ``repr()`` of validated numbers and from fixed enum-to-torch tables: a study or
device name reaches it only as a sanitised comment, never as code. This module imports no
torch, so the CLI's ``export`` answers instantly.

Example::

    text = render(config, Provenance("cifar", 12, "accuracy", 0.91, 4523.0, "NVIDIA H200"), "yaml")
    Path("best.yaml").write_text(text)
    assert load_config("best.yaml") == config
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from string import Template
from typing import Any

import yaml

from tuner.config import (
    WARMUP_START_FACTOR,
    CompileMode,
    ConfigError,
    OptimizerConfig,
    OptimizerName,
    Precision,
    ScheduleConfig,
    ScheduleName,
    TrialConfig,
    optimizer_kwargs,
)
from tuner.text import one_line

EXPORT_VERSION = 1


class ExportFormat(StrEnum):
    YAML = "yaml"
    JSON = "json"
    PYTHON = "python"


@dataclass(frozen=True)
class Provenance:
    """Where an exported config came from. Its values are written as data, never as code."""

    study: str
    trial: int
    metric_name: str
    metric: float | None
    throughput: float | None  # samples/s
    device: str  # one-line device description
    baseline_trial: int | None = None  # the trial the next two figures are relative to
    speedup: float | None = None  # throughput / the baseline's
    metric_delta: float | None = None  # metric gain over the baseline; > 0 is better
    note: str = ""  # why there is no baseline, or a warning about this trial


def render(config: TrialConfig, provenance: Provenance, fmt: ExportFormat | str) -> str:
    """The export of `config` in format `fmt` (yaml, json or python), ending with a newline.

    Example:
        >>> print(render(config, provenance, "python"))  # doctest: +SKIP
    """
    match ExportFormat(fmt):
        case ExportFormat.YAML:
            return yaml.safe_dump(_document(config, provenance), sort_keys=False)
        case ExportFormat.JSON:
            return json.dumps(_document(config, provenance), indent=2) + "\n"
        case ExportFormat.PYTHON:
            return _python(config, _provenance_dict(provenance))


def load_config(path: str | Path) -> TrialConfig:
    """Read the config of a YAML or JSON export back, validated.

    JSON is parsed with `json`, not YAML: YAML 1.1 reads JSON's ``1e-05`` as a string.

    Raises:
        ConfigError: a one-line message naming the file and the bad field or structure, or
            why the file cannot be read.

    Example:
        >>> config = load_config("best.yaml")  # doctest: +SKIP
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise ConfigError(
            f"{path}: can only read .yaml, .yml or .json exports (a Python export is code), "
            f"got {suffix or 'no extension'!r}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {one_line(str(exc))}") from None
    try:
        document = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if suffix == ".json" else "YAML"
        raise ConfigError(f"{path}: not valid {kind}: {one_line(str(exc))}") from None
    if not isinstance(document, dict):
        raise ConfigError(
            f"{path}: must be a mapping with tuner_export, provenance and config, "
            f"got {type(document).__name__}"
        )
    if document.get("tuner_export") != EXPORT_VERSION:
        raise ConfigError(
            f"{path}: tuner_export: must be {EXPORT_VERSION} (a file written by tuner export), "
            f"got {document.get('tuner_export')!r}"
        )
    if "config" not in document:
        raise ConfigError(f"{path}: config: missing; the export has no config section")
    try:
        return TrialConfig.from_dict(document["config"])
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _document(config: TrialConfig, provenance: Provenance) -> dict[str, Any]:
    return {
        "tuner_export": EXPORT_VERSION,
        "provenance": _provenance_dict(provenance),
        "config": config.to_dict(),
    }


def _provenance_dict(provenance: Provenance) -> dict[str, Any]:
    """Provenance as plain values; a figure that is not finite is written as unknown (null)."""
    return {
        "study": str(provenance.study),
        "trial": int(provenance.trial),
        "metric_name": str(provenance.metric_name),
        "metric": _finite_or_none(provenance.metric),
        "throughput": _finite_or_none(provenance.throughput),
        "device": str(provenance.device),
        "baseline_trial": None
        if provenance.baseline_trial is None
        else int(provenance.baseline_trial),
        "speedup": _finite_or_none(provenance.speedup),
        "metric_delta": _finite_or_none(provenance.metric_delta),
    } | ({"note": str(provenance.note)} if provenance.note else {})


def _int_or_none(value: int | None) -> int | None:
    return None if value is None else int(value)


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


# ---- the Python export --------------------------------------------------------------------
# Every config value reaches the code through _literal() or one of these fixed tables.

_OPTIMIZER_CLASSES = {
    OptimizerName.SGD: "torch.optim.SGD",
    OptimizerName.ADAM: "torch.optim.Adam",
    OptimizerName.ADAMW: "torch.optim.AdamW",
    OptimizerName.RMSPROP: "torch.optim.RMSprop",
}
_AUTOCAST_ARGS = {
    Precision.FP32: "enabled=False",
    Precision.BF16: "dtype=torch.bfloat16, enabled=True",
    Precision.FP16: "dtype=torch.float16, enabled=True",
}
_COMPILE = {
    CompileMode.OFF: "model  # torch.compile was off in the tuned run",
    CompileMode.DEFAULT: 'torch.compile(model, mode="default")',
    CompileMode.REDUCE_OVERHEAD: 'torch.compile(model, mode="reduce-overhead")',
    CompileMode.MAX_AUTOTUNE: 'torch.compile(model, mode="max-autotune")',
    CompileMode.MAX_AUTOTUNE_NO_CUDAGRAPHS: (
        'torch.compile(model, mode="max-autotune-no-cudagraphs")'
    ),
}
# The same formulas as tuner.knobs.build_scheduler; $names are _literal()s of the config.
_SCHEDULERS = {
    ScheduleName.CONSTANT: """\
    scheduler = torch.optim.lr_scheduler.ConstantLR(
        optimizer, factor=1.0, total_iters=total_steps
    )""",
    ScheduleName.STEP: """\
    scheduler = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=max(1, round($step_every * total_steps)), gamma=$step_gamma
    )""",
    ScheduleName.COSINE: """\
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)""",
    ScheduleName.ONE_CYCLE: """\
    # cycle_momentum=False: run the tuned momentum/betas as they are, not cycled.
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=$lr, total_steps=total_steps, pct_start=$pct_start, cycle_momentum=False
    )""",
    ScheduleName.WARMUP_COSINE: """\
    warmup_steps = max(1, round($warmup_fraction * total_steps))
    warmup = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=$start_factor, total_iters=warmup_steps
    )
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(1, total_steps - warmup_steps)
    )
    scheduler = torch.optim.lr_scheduler.SequentialLR(
        optimizer, [warmup, cosine], milestones=[warmup_steps]
    )""",
}
_CLIP = """\
        scaler.unscale_(optimizer)  # clip the true gradients, not fp16-scaled ones
        torch.nn.utils.clip_grad_norm_(eager_model.parameters(), max_norm=$max_norm)"""
_NO_CLIP = """\
        # No gradient clipping was tuned; to clip, call scaler.unscale_(optimizer) first."""


def _literal(value: object) -> str:
    """Python source for a validated number, bool or tuple of numbers; anything else raises.

    Values are re-made as builtins first, so a numpy scalar cannot repr as ``np.float64(..)``.
    """
    if isinstance(value, bool):
        return repr(bool(value))
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float):
        return repr(float(value))
    if isinstance(value, tuple):
        return "(" + ", ".join(_literal(item) for item in value) + ")"
    raise TypeError(f"not a literal config value: {type(value).__name__}")


def _optimizer_code(config: OptimizerConfig) -> str:
    """``optimizer = torch.optim.X(...)``, wrapped the way ruff format would."""
    kwargs = [f"{key}={_literal(value)}" for key, value in optimizer_kwargs(config).items()]
    args = ", ".join(["model.parameters()", *kwargs])
    line = f"    optimizer = {_OPTIMIZER_CLASSES[config.name]}({args})"
    if len(line) <= 100:
        return line
    return f"    optimizer = {_OPTIMIZER_CLASSES[config.name]}(\n        {args}\n    )"


def _scheduler_code(config: ScheduleConfig, lr: float) -> str:
    fields = ("step_every", "step_gamma", "pct_start", "warmup_fraction")
    values = {field: getattr(config, field) for field in fields}
    values |= {"lr": lr, "start_factor": WARMUP_START_FACTOR}
    template = Template(_SCHEDULERS[config.name])
    return template.substitute({k: _literal(v) for k, v in values.items() if v is not None})


def _speedup(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}x"


def _figure(value: float | None, unit: str = "") -> str:
    return "unknown" if value is None else f"{value:.6g}{unit}"


def _provenance_comment(provenance: dict[str, Any]) -> str:
    lines = [
        f"# Study {one_line(provenance['study'])}, trial {provenance['trial']}:"
        f" {one_line(provenance['metric_name'])} {_figure(provenance['metric'])},"
        f" {_figure(provenance['throughput'], ' samples/s')}"
        f" on {one_line(provenance['device'])}."
    ]
    if provenance["baseline_trial"] is not None:
        delta = provenance["metric_delta"]
        lines.append(
            f"# Against the baseline (trial {provenance['baseline_trial']}):"
            f" {_speedup(provenance['speedup'])} its throughput,"
            f" {one_line(provenance['metric_name'])}"
            f" {'unknown' if delta is None else f'{delta:+.6g}'} (+ is better)."
        )
    if "note" in provenance:
        lines.append(f"# Note: {one_line(provenance['note'])}")
    return "\n".join(lines)


def _python(config: TrialConfig, provenance: dict[str, Any]) -> str:
    clip = config.grad_clip_norm
    return _TEMPLATE.substitute(
        provenance=_provenance_comment(provenance),
        batch=_literal(config.batch_size),
        accum=_literal(config.accumulation_steps),
        samples=_literal(config.effective_batch_size),
        optimizer=_optimizer_code(config.optimizer),
        scheduler=_scheduler_code(config.schedule, config.optimizer.lr),
        scaler_enabled=_literal(config.precision == Precision.FP16),
        autocast_args=_AUTOCAST_ARGS[config.precision],
        model_to_train=_COMPILE[config.compile_mode],
        clip=_NO_CLIP if clip is None else Template(_CLIP).substitute(max_norm=_literal(clip)),
    )


# The first two lines are fixed: Python reads an encoding declaration from either of them,
# so no provenance text may appear there.
_TEMPLATE = Template('''\
# Training setup tuned by tuner, for your own model and data loader.
# Generated from validated numbers only; read it like any code you run.
$provenance
# One optimizer step: $accum micro-batches x $batch samples = $samples samples.

import functools

import torch

BATCH_SIZE = $batch  # samples per micro-batch: build your DataLoader with this
ACCUMULATION_STEPS = $accum  # micro-batches per optimizer step


def make_training(model, total_steps):
    """Build the tuned optimizer, LR schedule, precision and compile setup for `model`.

    `model` must already be on its device. `total_steps` is the number of optimizer steps in
    your run (micro-batches / ACCUMULATION_STEPS); schedule lengths are fractions of it.
    Call model_to_train in the loop; keep eager_model (uncompiled) for evaluation and saving.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    device_type = next(model.parameters()).device.type
$optimizer
$scheduler
    # GradScaler only for fp16; autocast is a no-op for fp32: the loop needs no branches.
    scaler = torch.amp.GradScaler(device_type, enabled=$scaler_enabled)
    autocast = functools.partial(torch.autocast, device_type, $autocast_args)
    model_to_train = $model_to_train
    return model_to_train, model, optimizer, scheduler, scaler, autocast


def train_steps(model, loader, loss_fn, total_steps):
    """Train `model` for `total_steps` optimizer steps with the tuned setup.

    `loader` yields (inputs, targets) micro-batches of BATCH_SIZE and is re-iterated as
    needed (a DataLoader is fine); `loss_fn(outputs, targets)` returns the mean loss.
    Returns the eager (uncompiled) model, switched to eval mode for evaluation and saving.
    """
    model_to_train, eager_model, optimizer, scheduler, scaler, autocast = make_training(
        model, total_steps
    )
    device = next(eager_model.parameters()).device
    batches = _endless(loader)
    model_to_train.train()
    for _ in range(total_steps):
        for _ in range(ACCUMULATION_STEPS):
            inputs, targets = next(batches)
            with autocast():
                loss = loss_fn(model_to_train(inputs.to(device)), targets.to(device))
            # Mean over the micro-batches; scaled for fp16 (the scaler is a no-op otherwise).
            scaler.scale(loss / ACCUMULATION_STEPS).backward()
$clip
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()  # once per optimizer step; a step fp16's scaler skips still counts
        optimizer.zero_grad(set_to_none=True)
    return eager_model.eval()


def _endless(loader):
    """Batches from `loader`, epoch after epoch (re-shuffled if the loader shuffles)."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("loader yielded no batches")


if __name__ == "__main__":
    # Run this file to see the tuned setup train; in your code, call train_steps instead:
    #   model = train_steps(model.to(device), train_loader, loss_fn, total_steps=...)
    inputs = torch.randn(4096, 16)
    targets = inputs[:, :4].argmax(1)  # a learnable toy task
    demo = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(inputs, targets), batch_size=BATCH_SIZE, shuffle=True
    )
    loss_fn = torch.nn.functional.cross_entropy
    before = loss_fn(demo(inputs), targets).item()
    demo = train_steps(demo, loader, loss_fn, total_steps=30)
    with torch.no_grad():
        after = loss_fn(demo(inputs), targets).item()
    print(f"30 tuned optimizer steps on a toy task: loss {before:.3f} -> {after:.3f}")
''')
